"""End to end: a status change reaches a subscriber as both availability event types."""

import json

import pytest
from standardwebhooks.webhooks import Webhook

from sapien.core.models import User
from tests.availability.conftest import assert_valid_seed_000
from tests.e2e.test_pipeline import SECRET, subscribe
from tests.support.receiver import Receiver

pytestmark = pytest.mark.e2e


def test_a_status_change_arrives_as_both_event_types(platform, receiver: Receiver, make_organization, make_api) -> None:
    organization = make_organization()
    admin = make_api(organization)
    subscribe(admin, receiver.url, ["availability.changed", "user.availability.update", "presence.*"])
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    me = make_api(organization, "availability:read availability:write", user=user)

    assert (
        me.put("/api/v1/availability/me", {"status": "busy", "custom_message": "Deep work"}, format="json").status_code
        == 200
    )

    def busy(request) -> bool:
        body = json.loads(request.body)
        return "busy" in (
            body.get("data", {}).get("availability", {}).get("status"),
            body.get("data", {}).get("current_status"),
        )

    arrived = receiver.wait_for(2, timeout=30, predicate=busy)
    by_type = {request.header("X-Sapien-Event"): request for request in arrived}
    update = json.loads(by_type["user.availability.update"].body)
    assert_valid_seed_000(update)
    assert update["data"]["availability"]["custom_message"] == "Deep work"
    assert update["data"]["trigger"]["type"] == "manual"
    changed = json.loads(by_type["availability.changed"].body)
    assert changed["data"]["current_status"] == "busy"
    assert changed["data"]["user_id"] == str(user.pk)
    for request in arrived:
        Webhook(SECRET.encode()).verify(request.body, request.headers)
    online = receiver.wait_for(1, predicate=lambda r: r.header("X-Sapien-Event") == "presence.user_online")
    assert json.loads(online[0].body)["data"]["userId"] == str(user.pk)
