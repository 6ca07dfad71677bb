"""Faults delay work but lose none of it: killed workers, a broker outage, many relays and workers."""

import http.client
import json
import subprocess
import sys
import threading
import time

import pytest

from deliveries.models import Delivery, DeliveryStatus
from sapien.embedded import start_postgres, start_redis
from tests.e2e.test_pipeline import subscribe
from tests.support import processes
from tests.support.platform import Platform
from tests.support.processes import ROOT, wait_until
from tests.support.receiver import RESET, ReceivedRequest, Receiver

pytestmark = pytest.mark.e2e


def health(port: int) -> tuple[int, str]:
    """``/health``'s HTTP status and its verdict, through the web's one worker and its kept connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        return response.status, json.loads(response.read())["status"]
    except OSError:
        return 0, ""
    finally:
        connection.close()


def delivered_pairs(receiver: Receiver) -> set[tuple[str, str]]:
    return {(r.header("webhook-id"), r.path) for r in receiver.requests}


def all_succeeded(expected: int) -> bool:
    return Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == expected


def test_a_worker_killed_mid_delivery_loses_nothing(
    platform_factory, receiver: Receiver, make_organization, make_api
) -> None:
    platform = platform_factory(
        ESL_CONNECT_TIMEOUT=1, ESL_READ_TIMEOUT=2, ESL_CLAIM_LEASE_MARGIN_SECONDS=1, ESL_DELIVERY_BATCH_SIZE=20
    )
    platform.relay()
    platform.beat()
    first_worker = platform.worker("doomed")
    release = threading.Event()

    def hang_until_released(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        release.wait(5)
        return 200, {}, b"ok"

    receiver.responder = hang_until_released
    api = make_api(make_organization())
    for index in range(2):
        subscribe(api, receiver.url + f"/{index}", ["person.created"])
    for index in range(10):
        api.post("/api/persons", {"name": f"Person {index}"}, format="json")

    receiver.wait_for(1, timeout=30)  # a delivery is in flight, its claim held by the doomed worker
    first_worker.kill()
    release.set()
    platform.worker("successor")

    wait_until(lambda: all_succeeded(20), timeout=60, message="all 20 deliveries succeeded")
    assert len(delivered_pairs(receiver)) == 20
    print(f"duplicates after SIGKILL: {len(receiver.requests) - 20}")


def test_events_written_during_a_30_second_broker_outage_are_delivered_when_it_is_back(
    platform_factory, receiver: Receiver, make_organization, make_api, tmp_path
) -> None:
    broker = start_redis(data_dir=tmp_path / "broker")
    try:
        platform = platform_factory(broker.url).start_all()
        restarted = platform.supervise()
        api = make_api(make_organization())
        for index in range(2):
            subscribe(api, receiver.url + f"/{index}", ["pet.created"])
        api.post("/api/pets", {"name": "Before", "type": "cat"}, format="json")
        receiver.wait_for(2)

        broker.stop()
        outage_ends = time.monotonic() + 30
        written = 0
        while time.monotonic() < outage_ends:
            assert api.post("/api/pets", {"name": f"During {written}", "type": "cat"}, format="json").status_code == 201
            written += 1
            time.sleep(1)
        wait_until(
            lambda: Delivery.objects.count() == 2 * (written + 1), message="the relay fanned out without the broker"
        )
        broker.start()

        wait_until(lambda: all_succeeded(2 * (written + 1)), timeout=90, message="every delivery succeeded")
        names = {json.loads(r.body)["data"]["name"] for r in receiver.requests}
        assert names == {"Before", *(f"During {index}" for index in range(written))}
        assert len(delivered_pairs(receiver)) == 2 * (written + 1)
        print(f"broker outage: {written} events x 2 subscriptions, 0 missing, "
              f"{len(receiver.requests) - 2 * (written + 1)} duplicates; restarted: {restarted or 'none'}")  # fmt: skip
    finally:
        broker.stop()


def test_receivers_that_hang_reset_or_crawl_still_get_everything(
    platform_factory, receiver: Receiver, make_organization, make_api
) -> None:
    platform_factory(ESL_READ_TIMEOUT=1, ESL_CONNECT_TIMEOUT=1, ESL_RETRY_DELAY_MS=100).start_all()
    seen: dict[tuple[str, str], int] = {}
    lock = threading.Lock()

    def misbehave(request: ReceivedRequest) -> tuple[int, dict[str, str], bytes]:
        key = (request.path, request.header("webhook-id"))
        with lock:
            seen[key] = seen.get(key, 0) + 1
            first = seen[key] == 1
        if request.path.endswith("/hang") and first:
            time.sleep(2)  # past the read timeout
        if request.path.endswith("/reset") and first:
            return RESET, {}, b""
        if request.path.endswith("/slow"):
            time.sleep(0.3)
        return 200, {}, b"ok"

    receiver.responder = misbehave
    api = make_api(make_organization())
    for kind in ("hang", "reset", "slow"):
        subscribe(api, f"{receiver.url}/{kind}", ["toy.created"])
    events = 15
    for index in range(events):
        api.post("/api/toys", {"name": f"Toy {index}"}, format="json")

    wait_until(lambda: all_succeeded(events * 3), timeout=90, message="every delivery succeeded")
    assert len(delivered_pairs(receiver)) == events * 3
    print(
        f"misbehaving receivers: {events} events x 3, 0 missing, {len(receiver.requests) - events * 3} extra requests"
    )


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_two_relays_and_two_workers_deliver_everything_once_each(
    broker: str, platform_factory, receiver: Receiver, make_organization, make_api
) -> None:
    import os

    if broker == "amqp" and not os.environ.get("ESL_TEST_AMQP_URL"):
        pytest.skip("ESL_TEST_AMQP_URL names no RabbitMQ")
    platform = platform_factory(broker, ESL_RELAY_BATCH_SIZE=7, ESL_DELIVERY_BATCH_SIZE=10)
    platform.relay("relay1")
    platform.relay("relay2")
    platform.worker("worker1")
    platform.worker("worker2")
    platform.beat()
    api = make_api(make_organization())
    subscriptions = 3
    events = 40
    for index in range(subscriptions):
        subscribe(api, receiver.url + f"/{index}", ["toy.created"])

    for index in range(events):
        api.post("/api/toys", {"name": f"Toy {index}"}, format="json")

    wait_until(lambda: all_succeeded(events * subscriptions), timeout=90, message="every delivery succeeded")
    assert len(delivered_pairs(receiver)) == events * subscriptions
    assert Delivery.objects.count() == events * subscriptions
    print(f"duplicates with two relays and two workers: {len(receiver.requests) - events * subscriptions}")


def test_postgresql_restarting_under_load_loses_nothing(receiver: Receiver, tmp_path, settings) -> None:
    """The whole stack on a PostgreSQL of its own, restarted while events are being written and delivered."""
    postgres = start_postgres(data_dir=tmp_path / "postgres", database="restart")
    broker = start_redis(data_dir=tmp_path / "broker")
    platform = Platform(
        broker_url=broker.url,
        log_dir=tmp_path,
        # Short claim leases, so that a batch whose outcome could not be recorded at all comes back quickly.
        overrides={
            "DATABASE_URL": postgres.url, "ESL_DELIVERY_BATCH_SIZE": 20, "ESL_CONNECT_TIMEOUT": 1,
            "ESL_READ_TIMEOUT": 2, "ESL_CLAIM_LEASE_MARGIN_SECONDS": 2,
        },
    )  # fmt: skip
    env = {**platform.env, "DATABASE_URL": postgres.url}
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        organization_id = subprocess.run(
            [sys.executable, "-m", "tests.reliability.pg_client", "setup", receiver.url, "2"],
            cwd=ROOT, env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        platform.start_all()
        restarted = platform.supervise()
        web_port = processes.free_port()
        web = platform.start(processes.web(env, tmp_path, web_port))
        wait_until(lambda: health(web_port)[0] == 200, timeout=60, message="the web up, its connection kept")
        events = 60
        writer = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.pg_client", "write", organization_id, str(events)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

        receiver.wait_for(10, timeout=60)  # deliveries are flowing
        postgres.restart()
        assert writer.wait(timeout=120) == 0
        # The web worker's kept connection died with the server: its next request reconnects, no error.
        assert health(web_port) == (200, "healthy")
        assert web.popen is not None and web.popen.poll() is None

        wait_until(lambda: len(delivered_pairs(receiver)) == events * 2, timeout=120, message="every event delivered")
        print(
            f"PostgreSQL restart: {events} events x 2 subscriptions, 0 missing, "
            f"{len(receiver.requests) - events * 2} duplicates; restarted: {restarted or 'none'}"
        )
    finally:
        platform.stop_all()
        print(platform.logs())
        broker.stop()
        postgres.stop()
