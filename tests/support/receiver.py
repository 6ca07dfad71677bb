"""A real HTTP receiver on loopback that records every webhook it is sent."""

import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float

    def header(self, name: str) -> str:
        return self.headers[name.lower()]


Reply = tuple[int, dict[str, str], bytes]
RESET = 0  # a responder answering this status resets the connection instead
Responder = Callable[[ReceivedRequest], Reply]


def always(status: int, headers: dict[str, str] | None = None, body: bytes = b"ok") -> Responder:
    return lambda request: (status, headers or {}, body)


@dataclass
class Receiver:
    responder: Responder = field(default_factory=lambda: always(200))
    requests: list[ReceivedRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self
        self._condition = threading.Condition()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = ReceivedRequest(
                    path=self.path,
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=self.rfile.read(length),
                    received_at=time.time(),
                )
                with receiver._condition:  # recorded on arrival, before the answer
                    receiver.requests.append(request)
                    receiver._condition.notify_all()
                status, headers, body = receiver.responder(request)
                if status == RESET:
                    # Abort with a TCP reset and no answer at all, as a crashing receiver would.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def wait_for(
        self, count: int, timeout: float = 30.0, predicate: Callable[[ReceivedRequest], bool] | None = None
    ) -> list[ReceivedRequest]:
        """Waits until ``count`` matching requests arrived; fails with what did arrive."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                matching = [r for r in self.requests if predicate is None or predicate(r)]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(matching)} within {timeout}s")
                self._condition.wait(remaining)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
