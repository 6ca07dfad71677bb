"""Deliveries born claimed: the relay hands each batch it fans out straight to a worker.

A delivery due at once is inserted already claimed for its first attempt (claim token,
lease, ``attempt_count = 1``; never an ordered subscription's keyed one, which waits for its
key's turn in the claim: ``deliveries/ordering.py``), and the claim's token and the batch's keys travel in the
task message; the worker reads the rows by key and sends. No claim statement, no
second write of each row before its send. What can go wrong only delays: a message that
never arrives, or a worker that dies with it, leaves the rows to lapse with their lease,
after which the sweep's ordinary claim takes them; a broker that refuses the message gets
the claim released at once.
"""

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from deliveries.claims import claim_lease_seconds
from deliveries.models import DeliveryStatus

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandedBatch:
    """Deliveries born under one claim: its token, their ids, and the span of their events' times (their days)."""

    token: uuid.UUID
    ids: tuple[uuid.UUID, ...]
    since: datetime
    until: datetime

    def message(self) -> dict[str, Any]:
        """The task's keyword arguments: primitives only."""
        return {"token": str(self.token), "ids": [str(i) for i in self.ids],
                "since": self.since.isoformat(), "until": self.until.isoformat()}  # fmt: skip

    def summary(self) -> str:
        """How the task's arguments show in logs and monitors: the claim and the count, not every id. Given to
        Celery, it spares each hand-over Celery's own rendering of the arguments (a third of its publish CPU)."""
        return f"{{'token': '{self.token}', 'deliveries': {len(self.ids)}}}"

    @classmethod
    def from_message(cls, *, token: str, ids: list[str], since: str, until: str) -> "HandedBatch":
        return cls(
            token=uuid.UUID(token), ids=tuple(uuid.UUID(i) for i in ids),
            since=datetime.fromisoformat(since), until=datetime.fromisoformat(until),
        )  # fmt: skip

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "HandedBatch":
        """From the relay statement's ``json_agg`` of its handed claims (timestamps in ISO 8601)."""
        return cls.from_message(token=row["token"], ids=row["ids"], since=row["since"], until=row["until"])


def hand_parameters(*, batch_size: int) -> dict[str, Any]:
    """The relay statement's parameters for born claims: a fresh token base, ``batch_size`` deliveries to a claim,
    and the lease a claim of that size gets."""
    return {"hand": True, "hand_token": uuid.uuid4().hex, "hand_size": batch_size,
            "hand_lease": claim_lease_seconds(batch_size)}  # fmt: skip


# The relay statement's parameters when it hands nothing over: every delivery is born pending and unclaimed.
NOT_HANDING = {"hand": False, "hand_token": "", "hand_size": 1, "hand_lease": 0}


def hand_to_workers(batches: list[HandedBatch]) -> None:
    """Sends each batch to a worker. Never raises: a batch the broker refused has its claim released, so that
    the next sweep's claim takes its deliveries at once rather than after the lease."""
    # Here, not at the top: deliveries.tasks imports the relay, which imports this module.
    from deliveries.tasks import deliver_claimed

    for index, batch in enumerate(batches):
        try:
            deliver_claimed.apply_async(kwargs=batch.message(), retry=False, argsrepr="()", kwargsrepr=batch.summary())
        except Exception:  # noqa: BLE001 - broker down: the claims go back to the sweep
            logger.warning("Could not reach the broker to hand deliveries to workers; the sweep will send them.")
            claims_release(batches[index:])
            return


RELEASE_SQL = f"""
UPDATE deliveries_delivery
SET claim_token = NULL, claimed_until = NULL, attempt_count = attempt_count - 1
WHERE id = ANY(%(ids)s::uuid[]) AND event_created_at >= %(since)s AND event_created_at <= %(until)s
  AND claim_token = %(token)s AND status = '{DeliveryStatus.PENDING}'
"""


def claims_release(batches: list[HandedBatch]) -> None:
    """Gives handed batches' deliveries back, unclaimed and with their attempt uncounted: due for the sweep."""
    try:
        with connection.cursor() as cursor:
            for batch in batches:
                keys: dict[str, Any] = {
                    "ids": list(batch.ids), "since": batch.since, "until": batch.until, "token": batch.token,
                }  # fmt: skip
                cursor.execute(RELEASE_SQL, keys)
    except Exception:  # noqa: BLE001 - the leases lapse on their own: only later
        logger.warning("Could not release the claims of deliveries not handed over; they are sent once leases lapse.")
