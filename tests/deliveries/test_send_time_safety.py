"""With private callbacks off, nothing is sent to an internal address, whatever DNS says later.

Every name resolves to loopback here (``tests.support.loopback_dns``); IP literals are only parsed.
"""

import uuid

import pytest
from django.utils import timezone

from deliveries import dispatch, outbound, retry, transport
from deliveries.claims import ClaimedDelivery, ClaimedEvent, ClaimedSubscription
from deliveries.models import DeliveryStatus
from tests.support.claimed import claimed_delivery, send_claimed
from tests.support.receiver import Receiver


@pytest.fixture
def private_callbacks_off(settings):
    settings.ESL_ALLOW_PRIVATE_CALLBACKS = False
    transport._connections.reset()  # the connections are made for the current setting
    yield settings
    transport._connections.reset()


def claimed(url: str) -> ClaimedDelivery:
    event = ClaimedEvent(
        id=uuid.uuid4(), type="system.ping", body="{}", organization_id=uuid.uuid4(), created_at=timezone.now()
    )
    return claimed_delivery(event, ClaimedSubscription(id=uuid.uuid4(), callback_url=url, secret="s" * 20, active=True))


def test_an_internal_callback_is_refused_at_send_time_without_a_request(private_callbacks_off) -> None:
    receiver = Receiver()
    try:
        (outcome,) = send_claimed([claimed(receiver.url)])
    finally:
        receiver.close()

    assert outcome.result is None
    assert outcome.status == DeliveryStatus.FAILED
    assert outcome.error.startswith("refused:")
    assert receiver.requests == []


@pytest.fixture
def no_connection_is_opened(monkeypatch):
    """Replaces urllib3's socket opening: any address it is handed is recorded, and nothing is connected."""
    import urllib3.util.connection

    opened: list[tuple[str, int]] = []

    def refuse_to_connect(address, *args, **kwargs):
        opened.append(address)
        raise OSError("the test opens no connection")

    monkeypatch.setattr(urllib3.util.connection, "create_connection", refuse_to_connect)
    return opened


def test_a_name_that_rebinds_to_loopback_after_the_check_is_refused_at_connect(
    private_callbacks_off, no_connection_is_opened
) -> None:
    """The URL passed the pre-send check; when the send connects, its name answers 127.0.0.1."""
    delivery = claimed("https://rebind.example.com:8443/hooks")
    private_callbacks_off.ESL_ALLOW_PRIVATE_CALLBACKS = True  # a name passes the check without resolving
    refusals, [(_, request)] = outbound.prepare_batch([delivery])
    private_callbacks_off.ESL_ALLOW_PRIVATE_CALLBACKS = False
    transport._connections.reset()  # the send uses the connect-time guard, as with private callbacks off

    outcome = retry.decide(delivery, dispatch.senders.get().submit(request).result(), now=timezone.now())

    assert refusals == []
    assert outcome.result is not None
    assert outcome.result.status_code is None
    assert "refused: rebind.example.com resolves to an internal address (127.0.0.1)" in outcome.result.error
    assert no_connection_is_opened == []


IPV6_SPELLINGS_OF_INTERNAL_IPV4 = [
    "[64:ff9b::a9fe:a9fe]", "[64:ff9b::7f00:1]", "[64:ff9b::a00:1]", "[64:ff9b:1::a9fe:a9fe]", "[::127.0.0.1]",
    "[::ffff:0:7f00:1]", "[::ffff:0:a9fe:a9fe]", "[fec0::1]", "168.63.129.16", "[2001:0:a00:1:8000:63bf:f7f7:f7f7]",
]  # fmt: skip


@pytest.mark.parametrize("host", IPV6_SPELLINGS_OF_INTERNAL_IPV4)
def test_the_connect_time_guard_refuses_every_spelling_of_an_internal_address(
    host: str, private_callbacks_off, no_connection_is_opened
) -> None:
    result = transport.post(transport.DeliveryRequest(url=f"https://{host}:8443/hooks", body=b"{}", headers={}))

    assert result.status_code is None
    assert "refused:" in result.error
    assert "internal address" in result.error
    assert no_connection_is_opened == []


@pytest.mark.parametrize(
    "url", [*(f"https://{host}/hooks" for host in IPV6_SPELLINGS_OF_INTERNAL_IPV4), "https://93.184.215.14:99999/x"]
)
def test_a_stored_unsafe_callback_is_refused_before_sending(
    url: str, private_callbacks_off, no_connection_is_opened
) -> None:
    (outcome,) = send_claimed([claimed(url)])

    assert outcome.result is None
    assert outcome.status == DeliveryStatus.FAILED
    assert outcome.error.startswith("refused:")
    assert no_connection_is_opened == []
