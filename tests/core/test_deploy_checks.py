"""The public development SECRET_KEY: refused by ``check --deploy``, and warned of at every start with DEBUG off."""

import json
import os
import secrets
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_refuses_the_public_development_key(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = settings.DEVELOPMENT_SECRET_KEY

    with pytest.raises(SystemCheckError) as refused:
        call_command("check", "--deploy")

    assert "(sapien.E001) SECRET_KEY is the public development key" in str(refused.value)


def test_check_deploy_accepts_a_key_of_your_own(settings) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = secrets.token_urlsafe(50)
    out, err = StringIO(), StringIO()

    call_command("check", "--deploy", "--fail-level", "CRITICAL", stdout=out, stderr=err)

    assert "sapien.E001" not in out.getvalue() + err.getvalue()


def test_a_plain_check_leaves_the_development_key_to_make_run(settings) -> None:
    settings.SECRET_KEY = settings.DEVELOPMENT_SECRET_KEY
    out, err = StringIO(), StringIO()

    call_command("check", stdout=out, stderr=err)

    assert "sapien.E001" not in out.getvalue() + err.getvalue()


def security_warnings_at_start(**env: str) -> list[str]:
    """What a fresh process that loads Django (as gunicorn, Celery and manage.py do) logs to ``sapien.security``."""
    base = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG"}}
    started = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env={**base, "DJANGO_SETTINGS_MODULE": "sapien.settings", "LOG_FORMAT": "json",
                       "LOG_LEVEL": "INFO", **env},
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    lines = [json.loads(line) for line in started.stderr.splitlines() if line.startswith("{")]
    return [line["level"] + " " + line["message"] for line in lines if line["logger"] == "sapien.security"]


def test_every_process_warns_at_start_when_it_runs_on_the_development_key_with_debug_off() -> None:
    warnings = security_warnings_at_start()

    assert len(warnings) == 1
    assert warnings[0].startswith("WARNING SECRET_KEY is the public development key: anyone can sign blob links")


def test_no_warning_with_a_key_of_your_own_or_in_debug_mode() -> None:
    assert security_warnings_at_start(SECRET_KEY=secrets.token_urlsafe(50)) == []
    assert security_warnings_at_start(DEBUG="true") == []
