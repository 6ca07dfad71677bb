"""Blob spill through Django's storage API: the file system by default, S3-compatible when configured."""

import hashlib
import json
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
from django.test import Client
from moto import mock_aws

from deliveries.blobs import body_to_send, is_valid_blob_signature
from deliveries.models import Blob
from sapien.events.outbox import record_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def large_event(organization, settings):
    settings.ESL_MAX_PAYLOAD_SIZE = 1024
    return record_event(organization_id=organization.id, event_type="person.created", data={"notes": "é" * 4000})


def spilled_reference(event) -> dict:
    body = json.loads(body_to_send(event))
    assert "data" not in body
    assert list(body) == ["id", "type", "version", "timestamp", "organization_id", "data_ref", "metadata"]
    return body["data_ref"]


def fetch(client: Client, uri: str) -> bytes:
    response = client.get("/" + uri.split("://", 1)[1].split("/", 1)[1])
    assert response.status_code == 200
    return response.content


def test_spill_to_the_file_system(large_event, client: Client, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = tmp_path

    reference = spilled_reference(large_event)

    content = fetch(client, reference["uri"])
    assert json.loads(content) == {"notes": "é" * 4000}
    assert reference["size_bytes"] == len(content)
    assert reference["checksum"] == f"sha256:{hashlib.sha256(content).hexdigest()}"
    assert spilled_reference(large_event) == reference  # written once, the same reference on every retry
    assert Blob.objects.count() == 1


def test_a_small_body_is_sent_inline(organization) -> None:
    event = record_event(organization_id=organization.id, event_type="person.created", data={"name": "Ada"})
    assert event is not None

    assert json.loads(body_to_send(event))["data"] == {"name": "Ada"}
    assert Blob.objects.count() == 0


@mock_aws
def test_spill_to_s3_compatible_storage(large_event, client: Client, settings, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="sapien-blobs")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {"bucket_name": "sapien-blobs", "location": "esl", "region_name": "us-east-1"},
        },
    }

    reference = spilled_reference(large_event)

    stored = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="sapien-blobs")["Contents"]
    assert [item["Key"] for item in stored] == [f"esl/blobs/{large_event.organization_id}/{large_event.id}.json"]
    content = fetch(client, reference["uri"])
    assert reference["checksum"] == f"sha256:{hashlib.sha256(content).hexdigest()}"


REFUSED_LINK = {"error": {"code": "permission_denied", "message": "This blob link is invalid or has expired."}}


@pytest.fixture
def blob_path(large_event, settings, tmp_path) -> str:
    """The path of a stored blob's URL, without its query."""
    settings.MEDIA_ROOT = tmp_path
    return urlsplit(spilled_reference(large_event)["uri"]).path


@pytest.mark.parametrize(
    "query",
    [
        "expires=540321009654&signature=%C3%88%F2%B3%B3%89UO",  # the signature schemathesis sent: not ASCII
        "expires=540321009654&signature=%E2%82%AC" + "0" * 63,  # a signature's length in characters, not in bytes
        "expires=540321009654&signature=%FF%FE",  # not UTF-8 at all
    ],
)
def test_a_signature_that_is_not_ascii_is_refused_not_an_error(blob_path, client: Client, query) -> None:
    response = client.get(f"{blob_path}?{query}")

    assert response.status_code == 403
    assert response.json() == REFUSED_LINK


@pytest.mark.parametrize(
    "expires",
    [
        "abc",
        "-1",
        "1e12",
        "",
        "%C2%B2",  # "²": str.isdigit() says it is a digit, int() refuses it
        "%D9%A1" * 10,  # Arabic-Indic digits, which int() would read as a number
        "9" * 13,  # past any real expiry
        "9" * 5000,  # past int()'s digit limit
    ],
)
def test_an_expires_that_is_not_a_plain_number_is_refused_not_an_error(blob_path, client: Client, expires) -> None:
    response = client.get(f"{blob_path}?expires={expires}&signature={'0' * 64}")

    assert response.status_code == 403
    assert response.json() == REFUSED_LINK


def test_a_signed_expiry_in_other_digits_is_refused(blob_path, large_event, client: Client) -> None:
    query = parse_qs(urlsplit(spilled_reference(large_event)["uri"]).query)
    arabic_indic = "".join(chr(0x0660 + int(digit)) for digit in query["expires"][0])

    response = client.get(blob_path, {"expires": arabic_indic, "signature": query["signature"][0]})

    assert response.status_code == 403
    assert response.json() == REFUSED_LINK


def test_a_signature_with_a_lone_surrogate_is_invalid_not_an_error(large_event) -> None:
    assert is_valid_blob_signature(large_event.id, "540321009654", "\ud800" * 64) is False
