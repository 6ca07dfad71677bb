"""Celery's Redis transport as Sapien configures it (``sapien/celery.py``, ``CELERY_BROKER_TRANSPORT_OPTIONS``):
one client per channel, and no copy of a received message kept to put back."""

import uuid
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from kombu import Connection

from sapien.core.broker_probe import REDIS_SCHEMES

pytestmark = pytest.mark.skipif(
    urlsplit(settings.CELERY_BROKER_URL).scheme not in REDIS_SCHEMES, reason="the broker of this run is not Redis"
)


@pytest.fixture
def connection():
    from sapien.celery import app

    with Connection(settings.CELERY_BROKER_URL, transport_options=app.conf.broker_transport_options) as connection:
        yield connection


@pytest.fixture
def channel(connection):
    return connection.default_channel


def test_a_channel_sends_its_commands_through_one_client_per_connection_pool(channel) -> None:
    first = channel._create_client()

    assert channel._create_client() is first
    assert first.ping()
    channel._pool = None  # what the channel does after losing its connection: a new pool, and a new client
    renewed = channel._create_client()
    assert renewed is not first and renewed.connection_pool is channel.pool
    assert renewed.ping()


def test_a_received_message_leaves_no_copy_behind_in_redis(connection) -> None:
    """kombu's acknowledgement emulation would keep it in ``unacked`` until the acknowledgement, two Redis
    transactions per message; a wake-up lost with its worker costs only a sweep."""
    queue = connection.SimpleQueue(f"sapien-test-{uuid.uuid4().hex}")
    database = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        queue.put({"wake": "up"})
        copies_before = database.hlen("unacked")

        message = queue.get(timeout=5)

        assert message.payload == {"wake": "up"}
        assert database.hlen("unacked") == copies_before
        message.ack()
        assert database.hlen("unacked") == copies_before
    finally:
        queue.clear()
        queue.close()
        database.close()
