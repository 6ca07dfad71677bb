"""What a run measures and how long: ``Config``, from the command line's flags."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Config:
    quick: bool
    events: int  # (a) K events
    subs: int  # M subscriptions per organization
    threads: int  # client threads of the load generator
    latency_seconds: float  # (b) each of the two rates
    relay_events: int  # (c) outbox rows
    api_requests: int  # (d) creates per on/off run
    limit_seconds: float  # each physical-limit probe
    peer: bool
    soak: bool
    drain_events: int  # (a2) events whose deliveries are held back and released at once
    hold_seconds: float = 300.0  # (g) how long one transaction stays open
    isolation_seconds: float = 30.0  # (f) each of the clean and the mixed run
    soak_seconds: float = 600.0
    soak_rate: float = 50.0
    profile_dir: Path | None = None  # --profile: py-spy collapsed stacks of phase (a) go here


def build_config(args: argparse.Namespace) -> Config:
    if args.quick:
        return Config(quick=True, events=args.events or 50, subs=args.subs or 2, threads=8, latency_seconds=5,
                      relay_events=1000, api_requests=100, limit_seconds=1, peer=args.peer, drain_events=200,
                      soak=args.soak, hold_seconds=20, isolation_seconds=8)  # fmt: skip
    return Config(quick=False, events=args.events or 2000, subs=args.subs or 3, threads=8, latency_seconds=30,
                  relay_events=20000, api_requests=600, limit_seconds=5, peer=not args.no_peer, drain_events=2000,
                  soak=args.soak)  # fmt: skip


def parser(description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny numbers, redis only, no peer")
    parser.add_argument("--soak", action="store_true", help="add a 10-minute soak at a moderate rate")
    parser.add_argument("--broker", choices=["redis", "amqp", "both"], help="default: both (redis with --quick)")
    parser.add_argument("--events", type=int, help="K events for (a) (default 2000; 50 with --quick)")
    parser.add_argument("--subs", type=int, help="M subscriptions (default 3; 2 with --quick)")
    parser.add_argument("--no-peer", action="store_true", help="skip the django-webhook peer")
    parser.add_argument("--peer", action="store_true", help="run the peer even with --quick")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    parser.add_argument("--profile", action="store_true", help="py-spy the pipeline during (a) (needs py-spy)")
    parser.add_argument("--ref", help="benchmark this git revision (exported with git archive) instead of the "
                        "working tree, e.g. --ref HEAD while the working tree is being edited")  # fmt: skip
    return parser
