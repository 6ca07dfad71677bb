"""Faults delay work but lose none of it: killed workers, a broker outage, many relays and workers."""

import json
import threading

import pytest

from deliveries.models import Delivery, DeliveryStatus
from sapien.embedded import start_redis
from tests.e2e.test_pipeline import subscribe
from tests.support.processes import wait_until
from tests.support.receiver import ReceivedRequest, Receiver

pytestmark = pytest.mark.e2e


def delivered_pairs(receiver: Receiver) -> set[tuple[str, str]]:
    return {(r.header("webhook-id"), r.path) for r in receiver.requests}


def all_succeeded(expected: int) -> bool:
    return Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == expected


def test_a_worker_killed_mid_delivery_loses_nothing(
    platform_factory, receiver: Receiver, make_organization, make_api
) -> None:  # type: ignore[no-untyped-def]
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


def test_events_written_while_the_broker_is_down_are_delivered_when_it_is_back(
    platform_factory, receiver: Receiver, make_organization, make_api, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    broker = start_redis(data_dir=tmp_path / "broker")
    try:
        platform = platform_factory(broker.url).start_all()
        restarted = platform.supervise()
        api = make_api(make_organization())
        subscribe(api, receiver.url, ["pet.created"])
        api.post("/api/pets", {"name": "Before", "type": "cat"}, format="json")
        receiver.wait_for(1)

        broker.stop()
        for index in range(5):
            assert api.post("/api/pets", {"name": f"During {index}", "type": "cat"}, format="json").status_code == 201
        wait_until(lambda: Delivery.objects.count() == 6, message="the relay fanned out without the broker")
        broker.start()

        received = receiver.wait_for(6, timeout=60)
        names = {json.loads(r.body)["data"]["name"] for r in received}
        assert names == {"Before", *(f"During {index}" for index in range(5))}
        print(f"processes restarted by the supervisor during the outage: {restarted or 'none'}")
    finally:
        broker.stop()


@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_two_relays_and_two_workers_deliver_everything_once_each(
    broker: str, platform_factory, receiver: Receiver, make_organization, make_api
) -> None:  # type: ignore[no-untyped-def]
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
