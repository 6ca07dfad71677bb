"""End to end: a change too large to send inline reaches the receiver under the limit, its parts in signed blobs."""

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from rest_framework.test import APIClient
from standardwebhooks.webhooks import Webhook

from deliveries.models import Blob
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e

SECRET = "a-subscriber-secret-of-some-length"
NOTES = "a" * 300_000
OTHER_NOTES = "b" * 300_000


def blob_content(reference: dict[str, Any]) -> bytes:
    """Fetches a ref's signed URL with no token, and checks the bytes against its size and checksum."""
    uri = urlsplit(reference["uri"])
    response = Client().get(f"{uri.path}?{uri.query}")
    assert response.status_code == 200
    content: bytes = response.content
    assert reference["size_bytes"] == len(content)
    assert reference["checksum"] == "sha256:" + hashlib.sha256(content).hexdigest()
    return content


def test_a_person_patched_from_and_to_300_kb_notes_arrives_under_the_limit_with_both_parts_in_blobs(
    platform, receiver: Receiver, make_organization, make_api
) -> None:
    api: APIClient = make_api(make_organization())
    subscription = api.post(
        "/api/v1/subscriptions",
        {"callback_url": receiver.url, "events": ["person.updated"], "secret": SECRET},
        format="json",
    )
    assert subscription.status_code == 201, subscription.content
    person = api.post("/api/persons", {"name": "Big", "notes": NOTES}, format="json").json()

    api.patch(f"/api/persons/{person['id']}", {"notes": OTHER_NOTES}, format="json")

    (request,) = receiver.wait_for(1)
    assert len(request.body) <= 262144
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, request.header("X-Sapien-Signature"))
    event = Webhook(SECRET.encode()).verify(request.body, request.headers)
    assert list(event) == [
        "id", "type", "version", "timestamp", "organization_id", "data_ref", "changes_ref", "metadata",
    ]  # fmt: skip
    assert event["type"] == "person.updated"
    assert json.loads(blob_content(event["data_ref"])) == api.get(f"/api/persons/{person['id']}").json()
    assert json.loads(blob_content(event["changes_ref"])) == {"notes": {"old": NOTES, "new": OTHER_NOTES}}
    assert sorted(Blob.objects.filter(event_id=event["id"]).values_list("part", flat=True)) == ["changes", "data"]
