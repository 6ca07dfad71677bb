"""Traces: the W3C trace context of what caused an event, and OpenTelemetry spans when tracing is configured.

An event keeps the ``traceparent`` of the request (or task) that caused it, and each of its webhooks carries one,
so that a receiver's trace joins the sender's. With tracing off, that is the request's own ``traceparent`` header,
passed on as it came when it is valid (and dropped when not); with tracing on (``ESL_OTEL_ENABLED``,
docs/operations.md "Traces"), it is the span that recorded the event, and each process exports its spans over OTLP.

Off, nothing of OpenTelemetry is imported, so a process keeps its memory, and ``span()`` is a ``nullcontext``. On,
``start()`` sets up the SDK once per process, after any fork (gunicorn's workers, Celery's children), and the
instrumentations of Django, Celery, psycopg and urllib3.
"""

import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any

from django.conf import settings

from sapien.core.context import current_context

# version 00: trace id, parent (span) id, flags, in lowercase hex; a later version may add fields after a dash.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
TRACEPARENT_LENGTH = 55


def valid_traceparent(value: str | None) -> str | None:
    """``value`` if it is a W3C ``traceparent`` worth passing on, else ``None``; never raises.

    A later version's first four fields are kept (the specification's rule), as 55 characters: an event stores no
    more. Version ``ff``, an all-zero trace or parent id, uppercase hex, or a version 00 with more fields is invalid.
    """
    if not value or len(value) < TRACEPARENT_LENGTH:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, _flags = match.groups()
    rest = value[TRACEPARENT_LENGTH:]
    if version == "ff" or (version == "00" and rest) or (rest and rest[0] != "-"):
        return None
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return value[:TRACEPARENT_LENGTH]


def configured(environ: Mapping[str, str]) -> bool:
    """Whether tracing is on (``settings.ESL_OTEL_ENABLED``): with ``ESL_OTEL_ENABLED`` true, or by default when an
    OTLP endpoint is named (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``…_TRACES_ENDPOINT``); never with
    ``OTEL_SDK_DISABLED`` true."""

    def true(name: str) -> bool:
        return environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}

    if true("OTEL_SDK_DISABLED"):
        return False
    if environ.get("ESL_OTEL_ENABLED", "").strip():
        return true("ESL_OTEL_ENABLED")
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def keep_opentelemetry_out_unless_configured() -> None:
    """With tracing off, makes OpenTelemetry unimportable in this process; the first thing a process's entry point
    does. redis-py (which kombu imports) otherwise loads OpenTelemetry's metrics SDK whenever it is installed, for
    metrics of its own that Sapien does not use: about 3 MB and a third of a second in every process."""
    if not configured(os.environ) and "opentelemetry" not in sys.modules:
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import raises ImportError: the documented way


def span(name: str, attributes: Mapping[str, Any] | None = None, **options: Any) -> Any:
    """A context manager: an OpenTelemetry span made current for the block when tracing is on (it yields the span),
    else a ``nullcontext`` that yields ``None``. ``options``: ``parent`` (a ``traceparent`` to continue, instead of
    the current span), ``links`` (``traceparent``s or span contexts), ``kind`` (``"client"``, ``"producer"``…)."""
    if not settings.ESL_OTEL_ENABLED:
        return nullcontext()
    return _span(name, attributes, **options)


@contextmanager
def _span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    *,
    parent: str | None = None,
    links: Iterable[Any] = (),
    kind: str = "internal",
) -> Iterator[Any]:
    from opentelemetry import trace

    context = _context_of(parent) if parent else None
    with _tracer().start_as_current_span(
        name,
        context=context,
        kind=getattr(trace.SpanKind, kind.upper()),
        attributes=dict(attributes or {}),
        links=[trace.Link(link) for link in _span_contexts(links)],
    ) as current:
        yield current


def without_query(url: str) -> str:
    """``url`` as a span names it: a URL's query may hold credentials (a receiver's, a signed link's)."""
    return url.split("?", 1)[0]


