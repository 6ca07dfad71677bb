"""A fast webhook receiver for the benchmark, run in a process of its own.

    python bench/receiver.py --port N [--host 127.0.0.1]

HTTP/1.1 keep-alive on asyncio protocols (no http.server), TCP_NODELAY, every
webhook answered ``200`` with ``Content-Length: 0``, except on paths starting with
``/fail`` (answered ``500``), ``/slow`` (answered ``200`` after ``SLOW_SECONDS``) and ``/after/<ms>/`` (answered
``200`` after that many milliseconds). For each request it keeps
the arrival wall time, a delivery key, an event key and the body; the event's
own timestamp is pulled out of the body only when the records are dumped, so the
hot path does no JSON work.

Control endpoints (GET, answered with JSON):
    /_stats               {"count": n, "connections": c}
    /_dump?clear=1        every record as [arrival, delivery_key, event_key, event_ts, path, attempt]; clear=1 empties
    /_reset               empties the store
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import time
from datetime import datetime

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
ERROR = b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"
SLOW_SECONDS = 2.0
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024

# Sapien's envelope: "timestamp":"2024-01-15T14:32:00.000Z". The peer's model dump: "created_at": "...".
SAPIEN_TS = re.compile(rb'"timestamp":"([^"]+)"')
PEER_TS = re.compile(rb'"created_at": "([^"]+)"')
PEER_REF = re.compile(rb'"ref": "([^"]+)"')


class Store:
    def __init__(self) -> None:
        self.records: list[tuple[float, str, str, bytes, str, str]] = []
        self.connections = 0

    def dump(self, clear: bool) -> list[list[object]]:
        out: list[list[object]] = []
        for arrival, delivery_key, event_key, body, path, attempt in self.records:
            ts = None
            match = SAPIEN_TS.search(body) or PEER_TS.search(body)
            if match:
                ts = _epoch(match.group(1).decode())
            if not event_key:
                ref = PEER_REF.search(body)
                event_key = ref.group(1).decode() if ref else ""
                delivery_key = f"{delivery_key}:{event_key}"
            out.append([arrival, delivery_key, event_key, ts, path, attempt])
        if clear:
            self.records = []
        return out


def _epoch(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def answer_delay(path: str) -> float:
    """The seconds ``/after/<ms>/...`` asks to wait; none for anything else."""
    milliseconds = path.split("/")[2]
    return int(milliseconds) / 1000 if milliseconds.isdigit() else 0.0


class HttpProtocol(asyncio.Protocol):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.store.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HEAD:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end]).split(b"\r\n")
            length, delivery_key, event_key, attempt, close = 0, "", "", "", False
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"x-sapien-delivery":
                    delivery_key = value.strip().decode()
                elif name == b"x-sapien-attempt":
                    attempt = value.strip().decode()
                elif name == b"webhook-id":
                    event_key = value.strip().decode()
                elif name == b"django-webhook-uuid":
                    delivery_key = value.strip().decode()
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length > MAX_BODY:
                self.transport.close()
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            request_line = head[0].split(b" ")
            if len(request_line) >= 2 and request_line[1].startswith(b"/_"):
                self._control(request_line[1].decode())
                continue
            path = request_line[1].decode() if len(request_line) >= 2 else ""
            self.store.records.append((time.time(), delivery_key, event_key, body, path, attempt))
            if path.startswith("/fail"):
                self._answer(ERROR, close)
            elif path.startswith("/slow"):
                asyncio.get_running_loop().call_later(SLOW_SECONDS, self._answer, OK, close)
            elif path.startswith("/after/"):
                asyncio.get_running_loop().call_later(answer_delay(path), self._answer, OK, close)
            else:
                self._answer(OK, close)

    def _answer(self, response: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(response)
        if close:
            self.transport.close()

    def _control(self, target: str) -> None:
        assert self.transport is not None
        path, _, query = target.partition("?")
        if path == "/_stats":
            payload: object = {"count": len(self.store.records), "connections": self.store.connections}
        elif path == "/_dump":
            payload = self.store.dump(clear="clear=1" in query)
        elif path == "/_reset":
            self.store.records = []
            payload = {"ok": True}
        else:
            payload = {"error": "unknown"}
        body = json.dumps(payload).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.transport.write(head.encode() + body)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    store = Store()
    server = await loop.create_server(lambda: HttpProtocol(store), host, port, backlog=4096, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"listening on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
