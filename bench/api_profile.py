"""CPU and queries per API request: ``python bench/api_profile.py [-n 1000] [--profile create] [--served]``.

Runs authenticated ``POST /api/persons`` (the bench's ~1 KB body) and ``GET /api/persons`` through Sapien's
own WSGI application (``sapien.wsgi``, every middleware, the real token check) against the PostgreSQL of
``DATABASE_URL``, with a token issued by ``POST /oauth/token``. No HTTP server and no client: what is left is
the web process's own work per request, and its PostgreSQL backend's.

Per kind of request it prints the web process's CPU ms (user + system), the PostgreSQL backend's CPU ms
(from ``/proc``, when the server runs on this machine), wall ms and queries per request. ``--profile KIND``
adds cProfile's top 25 by cumulative time over a second run of that kind. ``ESL_ENABLED=false`` in the
environment measures the create without its outbox event. Each run creates an organization and leaves its
rows (use a scratch database).

``--served`` instead starts gunicorn as ``sapien.processes.web()`` does (``--workers``, ``--threads``) and
sends the same requests over HTTP from ``--clients`` threads with a connection each (``bench.loadgen``'s, kept
while the server keeps it), closed loop. Per kind it prints requests/s, gunicorn's CPU ms per request (master and
workers) and its PostgreSQL backends';
then each worker's peak RSS, RSS and PSS (``/proc/PID/smaps_rollup``).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The repository's root instead of bench/, whose profile.py would shadow the standard library's.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse  # noqa: E402
import cProfile  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import pstats  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402
from urllib.parse import urlencode  # noqa: E402

from bench.procs import children_of, cpu_seconds, cpu_seconds_if_here  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("API_THROTTLE_RATE", "1000000/min")  # counted as always, never reached

NOTES = "x" * 600  # as bench/loadgen.py: a ~1 KB envelope


def environ(method: str, path: str, body: bytes = b"", *, query: str = "", headers: dict[str, str]) -> dict[str, Any]:
    """A WSGI environ as gunicorn builds it for a keep-alive HTTP/1.1 request from loopback."""
    return {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8080", "HTTP_ACCEPT": "*/*", "HTTP_CONNECTION": "keep-alive",
        "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.url_scheme": "http", "wsgi.version": (1, 0), "wsgi.multithread": False, "wsgi.multiprocess": True,
        "wsgi.run_once": False, **headers,
    }  # fmt: skip


class Caller:
    def __init__(self, application: Callable[..., Any]) -> None:
        self.application = application
        self.status = ""

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        self.status = status

    def __call__(self, env: dict[str, Any]) -> tuple[int, bytes]:
        chunks = self.application(env, self.start_response)
        try:
            body = b"".join(chunks)
        finally:
            if hasattr(chunks, "close"):
                chunks.close()  # request_finished: what gunicorn does after each response
        return int(self.status.split()[0]), body


def issue_token(call: Caller) -> str:
    from sapien.core.services import client_create, organization_create

    organization = organization_create(name=f"api-profile-{os.getpid()}-{time.time_ns()}", tier="enterprise")
    client = client_create(organization=organization, name="api-profile", scopes=["entities:read", "entities:write"])
    form = urlencode({"grant_type": "client_credentials", "client_id": client.application.client_id,
                      "client_secret": client.client_secret}).encode()  # fmt: skip
    status, body = call(environ("POST", "/oauth/token", form,
                                headers={"CONTENT_TYPE": "application/x-www-form-urlencoded"}))  # fmt: skip
    assert status == 200, body
    return str(json.loads(body)["access_token"])


def requests_of(kind: str, token: str) -> Callable[[int], dict[str, Any]]:
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

    def create(index: int) -> dict[str, Any]:
        body = json.dumps({"name": f"Profile {index}", "email": f"p-{index}@example.com", "notes": NOTES}).encode()
        return environ("POST", "/api/persons", body, headers={**auth, "CONTENT_TYPE": "application/json"})

    def create_keyed(index: int) -> dict[str, Any]:
        """A create with a fresh Idempotency-Key: the claim and the stored answer on top of the create."""
        keyed = create(index)
        keyed["HTTP_IDEMPOTENCY_KEY"] = f"profile-{os.getpid()}-{time.time_ns()}-{index}"
        return keyed

    def create_replayed(index: int) -> dict[str, Any]:
        """The same keyed create every time: all but the first are answered the stored answer."""
        replayed = create(0)
        replayed["HTTP_IDEMPOTENCY_KEY"] = f"profile-replayed-{os.getpid()}"
        return replayed

    def listing(index: int) -> dict[str, Any]:
        return environ("GET", "/api/persons", query="page_size=10", headers=auth)

    def health(index: int) -> dict[str, Any]:
        return environ("GET", "/health", headers={})

    kinds = {"create": create, "create-keyed": create_keyed, "create-replayed": create_replayed}
    return {**kinds, "list": listing, "health": health}[kind]


def run(call: Caller, make: Callable[[int], dict[str, Any]], count: int, start: int) -> tuple[float, float]:
    """CPU seconds and wall seconds of ``count`` requests; the environs are built beforehand."""
    environs = [make(start + index) for index in range(count)]
    cpu, wall = time.process_time(), time.perf_counter()
    for env in environs:
        status, body = call(env)
        if status >= 300:
            raise SystemExit(f"{env['REQUEST_METHOD']} {env['PATH_INFO']}: {status} {body[:300]!r}")
    return time.process_time() - cpu, time.perf_counter() - wall


ROOT = Path(__file__).resolve().parent.parent


def memory_kb(pid: int) -> dict[str, int]:
    """Peak RSS (VmHWM), RSS and PSS of a process, in kB."""
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    rollup = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:] if ":" in line
    )
    return {
        "peak_rss": int(status["VmHWM"].split()[0]),
        "rss": int(status["VmRSS"].split()[0]),
        "pss": int(rollup["Pss"].split()[0]),
    }


def backends_of_this_database() -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def served_load(url: str, method: str, body: Callable[[int], bytes] | None, token: str, *, count: int,
                clients: int) -> float:  # fmt: skip
    """Requests/s of ``count`` requests from ``clients`` threads, closed loop, each with a connection of its own
    (``bench.loadgen.JsonPoster``: kept while the server keeps it)."""
    from bench.loadgen import JsonPoster

    counter = iter(range(count))
    lock = threading.Lock()
    failures: list[str] = []

    def client() -> None:
        poster = JsonPoster(url, token)
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                break
            status, content = poster.send(method, body(index) if body else None)
            if status >= 300:
                failures.append(f"{status} {content[:200].decode(errors='replace')}")
        poster.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{len(failures)} failed, e.g. {failures[0]}")
    return count / (time.perf_counter() - began)


def served(args: argparse.Namespace) -> None:
    """gunicorn from ``sapien.processes.web()``, loaded over HTTP; see the module's docstring."""
    import django

    django.setup()
    from sapien import processes
    from sapien.core.services import client_create, organization_create

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = processes.web(host="127.0.0.1", port=port, workers=args.workers, threads=args.threads,
                            access_log=False, log_level="warning")  # fmt: skip
    server = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"
        organization = organization_create(name=f"api-profile-{os.getpid()}-{time.time_ns()}", tier="enterprise")
        created = client_create(
            organization=organization, name="api-profile", scopes=["entities:read", "entities:write"]
        )
        import requests

        token = requests.post(f"{base}/oauth/token", timeout=10, data={
            "grant_type": "client_credentials", "client_id": created.application.client_id,
            "client_secret": created.client_secret}).json()["access_token"]  # fmt: skip

        def person(index: int) -> bytes:
            return json.dumps({"name": f"Served {index}", "email": f"s-{index}@example.com", "notes": NOTES}).encode()

        kinds = {"create": ("POST", "/api/persons", person), "list": ("GET", "/api/persons?page_size=10", None),
                 "health": ("GET", "/health", None)}  # fmt: skip
        for kind in args.kinds.split(","):  # warm-up: every worker and thread imports and connects
            method, path, body = kinds[kind]
            served_load(base + path, method, body, token, count=200, clients=args.clients)
        workers = children_of(server.pid)
        rows = {kind: {"rate": [], "cpu": [], "pg": []} for kind in args.kinds.split(",")}  # type: ignore[var-annotated]
        for _ in range(args.repeats):
            for kind in rows:
                method, path, body = kinds[kind]
                pg_before = {pid: cpu_seconds(pid) for pid in backends_of_this_database()}
                web_before = sum(cpu_seconds(pid) for pid in [server.pid, *workers])
                rate = served_load(base + path, method, body, token, count=args.requests, clients=args.clients)
                web_after = sum(cpu_seconds(pid) for pid in [server.pid, *workers])
                # A backend that ended meanwhile is missed; one that began is counted from its start.
                pg_after = {pid: cpu_seconds(pid) for pid in backends_of_this_database()}
                pg = sum(max(cpu - pg_before.get(pid, 0.0), 0.0) for pid, cpu in pg_after.items())
                rows[kind]["rate"].append(rate)
                rows[kind]["cpu"].append((web_after - web_before) * 1000 / args.requests)
                rows[kind]["pg"].append(pg * 1000 / args.requests)
        model = (
            f"{args.workers} workers x {args.threads} threads" if args.threads > 1 else f"{args.workers} sync workers"
        )
        print(f"served: {model}, {args.clients} clients, {args.requests} requests x {args.repeats}, median")
        print(f"{'kind':8} {'req/s':>8} {'(min-max)':>13} {'web CPU ms':>11} {'PG ms':>7}")
        for kind, row in rows.items():
            spread = f"({min(row['rate']):.0f}-{max(row['rate']):.0f})"
            print(f"{kind:8} {statistics.median(row['rate']):8.0f} {spread:>13} {statistics.median(row['cpu']):11.3f} "
                  f"{statistics.median(row['pg']):7.3f}")  # fmt: skip
        for role, pid in [("master", server.pid)] + [("worker", pid) for pid in children_of(server.pid)]:
            memory = memory_kb(pid)
            print(f"{role} {pid}: peak RSS {memory['peak_rss'] / 1024:.1f} MB, RSS {memory['rss'] / 1024:.1f} MB, "
                  f"PSS {memory['pss'] / 1024:.1f} MB")  # fmt: skip
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", "--requests", type=int, default=1000, help="requests per kind and repeat")
    parser.add_argument("--repeats", type=int, default=3, help="runs per kind; the median is printed")
    parser.add_argument("--kinds", default="create,list,health")  # also create-keyed, create-replayed (in process)
    parser.add_argument("--profile", choices=["create", "list", "health"], help="cProfile top 25 for this kind")
    parser.add_argument("--profile-out", help="also write the profile's stats to this file (for pstats)")
    parser.add_argument("--queries", action="store_true", help="print the SQL of one request of each kind")
    parser.add_argument("--served", action="store_true", help="through gunicorn and HTTP instead of in-process")
    parser.add_argument("--workers", type=int, default=2, help="--served: gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="--served: threads per worker (1: sync workers)")
    parser.add_argument("--clients", type=int, default=8, help="--served: client threads")
    args = parser.parse_args()
    if args.served:
        served(args)
        return

    import django

    django.setup()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from sapien.wsgi import application

    call = Caller(application)
    token = issue_token(call)
    kinds = args.kinds.split(",")
    counter = 0
    for kind in kinds:  # warm-up: imports, caches, the connection
        run(call, requests_of(kind, token), 50, counter)
        counter += 50
    results: dict[str, dict[str, list[float]]] = {kind: {"cpu": [], "wall": [], "pg": []} for kind in kinds}
    for _ in range(args.repeats):
        for kind in kinds:  # interleaved, so that a burst of foreign load hits every kind alike
            connection.ensure_connection()
            backend = connection.connection.info.backend_pid
            pg_before = cpu_seconds_if_here(backend)
            cpu, wall = run(call, requests_of(kind, token), args.requests, counter)
            counter += args.requests
            pg_after = cpu_seconds_if_here(backend) if connection.connection is not None else None
            results[kind]["cpu"].append(cpu * 1000 / args.requests)
            results[kind]["wall"].append(wall * 1000 / args.requests)
            if pg_before is not None and pg_after is not None:
                results[kind]["pg"].append((pg_after - pg_before) * 1000 / args.requests)
    print(f"ESL_ENABLED={os.environ.get('ESL_ENABLED', 'true')}  {args.requests} requests x {args.repeats}, median")
    print(f"{'kind':15} {'CPU ms':>8} {'(min-max)':>13} {'PG ms':>7} {'wall ms':>8} {'queries':>8}")
    for kind in kinds:
        with CaptureQueriesContext(connection) as queries:
            run(call, requests_of(kind, token), 20, counter)
        counter += 20
        cpus, walls, pgs = results[kind]["cpu"], results[kind]["wall"], results[kind]["pg"]
        spread = f"({min(cpus):.2f}-{max(cpus):.2f})"
        pg_ms = f"{statistics.median(pgs):.2f}" if pgs else "-"
        print(f"{kind:15} {statistics.median(cpus):8.3f} {spread:>13} {pg_ms:>7} {statistics.median(walls):8.3f} "
              f"{len(queries) / 20:8.1f}")  # fmt: skip
        if args.queries:
            per_request = len(queries) // 20
            for query in queries.captured_queries[-per_request:]:
                print(f"    {query['sql'][:160]}")
    if args.profile:
        profiler = cProfile.Profile(time.process_time)  # CPU, not the wait for PostgreSQL
        make = requests_of(args.profile, token)
        environs = [make(counter + index) for index in range(args.requests)]
        profiler.enable()
        for env in environs:
            call(env)
        profiler.disable()
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
        print(out.getvalue())


if __name__ == "__main__":
    main()