def set_http_outcome(span: Any, *, status_code: int | None, error: str = "") -> None:
    """Records an outgoing HTTP request's outcome on its client ``span`` (``None`` when tracing is off): the answer's
    status, and an error status for an answer of 400 or more, or for no answer at all (``error`` says why)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    if status_code is not None:
        span.set_attribute("http.status_code", status_code)
    if status_code is None or status_code >= 400:
        span.set_status(Status(StatusCode.ERROR, error or None))


def add_links(span: Any, traceparents: Iterable[str | None], *, limit: int = 32) -> None:
    """Links ``span`` (``None`` when tracing is off) to the distinct traces named, up to ``limit`` of them."""
    if span is None:
        return
    seen: set[str] = set()
    for traceparent in traceparents:
        if traceparent and traceparent not in seen and len(seen) < limit:
            seen.add(traceparent)
            for context in _span_contexts([traceparent]):
                span.add_link(context)


def set_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """Sets ``attributes`` on ``span``; nothing when tracing is off (``span`` is ``None``)."""
    if span is not None:
        span.set_attributes(attributes)


def current_traceparent() -> str | None:
    """The ``traceparent`` an event recorded now keeps: the current span's when tracing is on, else the one the
    request (or task) came with, if valid."""
    if settings.ESL_OTEL_ENABLED:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    return current_context().traceparent


def _context_of(traceparent: str) -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def _span_contexts(links: Iterable[Any]) -> Iterator[Any]:
    from opentelemetry import trace

    for link in links:
        if isinstance(link, str):
            link = trace.get_current_span(_context_of(link)).get_span_context()
        if link is not None and link.is_valid:
            yield link


def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("sapien")


class _State:
    instrumented = False
    started_in: int | None = None  # the process id that set the SDK up
    deferred_in: int | None = None  # a server's master that forks its workers after loading: it only instruments


_state = _State()


def defer_start_to_fork() -> None:
    """For a server that loads the application and then forks (gunicorn's ``preload_app``): in this process,
    ``start_unless_deferred`` only instruments, and each worker calls ``start()`` once forked."""
    _state.deferred_in = os.getpid()


def instrument() -> None:
    """Installs the instrumentations of Django (its middleware, so before the WSGI handler is made), Celery,
    psycopg and urllib3, once per process. They only use OpenTelemetry's API: their spans go nowhere until
    ``start()`` sets a tracer provider up."""
    if not settings.ESL_OTEL_ENABLED or _state.instrumented:
        return
    _state.instrumented = True
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.urllib3 import URLLib3Instrumentor

    # No span of a signed blob link's request, whose query is a credential; OTEL_PYTHON_DJANGO_EXCLUDED_URLS adds more.
    excluded = ",".join(filter(None, ["api/v1/blobs", os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "")]))
    DjangoInstrumentor().instrument(excluded_urls=excluded)
    CeleryInstrumentor().instrument()
    PsycopgInstrumentor().instrument(skip_dep_check=True)
    # urllib3 carries the blob store's requests (boto3's); webhooks make their own span (deliveries/tracing.py).
    URLLib3Instrumentor().instrument(url_filter=without_query)


def start(*, service: str) -> bool:
    """Sets tracing up in this process when configured: the instrumentations, and an SDK tracer provider exporting
    over OTLP/HTTP (the ``OTEL_EXPORTER_OTLP_*`` variables). Once per process; call it after any fork. Returns
    whether tracing is on. ``service`` names the process (``sapien-web``…) unless ``OTEL_SERVICE_NAME`` does."""
    if not settings.ESL_OTEL_ENABLED:
        return False
    instrument()
    if _state.started_in == os.getpid():
        return True
    _state.started_in = os.getpid()
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"sapien-{service}"}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True


def start_unless_deferred(*, service: str) -> None:
    """``start()``, or only ``instrument()`` in a server's master that forks its workers after loading."""
    if _state.deferred_in == os.getpid():
        instrument()
    else:
        start(service=service)


def flush(timeout_millis: int = 5000) -> None:
    """Exports the spans not sent yet: before a process exits, or a test reads them."""
    if _state.started_in != os.getpid():
        return
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush(timeout_millis)
