"""What a run measures and how long: ``Config``, from the command line's flags."""

from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass, replace
from pathlib import Path

DEFAULT_SCALE_SIZES = (10_000, 1_000_000, 10_000_000)


@dataclass(frozen=True)
class Config:
    quick: bool
    events: int  # (a) K events
    subs: int  # M subscriptions per organization
    threads: int  # client threads of the load generator
    latency_seconds: float  # (b) each of its three rates
    relay_events: int  # (c) outbox rows
    api_requests: int  # (d) creates per on/off run
    limit_seconds: float  # each physical-limit probe
    peer: bool
    soak: bool
    drain_events: int  # (a2) events whose deliveries are held back and released at once
    hold_seconds: float = 300.0  # (g) how long one transaction stays open
    isolation_seconds: float = 30.0  # (f) each of the clean and the mixed run
    isolation_rate: float | None = None  # (f) events/s; None: half of (a)'s delivery rate over its 21 subscriptions
    soak_seconds: float = 600.0
    soak_rate: float = 50.0
    profile_dir: Path | None = None  # --profile: py-spy collapsed stacks of phase (a) go here
    # --scale: retained deliveries per step (empty: not a scale run), requests per figure, days the history spans,
    # and the longest projected load (minutes) before a size is skipped (None: no limit)
    scale_sizes: tuple[int, ...] = ()
    scale_repeats: int = 7
    scale_days: int = 3
    scale_max_load_minutes: float | None = None


def build_config(args: argparse.Namespace) -> Config:
    cfg = replace(_phases_config(args), isolation_rate=args.isolation_rate)
    if args.isolation_seconds:
        cfg = replace(cfg, isolation_seconds=args.isolation_seconds)
    if args.hold_seconds:
        cfg = replace(cfg, hold_seconds=args.hold_seconds)
    if args.api_requests:
        cfg = replace(cfg, api_requests=args.api_requests)
    if args.scale:
        return replace(cfg, peer=False, scale_sizes=args.scale_sizes or DEFAULT_SCALE_SIZES,
                       scale_repeats=args.scale_repeats, scale_days=args.scale_days,
                       scale_max_load_minutes=args.scale_max_load_minutes)  # fmt: skip
    return cfg


def _phases_config(args: argparse.Namespace) -> Config:
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
    parser.add_argument("--isolation-rate", type=float, help="(f) at this many events/s instead of half of (a)'s "
                        "delivery rate over its subscriptions: to compare runs whose (a) differ")  # fmt: skip
    parser.add_argument("--isolation-seconds", type=float, help="(f) each run this long (default 30; 8 with --quick)")
    parser.add_argument("--hold-seconds", type=float, help="(g) the transaction held this long (default 300; 20 "
                        "with --quick): a quick run with a full hold")  # fmt: skip
    parser.add_argument("--api-requests", type=int, help="(d) creates per run (default 600; 100 with --quick): "
                        "longer runs, for a ratio that a burst of foreign load moves less")  # fmt: skip
    parser.add_argument("--ref", help="benchmark this git revision (exported with git archive) instead of the "
                        "working tree, e.g. --ref HEAD while the working tree is being edited")  # fmt: skip
    scale = parser.add_argument_group("scale (--scale runs only this: bench/phases/scale.py)")
    scale.add_argument("--scale", action="store_true", help="bulk-load the history to each of --scale-sizes retained "
                       "deliveries and time the reads, statements and the day drop at each size")  # fmt: skip
    scale.add_argument("--scale-sizes", type=sizes, metavar="N,N,...",
                       help="retained deliveries per step, ascending; 10k and 1M are understood "
                       "(default 10000,1000000,10000000)")  # fmt: skip
    scale.add_argument("--scale-repeats", type=int, default=7, metavar="N", help="timed runs per figure (median)")
    scale.add_argument("--scale-days", type=int, default=3, metavar="D", help="days the loaded history spans")
    scale.add_argument("--scale-max-load-minutes", type=float, metavar="M",
                       help="skip a size whose load, projected from the last rate, would take longer")  # fmt: skip
    return parser


def sizes(text: str) -> tuple[int, ...]:
    """``10000,1M`` -> ``(10000, 1000000)``: positive, strictly ascending (each step grows the history)."""
    factors = {"k": 1_000, "m": 1_000_000}
    try:
        values = tuple(
            int(float(item[:-1]) * factors[item[-1]]) if item[-1] in factors else int(item)
            for item in (part.strip().lower() for part in text.split(","))
        )
    except (ValueError, IndexError) as exc:
        raise argparse.ArgumentTypeError(f"not a list of sizes: {text!r}") from exc
    if not values or values[0] < 1 or any(b <= a for a, b in itertools.pairwise(values)):
        raise argparse.ArgumentTypeError(f"sizes must be positive and ascending: {text!r}")
    return values
