"""Transaction contracts made executable: "must run inside a transaction" and "must not".

Checked when ``ESL_ASSERT_TRANSACTIONS`` is on (the default with ``DEBUG``, and in
tests), as Sentry's outbox checks its own; in production they cost nothing. A
violation raises ``TransactionContractError`` at the call that broke the rule,
rather than letting an event commit without its change or a send hold a lock.

The outside check asks Django's own durability check (``atomic(durable=True)``),
which does not count the atomic blocks a test case wraps around each test; the
inside check sees those blocks as transactions, so it is exact only in tests that
commit for real (``transactional_db``) and in running processes.
"""

from django.conf import settings
from django.db import transaction


class TransactionContractError(AssertionError):
    """A function that states a transaction contract was called in breach of it."""


def assert_in_transaction(what: str) -> None:
    """Raises unless an atomic block is open: ``what`` must commit or roll back with the caller's change."""
    if settings.ESL_ASSERT_TRANSACTIONS and transaction.get_autocommit():
        raise TransactionContractError(f"{what} must run inside a transaction (transaction.atomic).")


def assert_no_transaction(what: str) -> None:
    """Raises inside an atomic block: ``what`` does slow I/O or commits on its own, and must hold no transaction."""
    if not settings.ESL_ASSERT_TRANSACTIONS or transaction.get_autocommit():
        return
    try:
        with transaction.atomic(durable=True, savepoint=False):  # refused when nested in a block the caller opened
            pass
    except RuntimeError as exc:
        raise TransactionContractError(f"{what} must not run inside a transaction.") from exc
