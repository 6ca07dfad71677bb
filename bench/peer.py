"""The peer: the ``django-webhook`` PyPI package (Django model signals + Celery), set up like its docs say.

It lives in its own virtualenv (``bench/.peer-venv``, created on first use) and in a
minimal Django project that the bench writes into the run's temporary directory:
one model (``peerapp.Person``) listed in ``DJANGO_WEBHOOK["MODELS"]``, a plain JSON
create view under gunicorn (2 workers, ``ATOMIC_REQUESTS``), and one Celery worker
(prefork, concurrency 2). It uses the same PostgreSQL (database of its own), the
same broker and the same receiver as Sapien.

How django-webhook 0.0.15 works (read from its source): ``post_save`` of a listed
model calls ``fire_webhook.delay()`` once per active webhook whose topics include
``<app>.<Model>/create``, with the JSON payload built in the request; the task
loads the webhook, signs the payload, stores a ``WebhookEvent`` row, POSTs with a
new ``requests.Session()`` (so a new TCP connection per delivery) and updates the
row. Topics are created from ``MODELS`` when the app is ready.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from bench.procs import HOST, ROOT, MemorySampler, Proc, free_port, wait_port

PEER_VENV = ROOT / "bench" / ".peer-venv"
# Same versions as Sapien where they overlap, so the comparison is about design, not versions.
PEER_REQUIREMENTS = [
    "django-webhook==0.0.15",
    "Django==5.2.19",
    "celery==5.7.0",
    "kombu==5.7.0",
    "redis==8.1.0",
    "packaging==26.4",
    "psycopg[binary]==3.3.9",
    "requests==2.34.2",
    "gunicorn==27.0.1",
    "django-model-utils==4.5.1",
]


def peer_python() -> Path:
    """The peer's interpreter; creates or refreshes the venv when the requirement list changed."""
    python = PEER_VENV / "bin" / "python"
    marker = PEER_VENV / ".requirements"
    wanted = hashlib.sha256("\n".join(PEER_REQUIREMENTS).encode()).hexdigest()
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    base = getattr(sys, "_base_executable", sys.executable)
    if not python.exists():
        subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True, timeout=300)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_REQUIREMENTS],
        check=False, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"pip install into {PEER_VENV} failed:\n{done.stderr[-3000:]}")
    marker.write_text(wanted)
    return python


FILES = {
    "manage.py": """
        import os, sys
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproj.settings")
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
    """,
    "peerproj/__init__.py": """
        from .celery import app as celery_app

        __all__ = ["celery_app"]
    """,
    "peerproj/celery.py": """
        import os
        from celery import Celery

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproj.settings")
        app = Celery("peerproj")
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.autodiscover_tasks()
    """,
    "peerproj/settings.py": """
        import os
        from urllib.parse import urlsplit

        _db = urlsplit(os.environ["PEER_DATABASE_URL"])
        SECRET_KEY = "peer-benchmark-only"
        DEBUG = False
        ALLOWED_HOSTS = ["*"]
        USE_TZ = True
        TIME_ZONE = "UTC"
        ROOT_URLCONF = "peerproj.urls"
        WSGI_APPLICATION = "peerproj.wsgi.application"
        DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
        INSTALLED_APPS = [
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_webhook",
            "peerapp",
        ]
        # Django's startproject middleware, as a typical app would have it.
        MIDDLEWARE = [
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
            "django.middleware.clickjacking.XFrameOptionsMiddleware",
        ]
        DATABASES = {
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": _db.path.lstrip("/"),
                "USER": _db.username or "postgres",
                "HOST": _db.hostname,
                "PORT": _db.port,
                "CONN_MAX_AGE": 600,
                "ATOMIC_REQUESTS": True,
            }
        }
        CELERY_BROKER_URL = os.environ["PEER_BROKER_URL"]
        CELERY_TASK_IGNORE_RESULT = True
        CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
        # As documented: list the models whose changes fire webhooks; everything else at its defaults
        # (STORE_EVENTS=True keeps the WebhookEvent audit log, USE_CACHE=True caches the topic lookup).
        DJANGO_WEBHOOK = {"MODELS": ["peerapp.Person"]}
        LOGGING = {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"console": {"class": "logging.StreamHandler"}},
            "root": {"handlers": ["console"], "level": "WARNING"},
        }
    """,
    "peerproj/urls.py": """
        from django.urls import path

        from peerapp.views import health, persons

        urlpatterns = [path("persons", persons), path("health", health)]
    """,
    "peerproj/wsgi.py": """
        import os
        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproj.settings")
        application = get_wsgi_application()
    """,
    "peerapp/__init__.py": "",
    "peerapp/models.py": """
        from django.db import models
        from django.utils import timezone


        class Person(models.Model):
            name = models.CharField(max_length=200)
            email = models.EmailField(blank=True, default="")
            notes = models.TextField(blank=True, default="")
            ref = models.CharField(max_length=64, db_index=True)
            created_at = models.DateTimeField(default=timezone.now)  # editable: model_to_dict keeps it
    """,
    "peerapp/views.py": """
        import json

        from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
        from django.views.decorators.csrf import csrf_exempt

        from peerapp.models import Person


        def health(request):
            return HttpResponse("ok")


        @csrf_exempt
        def persons(request):
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            data = json.loads(request.body)
            person = Person.objects.create(
                name=data["name"], email=data.get("email", ""), notes=data.get("notes", ""), ref=data["ref"]
            )
            return JsonResponse({"id": person.id, "ref": person.ref, "created_at": person.created_at}, status=201)
    """,
    "peer_side.py": """
        import json, os, sys

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "peerproj.settings")
        import django

        django.setup()  # django_webhook's ready() creates the topics from MODELS
        from django_webhook.models import Webhook, WebhookSecret, WebhookTopic

        url, count = sys.argv[1], int(sys.argv[2])
        topic = WebhookTopic.objects.get(name="peerapp.Person/create")
        ids = []
        for index in range(count):
            hook = Webhook.objects.create(url=f"{url}?sub={index}", active=True)
            hook.topics.add(topic)
            WebhookSecret.objects.create(webhook=hook, token=f"peer-benchmark-secret-{index:04d}")
            ids.append(hook.id)
        print(json.dumps({"webhooks": ids}))
    """,
}


