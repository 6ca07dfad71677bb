"""The bench's API load: every POST reaches a real loopback server once, as JSON with the token, whether the
server closes each connection (gunicorn's sync workers) or keeps it and closes it while idle."""

import json
import select
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.loadgen import JsonPoster, person_body, run_load


class Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *, close_each: bool) -> None:
        self.close_each = close_each
        self.requests: list[tuple[str, str | None, dict[str, object]]] = []
        self.sockets: list[socket.socket] = []
        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def connections(self) -> int:
        return len(self.sockets)

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        connection, address = super().get_request()
        self.sockets.append(connection)
        return connection, address


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Recorder

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, self.headers["Authorization"], body))
        answer = b'{"ok": true}'
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if self.server.close_each:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


def serving(server: Recorder) -> Iterator[Recorder]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def closing_server() -> Iterator[Recorder]:
    yield from serving(Recorder(close_each=True))


@pytest.fixture
def keeping_server() -> Iterator[Recorder]:
    yield from serving(Recorder(close_each=False))


def url(server: Recorder) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/api/persons"


def test_a_closed_loop_load_posts_every_body_once_with_the_token(closing_server) -> None:
    result = run_load(url(closing_server), "t0k3n", person_body("spec"), count=40, threads=4)

    assert (result.ok, result.sent, result.errors) == (40, 40, [])
    assert sorted(body["email"] for _, _, body in closing_server.requests) == sorted(
        f"spec-{index}@example.com" for index in range(40)
    )
    assert {(path, auth) for path, auth, _ in closing_server.requests} == {("/api/persons", "Bearer t0k3n")}
    assert closing_server.connections == 40  # the server closed each: one connection per request


def test_a_kept_connection_serves_every_request_of_its_thread(keeping_server) -> None:
    poster = JsonPoster(url(keeping_server), None)

    statuses = [poster.post({"n": index})[0] for index in range(5)]

    assert statuses == [201] * 5
    assert keeping_server.connections == 1
    assert [auth for _, auth, _ in keeping_server.requests] == [None] * 5
    poster.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_before_the_next_post(keeping_server) -> None:
    poster = JsonPoster(url(keeping_server), None)
    poster.post({"n": 1})
    assert poster.connection is not None and poster.connection.sock is not None
    kept = poster.connection.sock
    keeping_server.sockets[0].shutdown(socket.SHUT_RDWR)  # as a keep-alive timeout would
    assert select.select([kept], [], [], 5)[0], "the client never saw the close"

    status, content = poster.post({"n": 2})

    assert (status, json.loads(content)) == (201, {"ok": True})
    assert keeping_server.connections == 2
    assert [body for _, _, body in keeping_server.requests] == [{"n": 1}, {"n": 2}]
    poster.close()
