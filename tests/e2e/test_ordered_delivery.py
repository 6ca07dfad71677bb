"""End to end: an ordered subscription's receiver sees each key's events (a person's, a user's availability and
presence) in commit order, one at a time, through real relay, workers and broker, although it answers slowly and
fails some attempts, and while one key waits the others keep flowing."""

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from rest_framework.test import APIClient

from deliveries.models import Delivery, DeliveryStatus
from sapien.core.models import Tier, User
from sapien.events.models import Event
from tests.support.processes import wait_until
from tests.support.receiver import ReceivedRequest, Receiver

pytestmark = pytest.mark.e2e

VERSIONS = [f"v{number}" for number in range(6)]  # each person's names, in the order the API commits them


@dataclass
class OrderWatchingResponder:
    """Answers slowly and out of order, and notes what each key had in flight and what it answered."""

    held: str = ""  # the person whose first event is refused until every event of the other has arrived
    other: str = ""
    ready: threading.Event = field(default_factory=threading.Event)  # set once both people are known
    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: Counter[str] = field(default_factory=Counter)
    most_in_flight: Counter[str] = field(default_factory=Counter)
    answered: list[tuple[str, str, int]] = field(default_factory=list)  # (person, name, status), as answered
    failed_once: set[str] = field(default_factory=set)

    def __call__(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        assert self.ready.wait(10)
        data = json.loads(request.body)["data"]
        person, name = data["id"], data["name"]
        with self.lock:
            self.in_flight[person] += 1
            self.most_in_flight[person] = max(self.most_in_flight[person], self.in_flight[person])
            others_seen = {n for p, n, _ in self.answered if p == self.other}
        if person == self.held and name == "v0" and others_seen != set(VERSIONS):
            status = 503  # held: its key waits on this retry, the other person's must not
        elif person == self.held and name == "v2" and name not in self.failed_once:
            self.failed_once.add(name)
            status = 500  # one failed attempt: the key waits for the retry
        else:
            status = 200
        if person == self.other and name in {"v1", "v3", "v5"}:
            time.sleep(0.3)  # slow answers, which would let later ones overtake them were they sent beside them
        with self.lock:
            self.in_flight[person] -= 1
            self.answered.append((person, name, status))
        return status, {}, b"ok"


def test_each_persons_events_arrive_one_at_a_time_in_commit_order(
    platform_factory, receiver: Receiver, make_organization, make_api
) -> None:
    platform = platform_factory(ESL_RETRY_DELAY_MS=100, ESL_RETRY_MAX_DELAY_MS=1000).start_all()
    platform.worker("worker2")  # two worker processes claiming at once
    api: APIClient = make_api(make_organization(tier=Tier.ENTERPRISE))  # ten retries: room to hold a key a while
    created = api.post(
        "/api/v1/subscriptions",
        {"callback_url": receiver.url, "events": ["person.*"], "secret": "s" * 24, "ordered": True},
        format="json",
    )
    assert created.status_code == 201 and created.json()["ordered"] is True
    receiver.responder = responder = OrderWatchingResponder()
    responder.held = api.post("/api/persons", {"name": "v0"}, format="json").json()["id"]
    responder.other = api.post("/api/persons", {"name": "v0"}, format="json").json()["id"]
    responder.ready.set()
    ada, grace = responder.held, responder.other

    for name in VERSIONS[1:]:  # one after the other: this is the commit order
        assert api.patch(f"/api/persons/{ada}", {"name": name}, format="json").status_code == 200
        assert api.patch(f"/api/persons/{grace}", {"name": name}, format="json").status_code == 200

    wait_until(
        lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == 2 * len(VERSIONS),
        timeout=60, message="every delivery succeeded",
    )  # fmt: skip
    assert not Delivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists()
    for person in (ada, grace):
        names = [name for p, name, _ in responder.answered if p == person]
        succeeded = [name for p, name, status in responder.answered if p == person and status == 200]
        assert succeeded == VERSIONS  # commit order
        assert names == sorted(names)  # a retry repeats its event, never a later one before it
        assert responder.most_in_flight[person] == 1
    # Ada's first event was held until every one of Grace's had arrived: her key never held Grace's back.
    first_of_ada = responder.answered.index((ada, "v0", 200))
    last_of_grace = max(i for i, (person, _, _) in enumerate(responder.answered) if person == grace)
    assert last_of_grace < first_of_ada
    assert (ada, "v0", 503) in responder.answered and (ada, "v2", 500) in responder.answered


@dataclass
class SlowFirstFailingResponder:
    """Refuses each event's first attempt when it is the user's first event, answers presence slowly, and notes
    what it had in flight and which events it accepted, in order."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    most_in_flight: int = 0
    accepted: list[str] = field(default_factory=list)  # event ids, as answered 2xx
    refused: list[str] = field(default_factory=list)

    def __call__(self, request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        event_id = request.header("webhook-id")
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            refuse = not self.accepted and not self.refused
        if request.header("X-Sapien-Event").startswith("presence."):
            time.sleep(0.3)
        with self.lock:
            self.in_flight -= 1
            (self.refused if refuse else self.accepted).append(event_id)
        return (503 if refuse else 200), {}, b"ok"


def test_a_users_availability_and_presence_events_arrive_in_commit_order(
    platform_factory, receiver: Receiver, make_organization, make_api
) -> None:
    platform_factory(ESL_RETRY_DELAY_MS=100, ESL_RETRY_MAX_DELAY_MS=1000).start_all()
    receiver.responder = responder = SlowFirstFailingResponder()
    organization = make_organization()
    admin = make_api(organization)
    created = admin.post(
        "/api/v1/subscriptions",
        {"callback_url": receiver.url, "secret": "s" * 24, "ordered": True,
         "events": ["availability.changed", "user.availability.update", "presence.*"]},
        format="json",
    )  # fmt: skip
    assert created.status_code == 201
    user = User.objects.create_user("ada@example.com", "correct-horse", organization=organization)
    me = make_api(organization, "availability:read availability:write", user=user)  # a session: online

    def changed_to(status: str) -> bool:
        changes = Event.objects.filter(organization=organization, type="availability.changed")
        return any(json.loads(event.body)["data"]["current_status"] == status for event in changes)

    for status in ("busy", "away"):  # spaced 5 s apart by the availability rules: the later one waits, then goes
        assert me.put("/api/v1/availability/me", {"status": status}, format="json").status_code == 200
        wait_until(lambda status=status: changed_to(status), timeout=30, message=f"the change to {status}")
    heartbeat = {"connection_id": "tab-1", "device_type": "web", "activity": "active"}
    assert me.post("/api/v1/presence/heartbeat", heartbeat, format="json").status_code in (200, 202, 204)
    wait_until(
        lambda: not Delivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists()
        and Delivery.objects.count() == Event.objects.filter(organization=organization).exclude(type__startswith="system.").count(),
        timeout=60, message="every delivery succeeded",
    )  # fmt: skip
    committed = [
        str(event_id)
        for event_id in Event.objects.filter(organization=organization)
        .exclude(type__startswith="system.")
        .order_by("created_at", "id")
        .values_list("id", flat=True)
    ]
    assert len(committed) >= 5  # online, then both availability types for busy and for away
    assert responder.accepted == committed
    assert responder.refused == committed[:1]  # the first was refused once, and the rest waited for it
    assert responder.most_in_flight == 1
    assert {key for key in Delivery.objects.values_list("ordering_key", flat=True)} == {f"user:{user.id}"}