class PeerStack:
    def __init__(self, work_dir: Path, pg_url: str, broker_url: str, label: str, sampler: MemorySampler) -> None:
        self.python = str(peer_python())
        self.dir = work_dir / f"peer-{label}"
        self.log_dir = work_dir / "logs"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.label = label
        self.sampler = sampler
        self.web_port = free_port()
        self.procs: dict[str, Proc] = {}
        self.env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "VIRTUAL_ENV"))}
        self.env.update({"PEER_DATABASE_URL": pg_url, "PEER_BROKER_URL": broker_url, "PYTHONUNBUFFERED": "1"})
        self._write_project()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.web_port}"

    def _write_project(self) -> None:
        for relative, text in FILES.items():
            path = self.dir / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip())

    def manage(self, *args: str, timeout: float = 600) -> str:
        done = subprocess.run(
            [self.python, "manage.py", *args], cwd=self.dir, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"peer manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        return done.stdout

    def prepare(self, receiver_url: str, webhooks: int) -> None:
        self.manage("makemigrations", "peerapp", "-v", "0")
        self.manage("migrate", "--noinput", "-v", "0")
        done = subprocess.run(
            [self.python, "peer_side.py", receiver_url, str(webhooks)], cwd=self.dir, env=self.env,
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode:
            raise RuntimeError(f"peer webhook set-up failed:\n{done.stderr[-3000:]}")
        celery = [self.python, "-m", "celery", "-A", "peerproj"]
        subprocess.run([*celery, "purge", "-f"], cwd=self.dir, env=self.env, capture_output=True, timeout=120,
                       check=False)  # fmt: skip
        json.loads(done.stdout.strip().splitlines()[-1])

    def start(self) -> None:
        commands = {
            "web": [self.python, "-m", "gunicorn", "peerproj.wsgi", "--bind", f"{HOST}:{self.web_port}",
                    "--workers", "2", "--graceful-timeout", "5", "--log-level", "warning"],
            "worker": [self.python, "-m", "celery", "-A", "peerproj", "worker", "--loglevel", "WARNING",
                       "--concurrency", "2", "-n", f"peer-{self.label}@%h"],
        }  # fmt: skip
        for name, command in commands.items():
            proc = Proc(f"peer-{self.label}-{name}", command, self.env, self.log_dir, cwd=self.dir)
            self.procs[name] = proc
            self.sampler.watch(f"peer-{self.label}.{name}", proc.pid)
        wait_port(self.web_port, 60, self.procs["web"])

    def stop(self) -> None:
        for name in ("worker", "web"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                self.sampler.unwatch(f"peer-{self.label}.{name}")
                proc.stop()

    def check_alive(self) -> list[str]:
        return [name for name, proc in self.procs.items() if not proc.alive()]
