"""Every setting of Sapien ESL, read from the environment with working defaults.

Sapien's own tunables (``ESL_*``, ``PRESENCE_*``, ``AVAILABILITY_*``, ``OAUTH_*``,
``RATE_LIMIT_*``) sit together at the end of this module; code reads them from
``django.conf.settings`` and nowhere else.
"""

import ipaddress
import math
import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from sapien.core.broker_probe import REDIS_SCHEMES
from sapien.core.deferred_imports import JWCRYPTO, defer_imports
from sapien.core.egress_proxy import parse_egress_proxy_url
from sapien.core.tracing import configured as tracing_configured

# Lets the admin and querysets take type parameters at run time (``ModelAdmin[Person]``).
django_stubs_ext.monkeypatch()
# cryptography (about 10 MB a process) only once OpenID Connect or signed tokens use it: sapien/core/deferred_imports.py
defer_imports(*JWCRYPTO)

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw else default


SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def env_duration(name: str, default: float, *, unit: str = "s") -> float:
    """Every duration is read here, in ``unit``, the unit its setting's name ends with (``…_SECONDS``, ``…_MS``,
    ``…_HOURS``): a plain number is in that unit (``180``); a number with a unit is in its own (``500ms``, ``8s``,
    ``3m``, ``1h``). Negative, non-finite or unreadable values stop the process at start."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    number, factor = raw, 1.0
    for suffix in ("ms", "s", "m", "h"):  # "ms" before "s"
        if raw.endswith(suffix):
            number, factor = raw.removesuffix(suffix), SECONDS_PER_UNIT[suffix] / SECONDS_PER_UNIT[unit]
            break
    try:
        value = float(number) * factor
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a duration: use a number of {unit} or 500ms, 8s, 3m, 1h.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", False)
# Public (it is in the repository): ``check --deploy`` refuses it, and every process warns at start when DEBUG is off.
DEVELOPMENT_SECRET_KEY = "sapien-insecure-development-key-change-me-in-production"  # noqa: S105
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)


def default_allowed_hosts() -> str:
    """What the server answers to when ``ALLOWED_HOSTS`` is unset: loopback and the host of ``ESL_PUBLIC_URL``.

    Any other ``Host`` header is a 400: a forged one cannot rewrite the links the API builds from it.
    """
    hosts = ["localhost", "127.0.0.1", "[::1]"]
    public = urlsplit(env_str("ESL_PUBLIC_URL", "")).hostname
    if public:
        hosts.append(f"[{public}]" if ":" in public else public)
    return ",".join(dict.fromkeys(hosts))


ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", default_allowed_hosts())
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "http://localhost:8080,http://127.0.0.1:8080")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "sapien.core",
    "oauth2_provider",
    "sapien.events",
    "sapien.entities",
    "subscriptions",
    "deliveries",
    "availability",
]

MIDDLEWARE = [
    "sapien.core.middleware.RequestContextMiddleware",
    "sapien.core.middleware.BodySizeLimitMiddleware",
    "sapien.core.middleware.JSONBodyMiddleware",  # after the size limit: a malformed JSON body is a 400 before any view
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Sessions, sign-in and messages for browser pages only; an API request skips them (sapien.core.middleware).
    "sapien.core.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "sapien.core.middleware.AuthenticationMiddleware",
    "sapien.core.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "sapien.core.middleware.AdminEventContextMiddleware",
    "sapien.events.middleware.RateLimitHeadersMiddleware",
    "sapien.core.middleware.UserActivityMiddleware",
]

ROOT_URLCONF = "sapien.urls"
APPEND_SLASH = False
WSGI_APPLICATION = "sapien.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL only: the outbox relies on SKIP LOCKED and transactional DDL.
DATABASES = {
    "default": dj_database_url.parse(
        # The default is where ``make run`` puts its embedded PostgreSQL, so manage.py finds it too.
        env_str("DATABASE_URL", "postgresql://postgres@127.0.0.1:54329/sapien"),
        conn_max_age=int(env_duration("DB_CONN_MAX_AGE", 600)),
        conn_health_checks=True,
        engine="sapien.core.postgresql",  # Django's, with a cheaper health check (sapien/core/postgresql/base.py)
    )
}
# Every API write is one transaction: the change and its outbox event commit together.
DATABASES["default"]["ATOMIC_REQUESTS"] = True
# No JIT compilation: every statement here is short, and a cost estimate inflated by many partitions or a long
# backlog would otherwise pay hundreds of milliseconds compiling a claim that runs in a few.
# Generic plans for prepared statements (only the few of sapien/core/prepared.py are): PostgreSQL's own choice
# re-plans, at every run, a statement whose partitions its parameters prune (a generic plan's cost counts every
# partition, although it prunes them when it starts), and such planning cost more than the run.
_DATABASE_OPTIONS = DATABASES["default"].setdefault("OPTIONS", {})
_PLANNER = "-c jit=off -c plan_cache_mode=force_generic_plan"
_DATABASE_OPTIONS["options"] = f"{_PLANNER} {_DATABASE_OPTIONS.get('options', '')}".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request throttling counts in this cache: Redis shares the counts between processes.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": env_str("CACHE_URL", "")}
        if env_str("CACHE_URL", "").startswith("redis")
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_USER_MODEL = "core.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
]
LOGIN_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".data" / "static"
MEDIA_ROOT = Path(env_str("ESL_BLOB_ROOT", str(BASE_DIR / ".data" / "blobs")))

# Request bodies: a Person's notes may hold 1 MiB of characters (up to 6 bytes each in JSON); beyond 8 MiB is a 413.
MAX_REQUEST_BODY_BYTES = env_int("MAX_REQUEST_BODY_BYTES", 8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["sapien.core.auth.OrganizationTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["sapien.core.permissions.HasRequiredScope"],
    "DEFAULT_PARSER_CLASSES": ["sapien.core.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["sapien.core.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "sapien.core.negotiation.ContentNegotiation",
    # Keyset cursors, newest first, no count; page sizes are sapien.core.pagination's (50, at most 200).
    "DEFAULT_PAGINATION_CLASS": "sapien.core.pagination.CursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "sapien.core.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": ["sapien.core.throttling.ClientRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"client": env_str("API_THROTTLE_RATE", "6000/min")},
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Sapien ESL API",
    "DESCRIPTION": "Entities, availability and webhook subscriptions; every change becomes a signed webhook.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from the pinned drf-spectacular-sidecar, served by whitenoise: no CDN, no @latest.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call to the public validator.swagger.io with the schema's URL.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "COMPONENT_SPLIT_REQUEST": True,
    "SECURITY": [{"oauth2": []}],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "sapien.core.schema.add_error_responses",
        "sapien.core.schema.add_idempotency_key_header",
        "sapien.events.schemas.openapi.add_event_components",
    ],
    "ENUM_NAME_OVERRIDES": {
        "PersonStatusEnum": "sapien.entities.models.PersonStatus",
        "AvailabilityStatusEnum": "availability.models.Status",
        "DeliveryStatusEnum": "deliveries.models.DeliveryStatus",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "correlation": {"()": "sapien.core.logging.CorrelationIdFilter"},
        # Every record, from any logger: no signature, token, secret or password of a URL reaches a log.
        "redact": {"()": "sapien.core.logging.RedactCredentialsFilter"},
    },
    "formatters": {
        "json": {"()": "sapien.core.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env_str("LOG_FORMAT", "json"),
            "filters": ["correlation", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django's own handlers (a console with DEBUG, mail to ADMINS, runserver's request lines) would
        # bypass the console's filters: Django's records go through the root's handler like all others.
        "django": {"handlers": []},
        "django.server": {"handlers": [], "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        # One line per task received and finished, every second from the sweeps: too chatty for INFO.
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.app.trace": {"level": "WARNING"},
    },
}

# --- OAuth2 -----------------------------------------------------------------
OAUTH_TOKEN_LIFETIME_SECONDS = int(env_duration("OAUTH_TOKEN_LIFETIME", 3600))
OAUTH_REFRESH_LIFETIME_SECONDS = int(env_duration("OAUTH_REFRESH_LIFETIME", 86400))
# How long a web process takes a token it has read without reading it again (sapien.core.auth.RecentTokens):
# the longest a token revoked through another process is still taken. 0 reads every token at every request.
OAUTH_TOKEN_CACHE_SECONDS = env_duration("OAUTH_TOKEN_CACHE", 1)
if OAUTH_TOKEN_CACHE_SECONDS > 5:
    raise ImproperlyConfigured(f"OAUTH_TOKEN_CACHE is {OAUTH_TOKEN_CACHE_SECONDS} s; revocation may wait 5 s at most.")
OAUTH2_PROVIDER_APPLICATION_MODEL = "core.Application"
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": OAUTH_TOKEN_LIFETIME_SECONDS,
    "REFRESH_TOKEN_EXPIRE_SECONDS": OAUTH_REFRESH_LIFETIME_SECONDS,
    "SCOPES": {
        "events:subscribe": "Manage webhook subscriptions",
        "events:read": "Read subscriptions, deliveries and event history",
        "events:admin": "Organization administration: overrides, bulk redelivery, replay",
        "entities:read": "Read persons, pets and toys",
        "entities:write": "Create, change and delete persons, pets and toys",
        "availability:read": "Read user availability",
        "availability:write": "Change own availability and report presence",
    },
    "SCOPES_BACKEND_CLASS": "sapien.core.oauth.ApplicationScopes",
    "OAUTH2_VALIDATOR_CLASS": "sapien.core.oauth.OrganizationOAuth2Validator",
    # PKCE on every authorization request, with S256 alone: "plain" is refused with invalid_request.
    "OAUTH2_SERVER_CLASS": "sapien.core.oauth.S256Server",
    "PKCE_REQUIRED": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https", "http"],
}
# Failed token requests (sapien.core.oauth_throttle): per client id and per username, and per source
# address (REMOTE_ADDR), in fixed windows; past the limit, 429 until the window ends. 0 turns one off.
OAUTH_FAILED_ATTEMPTS_LIMIT = env_int("OAUTH_FAILED_ATTEMPTS_LIMIT", 10)
OAUTH_FAILED_ATTEMPTS_ADDRESS_LIMIT = env_int("OAUTH_FAILED_ATTEMPTS_ADDRESS_LIMIT", 50)
OAUTH_FAILED_ATTEMPTS_WINDOW_SECONDS = int(env_duration("OAUTH_FAILED_ATTEMPTS_WINDOW", 300))

# --- Celery -------------------------------------------------------------------
ESL_BROKER_URL = env_str("ESL_BROKER_URL", "redis://127.0.0.1:63799/0")  # make run's embedded Redis
CELERY_BROKER_URL = ESL_BROKER_URL
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Messages are wake-ups, not work: a lost one costs only a sweep interval. With Redis they are acknowledged on
# receipt: a process takes a message off its list only when its loop is free, and a late acknowledgement over a
# connection the broker just dropped is an unrecoverable worker error in kombu's Redis transport. RabbitMQ pushes a
# message to any process with room in its prefetch window, which an acknowledgement on receipt opens as the task
# starts: the next message would wait behind the running task (a sweep, a hand-over lingering for a slow receiver)
# while the other process may be idle. Acknowledged when its task is done, it goes to a free process
# (docs/benchmarks.md, "Late acknowledgements with RabbitMQ"); one whose process died goes to another at once.
CELERY_TASK_ACKS_LATE = urlsplit(ESL_BROKER_URL).scheme not in REDIS_SCHEMES
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fix-up closes the database connection before and after every task unless told to reuse it:
# a fresh connection (and cold catalog caches) per task cost 5-7 ms, more than the task's own statements.
# Kept for this many tasks instead; in between, sapien.celery checks it before each task as Django does before
# each request (CONN_MAX_AGE, a connection that errored, the health check after a database restart).
CELERY_DB_REUSE_MAX = 1000
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# No acknowledgement emulation on Redis: a message is taken off its list when received, as the early
# acknowledgement above says, and kombu keeps no copy of it to put back (two Redis transactions per message in the
# worker's parent, and its sweeps of the copies). A wake-up lost with a worker costs a sweep interval, no more.
CELERY_BROKER_TRANSPORT_OPTIONS = {"ack_emulation": False}
CELERY_TASK_DEFAULT_QUEUE = "sapien"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The Celery app is only ever a wake-up channel: PostgreSQL holds what is due.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}

# --- Sapien ESL -------------------------------------------------------------------
ESL_ENABLED = env_bool("ESL_ENABLED", True)
# The transaction contracts of sapien.core.transactions are checked (DEBUG and tests): a breach raises.
ESL_ASSERT_TRANSACTIONS = env_bool("ESL_ASSERT_TRANSACTIONS", DEBUG)
ESL_RETRY_ATTEMPTS = env_int("ESL_RETRY_ATTEMPTS", 5)
ESL_RETRY_DELAY_MS = env_duration("ESL_RETRY_DELAY_MS", 1000, unit="ms")
ESL_RETRY_MAX_DELAY_MS = env_duration("ESL_RETRY_MAX_DELAY_MS", 3_600_000, unit="ms")
ESL_MAX_PAYLOAD_SIZE = env_int("ESL_MAX_PAYLOAD_SIZE", 262144)
if ESL_MAX_PAYLOAD_SIZE < 16384:  # deliveries.payload.MIN_PAYLOAD_SIZE: below it, not every body could fit
    raise ImproperlyConfigured(f"ESL_MAX_PAYLOAD_SIZE is {ESL_MAX_PAYLOAD_SIZE}; it must be at least 16384 bytes.")
ESL_BLOB_STORAGE_URL = env_str("ESL_BLOB_STORAGE_URL", "")
ESL_SIGNATURE_ALGORITHM = env_str("ESL_SIGNATURE_ALGORITHM", "sha256")
ESL_RETENTION_HOURS = env_duration("ESL_RETENTION_HOURS", 24, unit="h")
# How long the answer to a POST or PATCH sent with an Idempotency-Key is replayed (sapien.core.idempotency).
ESL_IDEMPOTENCY_HOURS = env_duration("ESL_IDEMPOTENCY_HOURS", 24, unit="h")
ESL_ALLOW_PRIVATE_CALLBACKS = env_bool("ESL_ALLOW_PRIVATE_CALLBACKS", False)
# Addresses or networks never called back, beside subscriptions.internal_addresses' built-in list.
ESL_CALLBACK_DENYLIST = env_list("ESL_CALLBACK_DENYLIST", "")
try:
    [ipaddress.ip_network(entry, strict=False) for entry in ESL_CALLBACK_DENYLIST]
except ValueError as exc:
    raise ImproperlyConfigured(f"ESL_CALLBACK_DENYLIST: {exc}") from exc
ESL_SECRET_ROTATION_GRACE_SECONDS = env_duration("ESL_SECRET_ROTATION_GRACE", 86400)
# A subscription is disabled after this many deliveries failed in a row, failing for at least this long.
ESL_DISABLE_AFTER_FAILURES = env_int("ESL_DISABLE_AFTER_FAILURES", 20)
ESL_DISABLE_AFTER_SECONDS = env_duration("ESL_DISABLE_AFTER_SECONDS", 86400)
# system.subscription.failing once a run of failed deliveries reaches this share of ESL_DISABLE_AFTER_FAILURES.
try:
    ESL_FAILING_NOTICE_SHARE = float(env_str("ESL_FAILING_NOTICE_SHARE", "0.5"))
except ValueError:
    ESL_FAILING_NOTICE_SHARE = math.nan
if not 0 < ESL_FAILING_NOTICE_SHARE <= 1:
    raise ImproperlyConfigured("ESL_FAILING_NOTICE_SHARE must be a number above 0 and at most 1, e.g. 0.5.")
# The half-open probe of a disabled subscription that opted in: a signed system.ping this long after the
# disabling, then at doubling intervals up to the maximum.
ESL_PROBE_MIN_INTERVAL_SECONDS = env_duration("ESL_PROBE_MIN_INTERVAL", 60)
ESL_PROBE_MAX_INTERVAL_SECONDS = env_duration("ESL_PROBE_MAX_INTERVAL", 3600)
ESL_CONNECT_TIMEOUT_SECONDS = env_duration("ESL_CONNECT_TIMEOUT", 5)
ESL_READ_TIMEOUT_SECONDS = env_duration("ESL_READ_TIMEOUT", 10)
# Every delivery goes out through this HTTP forward proxy (docs/operations.md, "An egress proxy"); empty: directly.
ESL_EGRESS_PROXY_URL = env_str("ESL_EGRESS_PROXY_URL", "").strip()
try:
    parse_egress_proxy_url(ESL_EGRESS_PROXY_URL)
except ValueError as exc:
    raise ImproperlyConfigured(f"ESL_EGRESS_PROXY_URL: {exc}") from None  # never the URL: it may hold a password
ESL_PUBLIC_URL = env_str("ESL_PUBLIC_URL", "http://localhost:8080").rstrip("/")
ESL_DELIVERY_BATCH_SIZE = env_int("ESL_DELIVERY_BATCH_SIZE", 200)
ESL_DELIVERY_CONCURRENCY = env_int("ESL_DELIVERY_CONCURRENCY", 32)
# A subscription without a max_in_flight of its own has at most this many deliveries in flight (deliveries/limits.py).
ESL_DEFAULT_MAX_IN_FLIGHT = env_int("ESL_DEFAULT_MAX_IN_FLIGHT", 100)
if ESL_DEFAULT_MAX_IN_FLIGHT < 1:
    raise ImproperlyConfigured("ESL_DEFAULT_MAX_IN_FLIGHT must be at least 1.")
ESL_RELAY_BATCH_SIZE = env_int("ESL_RELAY_BATCH_SIZE", 500)
ESL_RELAY_POLL_SECONDS = env_duration("ESL_RELAY_POLL_SECONDS", 1)
# Under load (the last relay pass found more than one event), a pass starts at most this often: the commits of that
# moment share it, and its hand-over (docs/architecture.md, "The relay"). 0: a pass for every notification.
ESL_RELAY_LINGER_MS = env_duration("ESL_RELAY_LINGER_MS", 10, unit="ms")
if ESL_RELAY_LINGER_MS > 1000:
    raise ImproperlyConfigured("ESL_RELAY_LINGER_MS must be at most 1000 (1 s): it delays every event under load.")
RATE_LIMIT_EVENTS_HOUR = env_int("RATE_LIMIT_EVENTS_HOUR", 10000)
PRESENCE_OFFLINE_DEBOUNCE_SECONDS = env_duration("PRESENCE_OFFLINE_DEBOUNCE", 5)
PRESENCE_STALE_THRESHOLD_SECONDS = env_duration("PRESENCE_STALE_THRESHOLD", 180)
AVAILABILITY_IDLE_THRESHOLD_SECONDS = env_duration("AVAILABILITY_IDLE_THRESHOLD", 900)

if ESL_BLOB_STORAGE_URL.startswith("s3://"):
    # s3://bucket/prefix?endpoint_url=https://minio.local:9000 — credentials from the AWS_* variables.
    _blob_url = urlsplit(ESL_BLOB_STORAGE_URL)
    _blob_query = parse_qs(_blob_url.query)
    STORAGES = {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": _blob_url.netloc,
                "location": _blob_url.path.strip("/"),
                "endpoint_url": _blob_query.get("endpoint_url", [None])[0],
                "region_name": _blob_query.get("region", [None])[0],
                "default_acl": "private",
                "file_overwrite": True,
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
elif ESL_BLOB_STORAGE_URL.startswith("file://"):
    MEDIA_ROOT = Path(ESL_BLOB_STORAGE_URL.removeprefix("file://"))
ESL_DELIVERY_WAKEUPS = env_int("ESL_DELIVERY_WAKEUPS", 2)
ESL_DELIVERY_TASK_SECONDS = env_duration("ESL_DELIVERY_TASK_SECONDS", 20)
ESL_CLAIM_LEASE_MARGIN_SECONDS = env_duration("ESL_CLAIM_LEASE_MARGIN_SECONDS", 30)
# /metrics: with a token, only ``Authorization: Bearer <token>``; without one, only clients on this host.
ESL_METRICS_TOKEN = env_str("ESL_METRICS_TOKEN", "")
# Counters and quota gauges by organization too: about 30 series more per organization (docs/operations.md).
ESL_METRICS_PER_ORGANIZATION = env_bool("ESL_METRICS_PER_ORGANIZATION", False)
# OpenTelemetry traces (docs/operations.md, "Traces"): on when an OTLP endpoint is named, or with ESL_OTEL_ENABLED
# (the OTEL_* variables then configure the exporter); OTEL_SDK_DISABLED turns them off whatever else is set.
ESL_OTEL_ENABLED = tracing_configured(os.environ)
