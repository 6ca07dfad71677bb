"""Django-side steps of the benchmark, run as ``python bench/sapien_side.py ACTION`` with the stack's env.

    tenant --name N --subs M --callback URL [--extra-callback URL ...]
                                              create an organization, an OAuth client and M subscriptions
                                              (plus one per extra callback)
    relay-probe                               time ``relay_pending`` over what the outbox holds

Each prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# The application's code: this checkout, or the snapshot of a git revision that ``python -m bench --ref`` exported.
APP_ROOT = Path(os.environ.get("BENCH_APP_ROOT") or Path(__file__).resolve().parent.parent)
sys.path.insert(0, str(APP_ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sapien.settings")


def tenant(args: argparse.Namespace) -> dict[str, object]:
    from sapien.core.services import client_create, organization_create
    from subscriptions.services import subscription_create

    organization = organization_create(name=args.name, tier="enterprise")
    created = client_create(
        organization=organization, name=f"{args.name}-client", scopes=["entities:read", "entities:write"]
    )
    subscriptions = [
        str(
            subscription_create(
                organization=organization, callback_url=f"{args.callback}?sub={index}", events=["person.created"]
            ).id
        )
        for index in range(args.subs)
    ] + [
        str(subscription_create(organization=organization, callback_url=url, events=["person.created"]).id)
        for url in args.extra_callback
    ]
    return {
        "organization_id": str(organization.id),
        "client_id": created.application.client_id,
        "client_secret": created.client_secret,
        "subscriptions": subscriptions,
    }


def relay_probe(args: argparse.Namespace) -> dict[str, object]:
    from django.conf import settings
    from django.db import connection

    from deliveries.relay import relay_pending

    connection.ensure_connection()
    started = time.perf_counter()
    result = relay_pending(batch_size=settings.ESL_RELAY_BATCH_SIZE, max_batches=args.max_batches)
    seconds = time.perf_counter() - started
    return {
        "events": result.events,
        "deliveries": result.deliveries,
        "seconds": seconds,
        "batch_size": settings.ESL_RELAY_BATCH_SIZE,
    }


def main() -> None:
    import django

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="action", required=True)
    tenant_parser = sub.add_parser("tenant")
    tenant_parser.add_argument("--name", required=True)
    tenant_parser.add_argument("--subs", type=int, required=True)
    tenant_parser.add_argument("--callback", required=True)
    tenant_parser.add_argument("--extra-callback", action="append", default=[])
    probe = sub.add_parser("relay-probe")
    probe.add_argument("--max-batches", type=int, default=10_000)
    args = parser.parse_args()
    django.setup()
    out = tenant(args) if args.action == "tenant" else relay_probe(args)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
