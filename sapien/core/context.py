"""Who and what caused the change being made: the ``metadata`` of its events, the correlation id of its logs.

Bound per request (``sapien.core.middleware``) or per task (``sapien.celery``) in a
context variable, so that model signals and log filters can read it without the
request being passed down. It lives in core, under everything that reads it: the
outbox (``sapien.events``), authentication and the JSON logs.
"""

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class EventContext:
    correlation_id: str
    triggered_by: str | None = None
    source: str = "system"
    traceparent: str | None = None  # the W3C trace context the request came with, when valid (sapien.core.tracing)


_current: ContextVar[EventContext | None] = ContextVar("sapien_event_context", default=None)


def new_correlation_id() -> str:
    return f"req_{uuid.uuid4().hex}"


def current_context() -> EventContext:
    context = _current.get()
    if context is None:
        context = EventContext(correlation_id=new_correlation_id())
        _current.set(context)
    return context


def bind_context(
    *,
    correlation_id: str | None = None,
    triggered_by: str | None = None,
    source: str = "system",
    traceparent: str | None = None,
) -> None:
    _current.set(
        EventContext(
            correlation_id=correlation_id or new_correlation_id(),
            triggered_by=triggered_by,
            source=source,
            traceparent=traceparent,
        )
    )


def bind_actor(triggered_by: str, source: str | None = None) -> None:
    context = current_context()
    _current.set(replace(context, triggered_by=triggered_by, source=source or context.source))


def clear_context() -> None:
    _current.set(None)


@contextmanager
def overriding(*, triggered_by: str | None, source: str) -> Iterator[EventContext]:
    """Within the block, events name another cause (keeping the correlation id)."""
    previous = current_context()
    token = _current.set(replace(previous, triggered_by=triggered_by, source=source))
    try:
        yield current_context()
    finally:
        _current.reset(token)
