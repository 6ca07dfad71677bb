"""A small HTTP forward proxy on loopback, as Squid or tinyproxy would stand between Sapien and receivers.

It tunnels ``CONNECT host:port`` and forwards absolute-form requests (``POST http://host:port/path``), keeping
client connections alive, and records what it was asked. ``answer_connect_with`` makes it refuse every request
with that status instead (407 for a missing password, 502 for an upstream it cannot reach); ``password`` makes
it demand ``Proxy-Authorization`` for the user ``sapien``.
"""

import base64
import socket
import threading
from dataclasses import dataclass, field
from socketserver import BaseRequestHandler, ThreadingTCPServer
from urllib.parse import urlsplit


@dataclass(frozen=True)
class ProxiedRequest:
    method: str
    target: str  # ``host:port`` for CONNECT, the absolute URL otherwise
    headers: dict[str, str]  # names lowercased


class _Closed(Exception):
    pass


class _Stream:
    """A socket read a head or a counted body at a time."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.buffer = sock, b""

    def head(self) -> bytes:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    def exactly(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._fill()
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise _Closed
        self.buffer += chunk


def _headers(head: bytes) -> tuple[str, dict[str, str]]:
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return first, headers


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@dataclass
class ForwardProxy:
    answer_connect_with: int | None = None
    password: str | None = None
    requests: list[ProxiedRequest] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        proxy = self

        class Handler(BaseRequestHandler):
            def handle(self) -> None:
                with proxy._lock:
                    proxy.connections += 1
                try:
                    proxy._serve(self.request)
                except (_Closed, OSError):
                    pass

        self._lock = threading.Lock()
        self.server = ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url_with_password(self, password: str) -> str:
        return f"http://sapien:{password}@127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _refusal(self, headers: dict[str, str]) -> int | None:
        if self.answer_connect_with is not None:
            return self.answer_connect_with
        if self.password is not None:
            expected = "Basic " + base64.b64encode(f"sapien:{self.password}".encode()).decode()
            if headers.get("proxy-authorization") != expected:
                return 407
        return None

    def _serve(self, client: socket.socket) -> None:
        stream = _Stream(client)
        upstream: socket.socket | None = None
        upstream_stream: _Stream | None = None
        while True:
            request_line, headers = _headers(stream.head())
            method, target, _ = request_line.split(" ", 2)
            with self._lock:
                self.requests.append(ProxiedRequest(method, target, headers))
            refusal = self._refusal(headers)
            if refusal is not None:
                client.sendall(f"HTTP/1.1 {refusal} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                if stream.buffer:
                    upstream.sendall(stream.buffer)
                threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
                _pipe(client, upstream)
                return
            url = urlsplit(target)
            body = stream.exactly(int(headers.get("content-length", "0")))
            if upstream is None or upstream_stream is None:
                upstream = socket.create_connection((url.hostname, url.port or 80), timeout=10)
                upstream_stream = _Stream(upstream)
            path = url.path + (f"?{url.query}" if url.query else "")
            forwarded = [f"{method} {path} HTTP/1.1"] + [
                f"{name}: {value}" for name, value in headers.items() if not name.startswith("proxy-")
            ]
            upstream.sendall("\r\n".join(forwarded).encode("latin-1") + b"\r\n\r\n" + body)
            answer_head = upstream_stream.head()
            _, answer_headers = _headers(answer_head)
            answer_body = upstream_stream.exactly(int(answer_headers.get("content-length", "0")))
            client.sendall(answer_head + b"\r\n\r\n" + answer_body)
