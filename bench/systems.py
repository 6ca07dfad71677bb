"""The phases in order, for each system under test: Sapien (every phase) and the peer (warm-up, (a), (b));
and, for --scale, Sapien's stack around the scale phase alone."""

from __future__ import annotations

from pathlib import Path

from bench.config import Config
from bench.loadgen import peer_body, person_body
from bench.peer import PeerStack
from bench.phases.api import api_on_off
from bench.phases.delivery import delivery_phases, sapien_stages
from bench.phases.held_transaction import held_transaction_phase
from bench.phases.isolation import isolation_phase
from bench.phases.relay import relay_phase
from bench.phases.scale import METRICS_TOKEN, retention_hours, scale_phase
from bench.phases.soak import soak_phase
from bench.procs import MemorySampler, Proc
from bench.progress import log
from bench.receiving import ReceiverClient
from bench.results import PeerRun, SapienRun, ScaleRun
from bench.stack import SapienStack, Services, redact


def sapien_run(
    cfg: Config, services: Services, broker: str, work: Path, sampler: MemorySampler, receiver: ReceiverClient,
    receiver_url: str, app_root: Path,
) -> SapienRun:  # fmt: skip
    database = f"sapien_{broker}"
    services.create_database(database)
    stack = SapienStack(services, broker, work, sampler, app_root=app_root)
    stack.env["DATABASE_URL"] = services.pg_url(database)
    db_url = services.pg_url(database)
    log(f"[{broker}] migrating {database}")
    stack.migrate()
    stack.start()
    try:
        tenant = stack.side("tenant", "--name", f"bench-{broker}-a", "--subs", str(cfg.subs), "--callback",
                            f"{receiver_url}/sapien")  # fmt: skip
        token = stack.token(str(tenant["client_id"]), str(tenant["client_secret"]))
        api = f"{stack.base_url}/api/persons"
        common = delivery_phases(cfg, receiver, sampler, api, token, person_body, f"[{broker}]",
                                 lambda: profile_targets(stack.procs), stages=sapien_stages(db_url),
                                 writes_url=db_url)  # fmt: skip
        a = common.a_sustained
        f_isolation = isolation_phase(cfg, stack, receiver, receiver_url, broker, a.deliveries_per_s or 100.0)
        d_api = api_on_off(cfg, stack, receiver_url, broker)
        c_relay = relay_phase(cfg, stack, db_url, broker, receiver, receiver_url)
        # Last: the dead rows it leaves behind would slow the phases after it.
        g_held = held_transaction_phase(cfg, receiver, sampler, api, token, db_url, broker, a.deliveries_per_s)
        soak = None
        if cfg.soak:
            rate = round(min(cfg.soak_rate, 0.5 * (a.events_per_s or 20.0)), 1)
            soak = soak_phase(cfg, stack, receiver, api, token, sampler, broker, rate)
        exited = stack.check_alive()
    finally:
        stack.stop()
    return SapienRun(broker=redact(services.broker_url(broker)), warmup_missing=common.warmup_missing,
                     a_sustained=a, b_latency=common.b_latency, f_isolation=f_isolation, d_api=d_api,
                     c_relay=c_relay, g_held_transaction=g_held, soak=soak, exited_processes=exited)  # fmt: skip


def scale_run(
    cfg: Config, services: Services, work: Path, sampler: MemorySampler, receiver: ReceiverClient, receiver_url: str,
    app_root: Path,
) -> ScaleRun:  # fmt: skip
    """Its own database and a redis-brokered stack whose retention keeps every day the phase loads."""
    database = "sapien_scale"
    services.create_database(database)
    stack = SapienStack(services, "redis", work, sampler, app_root=app_root)
    db_url = services.pg_url(database)
    stack.env |= {"DATABASE_URL": db_url, "ESL_RETENTION_HOURS": str(retention_hours(cfg)),
                  "ESL_METRICS_TOKEN": METRICS_TOKEN}  # fmt: skip
    log(f"[scale] migrating {database}")
    stack.migrate()
    stack.start()
    try:
        return scale_phase(cfg, stack, db_url, receiver, receiver_url)
    finally:
        stack.stop()


def peer_run(
    cfg: Config, services: Services, broker: str, work: Path, sampler: MemorySampler, receiver: ReceiverClient,
    receiver_url: str,
) -> PeerRun:  # fmt: skip
    database = f"peer_{broker}"
    services.create_database(database)
    log(f"[{broker}] peer: django-webhook (venv bench/.peer-venv)")
    peer = PeerStack(work, services.pg_url(database), services.broker_url(broker, redis_db=1), broker, sampler)
    peer.prepare(f"{receiver_url}/peer", cfg.subs)
    peer.start()
    try:
        api = f"{peer.base_url}/persons"
        common = delivery_phases(cfg, receiver, sampler, api, None, peer_body, f"[{broker}] peer",
                                 lambda: profile_targets(peer.procs), writes_url=services.pg_url(database))  # fmt: skip
        exited = peer.check_alive()
    finally:
        peer.stop()
    return PeerRun(package="django-webhook 0.0.15", warmup_missing=common.warmup_missing,
                   a_sustained=common.a_sustained, b_latency=common.b_latency, exited_processes=exited)  # fmt: skip


def profile_targets(running: dict[str, Proc]) -> dict[str, int]:
    """gunicorn workers, the worker's processes, the relay: what py-spy should sample."""
    targets: dict[str, int] = {}
    for name, proc in running.items():
        pids = proc.group_pids()
        if name == "web":
            targets |= {f"web-worker{i}": pid for i, pid in enumerate(pids[1:], 1)}
        elif name == "worker":
            targets["worker-parent"] = pids[0]  # a revision's prefork parent hands tasks on; today's only waits
            targets |= {f"worker{i}": pid for i, pid in enumerate(pids[1:], 1)}
        elif name == "relay":
            targets["relay"] = pids[0]
    return targets
