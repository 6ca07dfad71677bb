"""Whether the broker answers: ``/health``'s check, without a broker client in the web process.

The web process loads no Celery, kombu or redis-py (``sapien/core/celery_app.py``); redis-py alone is about 10 MB
of imports in every web worker. So for Redis (``redis://``, ``rediss://``, ``redis+socket://``) the probe speaks
the three commands it needs itself, as redis-py would send them: ``AUTH`` when the URL has a password, ``SELECT``
for a database other than 0, ``PING``; any error reply, refused connection or timeout fails it. Any other broker
(RabbitMQ's ``amqp://``, …) is checked by connecting with kombu, imported on the first check (with py-amqp, about
4 MB).
"""

import socket
import ssl
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

REDIS_SCHEMES = {"redis", "rediss", "redis+socket"}
REDIS_PORT = 6379
# kombu's ssl_cert_reqs values (as in a rediss:// URL's query) and the ssl module's.
CERT_REQUIREMENTS = {
    "required": ssl.CERT_REQUIRED, "cert_required": ssl.CERT_REQUIRED,
    "optional": ssl.CERT_OPTIONAL, "cert_optional": ssl.CERT_OPTIONAL,
    "none": ssl.CERT_NONE, "cert_none": ssl.CERT_NONE,
}  # fmt: skip


class BrokerRefused(Exception):
    """The broker answered with an error."""


def broker_probe(url: str, *, timeout: float) -> None:
    """Raises unless the broker at ``url`` answers within ``timeout`` seconds per step."""
    if urlsplit(url).scheme in REDIS_SCHEMES:
        redis_ping(url, timeout=timeout)
        return
    from kombu import Connection

    with Connection(url, connect_timeout=timeout, transport_options={"max_retries": 0}) as connection:
        connection.ensure_connection(max_retries=1, timeout=timeout)


def redis_ping(url: str, *, timeout: float) -> None:
    parts = urlsplit(url)
    query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
    commands: list[tuple[str, ...]] = []
    if parts.password:
        user = unquote(parts.username or "")
        commands.append(("AUTH", user, unquote(parts.password)) if user else ("AUTH", unquote(parts.password)))
    database = query.get("db") or (parts.path.strip("/") if parts.scheme != "redis+socket" else "") or "0"
    if database != "0":
        commands.append(("SELECT", database))
    commands.append(("PING",))
    with _connect(parts.scheme, parts, query, timeout=timeout) as connection:
        connection.sendall(b"".join(_command(*command) for command in commands))
        replies = connection.makefile("rb")
        for _ in commands:
            reply = replies.readline(65536)
            if not reply.endswith(b"\r\n"):
                raise BrokerRefused("the connection closed without an answer")
            if reply.startswith(b"-"):
                raise BrokerRefused(reply[1:].decode("utf-8", "replace").strip())
            if not reply.startswith(b"+"):
                raise BrokerRefused("an answer that is not Redis's")


def _connect(scheme: str, parts: SplitResult, query: dict[str, str], *, timeout: float) -> socket.socket:
    if scheme == "redis+socket":
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(timeout)
        connection.connect(unquote(parts.path))
        return connection
    host = parts.hostname or "localhost"
    connection = socket.create_connection((host, parts.port or REDIS_PORT), timeout=timeout)
    if scheme != "rediss":
        return connection
    context = ssl.create_default_context(cafile=query.get("ssl_ca_certs"))
    requirement = CERT_REQUIREMENTS.get(query.get("ssl_cert_reqs", "required").lower(), ssl.CERT_REQUIRED)
    if requirement != ssl.CERT_REQUIRED:
        context.check_hostname = False
    context.verify_mode = requirement
    if query.get("ssl_certfile"):
        context.load_cert_chain(query["ssl_certfile"], query.get("ssl_keyfile"))
    try:
        return context.wrap_socket(connection, server_hostname=host)
    except BaseException:
        connection.close()
        raise


def _command(*arguments: str) -> bytes:
    """A command in Redis's protocol (RESP): an array of bulk strings."""
    encoded = [argument.encode() for argument in arguments]
    return b"".join([f"*{len(encoded)}\r\n".encode(), *(b"$%d\r\n%s\r\n" % (len(item), item) for item in encoded)])
