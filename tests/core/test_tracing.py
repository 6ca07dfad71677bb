"""The W3C ``traceparent`` Sapien accepts and passes on, and tracing's cost when it is off: nothing imported."""

import json
import subprocess
import sys

import pytest

from sapien.core import tracing
from tests.support.processes import ROOT, service_env

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("supplied", "kept"),
    [
        (VALID, VALID),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        # A later version: its first four fields are kept, whatever follows them.
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next",
         "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ],
)  # fmt: skip
def test_a_valid_traceparent_is_kept_as_55_characters(supplied: str, kept: str) -> None:
    assert tracing.valid_traceparent(supplied) == kept


@pytest.mark.parametrize(
    "supplied",
    [
        None,
        "",
        "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  # uppercase
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is forbidden
        VALID + "-extra",  # version 00 has exactly four fields
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  # a later version's fields are dash-separated
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  # dashes in the wrong places
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        " " + VALID,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\u0661",  # a non-ASCII digit
    ],
)
def test_a_malformed_traceparent_is_refused(supplied: str | None) -> None:
    assert tracing.valid_traceparent(supplied) is None


def test_with_tracing_off_no_span_is_made_and_the_bound_traceparent_is_the_current_one(settings) -> None:
    settings.ESL_OTEL_ENABLED = False
    from sapien.core.context import bind_context, clear_context

    bind_context(traceparent=VALID)
    try:
        with tracing.span("anything") as span:
            assert span is None
            assert tracing.current_traceparent() == VALID
    finally:
        clear_context()
    assert tracing.current_traceparent() is None


# Every process's imports: the web application, the Celery app and its tasks, the relay command, the send path.
IMPORTS_OF_EVERY_PROCESS = """
import json, sys
from sapien.core.tracing import keep_opentelemetry_out_unless_configured
keep_opentelemetry_out_unless_configured()  # as each entry point does first
import django
django.setup()
import sapien.gunicorn_conf, sapien.wsgi  # as gunicorn's master loads them
from sapien.celery import app
app.loader.import_default_modules()
import deliveries.dispatch, deliveries.senders, deliveries.management.commands.run_relay
print(json.dumps(sorted(name for name, module in sys.modules.items() if name.startswith("opentelemetry") and module)))
"""


@pytest.mark.parametrize(
    ("environment", "imported"),
    [
        ({}, False),
        ({"ESL_OTEL_ENABLED": "false", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}, True),
    ],
)
def test_opentelemetry_is_imported_only_when_tracing_is_configured(db, environment, imported) -> None:
    env = service_env("redis://127.0.0.1:9/0", **environment)
    for name in ("ESL_OTEL_ENABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        if name not in environment:
            env.pop(name, None)
    env["OTEL_SDK_DISABLED"] = environment.get("OTEL_SDK_DISABLED", "")
    result = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF_EVERY_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    if imported:
        # Instrumented (in the master, before the handler is made), but no SDK yet: that comes after the fork.
        assert "opentelemetry.instrumentation.django" in modules
        assert "opentelemetry.sdk.trace" not in modules
    else:
        assert modules == []
