"""``/health``'s broker check: the real Redis and RabbitMQ answer it; refusals, silence and strangers fail it.

Redis is spoken to without redis-py (the web process loads no broker client): the real server checks what the
probe sends, and a scripted one on loopback checks the exact commands and the answers it must not accept.
"""

import os
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from sapien.core.broker_probe import BrokerRefused, broker_probe
from tests.support.platform import broker_url_for


def redis_url(*, database: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(broker_url_for("redis"))
    netloc = f":{password}@{parts.hostname}:{parts.port}" if password else parts.netloc
    return urlunsplit((parts.scheme, netloc, f"/{database}" if database is not None else parts.path, "", ""))


class ScriptedRedis:
    """A one-connection server on loopback: records what it receives and answers each command with ``replies``."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.received = b""
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        connection, _ = self.server.accept()
        with connection:
            connection.settimeout(2)
            for reply in self.replies:
                self.received += connection.recv(65536)
                connection.sendall(reply)

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=3)


@pytest.fixture
def scripted() -> Iterator[list[ScriptedRedis]]:
    servers: list[ScriptedRedis] = []
    yield servers
    for server in servers:
        server.close()


def test_the_real_redis_answers() -> None:
    broker_probe(redis_url(), timeout=2)


def test_the_real_redis_refuses_a_database_it_does_not_have() -> None:
    with pytest.raises(BrokerRefused, match="DB index is out of range"):
        broker_probe(redis_url(database="9999"), timeout=2)


def test_the_real_redis_refuses_a_password_it_does_not_expect() -> None:
    with pytest.raises(BrokerRefused, match="AUTH"):
        broker_probe(redis_url(password="not-configured"), timeout=2)


def test_a_closed_port_fails_the_check() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        broker_probe(f"redis://127.0.0.1:{port}/0", timeout=2)


def test_a_user_and_password_are_sent_as_redis_6s_auth_before_select_and_ping(scripted) -> None:
    server = ScriptedRedis([b"+OK\r\n+OK\r\n+PONG\r\n"])
    scripted.append(server)

    broker_probe(f"redis://probe%40ops:p%3Ass@127.0.0.1:{server.port}/2", timeout=2)

    assert server.received == (
        b"*3\r\n$4\r\nAUTH\r\n$9\r\nprobe@ops\r\n$4\r\np:ss\r\n*2\r\n$6\r\nSELECT\r\n$1\r\n2\r\n*1\r\n$4\r\nPING\r\n"
    )


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (b"-NOAUTH Authentication required.\r\n", "NOAUTH"),
        (b"", "closed without an answer"),
        (b"HTTP/1.1 400 Bad Request\r\n", "not Redis"),
        (b"+PON", "closed without an answer"),
    ],
)
def test_an_error_a_silence_or_a_stranger_fails_the_check(scripted, reply: bytes, message: str) -> None:
    server = ScriptedRedis([reply])
    scripted.append(server)

    with pytest.raises(BrokerRefused, match=message):
        broker_probe(f"redis://127.0.0.1:{server.port}", timeout=2)


def test_a_server_that_never_answers_times_out(scripted) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        with pytest.raises(TimeoutError):
            broker_probe(f"redis://127.0.0.1:{server.getsockname()[1]}/0", timeout=0.3)


@pytest.mark.skipif(not os.environ.get("ESL_TEST_AMQP_URL"), reason="no RabbitMQ named by ESL_TEST_AMQP_URL")
def test_rabbitmq_answers_and_refuses_a_wrong_password() -> None:
    url = os.environ["ESL_TEST_AMQP_URL"]
    broker_probe(url, timeout=2)

    parts = urlsplit(url)
    wrong = urlunsplit(parts._replace(netloc=f"{parts.username}:wrong-password@{parts.hostname}:{parts.port}"))
    with pytest.raises(Exception, match="ACCESS_REFUSED"):
        broker_probe(wrong, timeout=2)
