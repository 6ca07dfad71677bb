"""The README's receiver, run as written, against the requests Sapien builds: it refuses replays."""

import importlib.util
import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import HTTPServer
from pathlib import Path
from types import ModuleType

import pytest
import requests
import time_machine

from deliveries.claims import ClaimedEvent, ClaimedSubscription
from deliveries.outbound import build_request
from deliveries.transport import DeliveryRequest
from tests.support.claimed import claimed_delivery

README = Path(__file__).resolve().parents[2] / "README.md"
HEREDOC = re.compile(r"cat > /tmp/sapien-receiver\.py <<'EOF'\n(.*?\n)EOF\n", re.DOTALL)
SECRET = "quickstart-secret-0123456789"


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[ModuleType, str]]:
    """The receiver's code exactly as the README has it, serving on a free loopback port."""
    (source,) = HEREDOC.findall(README.read_text())
    assert 'if __name__ == "__main__":' in source  # importable: it serves only when run as a script
    path = tmp_path / "sapien_receiver.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("sapien_receiver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    vars(module)["SECRET"] = SECRET
    server = HTTPServer(("127.0.0.1", 0), module.Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield module, f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


def sapien_request(url: str, event_id: uuid.UUID, *, attempt: int = 1) -> DeliveryRequest:
    """What Sapien sends for one attempt: the body and every header, signed with ``SECRET`` now."""
    body = {"id": str(event_id), "type": "person.created", "version": "1.0", "data": {"name": "Grace Hopper"}}
    event = ClaimedEvent(id=event_id, type="person.created", body=json.dumps(body), organization_id=uuid.uuid4(),
                         created_at=datetime.now(tz=UTC))  # fmt: skip
    subscription = ClaimedSubscription(id=uuid.uuid4(), callback_url=url, secret=SECRET, active=True)
    delivery = claimed_delivery(event, subscription, attempt=attempt)
    return build_request(delivery, event.body.encode())


def send(request: DeliveryRequest, **header_changes: str) -> int:
    headers = {**request.headers, **header_changes}
    return requests.post(request.url, data=request.body, headers=headers, timeout=5).status_code


def test_a_captured_request_replayed_later_is_refused_and_a_fresh_attempt_is_accepted(receiver, capsys) -> None:
    _, url = receiver
    event_id = uuid.uuid4()
    with time_machine.travel(datetime.now(tz=UTC) - timedelta(hours=1)):
        captured = sapien_request(url, event_id)  # an hour ago: both signatures were valid then

    replayed = send(captured)
    restamped = send(captured, **{"webhook-timestamp": str(int(datetime.now(tz=UTC).timestamp()))})
    fresh = send(sapien_request(url, event_id, attempt=2))  # Sapien's own retry: new timestamp, new signature

    assert (replayed, restamped, fresh) == (401, 401, 200)
    assert capsys.readouterr().out.splitlines() == [
        "REFUSED: stale webhook-timestamp",
        "REFUSED: bad webhook-signature",  # X-Sapien-Signature still matched: it signs the body alone
        f"person.created {event_id} signatures OK",
    ]


def test_a_request_replayed_within_the_window_is_acknowledged_but_not_handled_twice(receiver, capsys) -> None:
    _, url = receiver
    event_id = uuid.uuid4()
    request = sapien_request(url, event_id)

    first, again = send(request), send(request)

    assert (first, again) == (200, 200)  # 2xx: Sapien stops retrying what the receiver already has
    assert capsys.readouterr().out.splitlines() == [
        f"person.created {event_id} signatures OK",
        f"person.created {event_id} already seen, ignored",
    ]


def test_the_timestamp_tolerance_is_five_minutes_either_way(receiver) -> None:
    module, url = receiver
    request = sapien_request(url, uuid.uuid4())
    sent_at = int(request.headers["webhook-timestamp"])

    verdicts = [module.verdict(request.body, request.headers, now) for now in
                (sent_at + 301, sent_at - 301, sent_at + 300, sent_at + 300)]  # fmt: skip

    assert verdicts == ["stale webhook-timestamp", "stale webhook-timestamp", "new", "seen"]


def test_the_receiver_refuses_a_body_that_is_not_the_one_signed(receiver, capsys) -> None:
    _, url = receiver
    request = sapien_request(url, uuid.uuid4())

    status = requests.post(url, data=request.body.replace(b"Grace", b"Alan"), headers=request.headers, timeout=5)

    assert status.status_code == 401
    assert capsys.readouterr().out.splitlines() == ["REFUSED: bad X-Sapien-Signature"]
