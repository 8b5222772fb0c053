"""Parley settings: one module, every value from the environment with a development default.

Bad values fail loudly with ImproperlyConfigured (the healthchecks `envbool` habit). With
nothing configured Parley runs embedded: SQLite, a filesystem Celery broker that needs no
server, and a file cache. `DATABASE_URL` and `REDIS_URL` move it onto PostgreSQL and Redis.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def envstr(name: str, default: str) -> str:
    """The variable, or `default` when it is unset or empty (as `NAME=` in a .env file)."""
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r}: use true or false")


def envint(name: str, default: int, *, minimum: int = 0) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected an integer") from None
    if number < minimum:
        raise ImproperlyConfigured(f"{name}={value!r}: must be at least {minimum}")
    return number


def envfloat(name: str, default: float, *, minimum: float = 0.0) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r}: expected a number") from None
    if not number >= minimum:  # also refuses nan
        raise ImproperlyConfigured(f"{name}={value!r}: must be at least {minimum}")
    return number


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in envstr(name, default).split(",") if item.strip()]


DATA_DIR = Path(envstr("PARLEY_DATA_DIR", str(BASE_DIR / "var"))).resolve()
# The embedded SQLite file, the file cache and the filesystem broker all live here.
DATA_DIR.mkdir(parents=True, exist_ok=True)
(DATA_DIR / "staticfiles").mkdir(exist_ok=True)

DEBUG = envbool("DJANGO_DEBUG", False)


def stored_secret_key(data_dir: Path) -> str:
    """DJANGO_SECRET_KEY, else a random key made once and kept in the data directory.

    So that `manage.py` works on a fresh clone and a single-host deployment needs no key of
    its own; several hosts that share sessions must set the same DJANGO_SECRET_KEY.
    """
    path = data_dir / "secret_key"
    try:
        # O_EXCL: when the web server and a worker start together, one writes, both read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = envstr("DJANGO_SECRET_KEY", "") or stored_secret_key(DATA_DIR)
ALLOWED_HOSTS = envlist("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")
CSRF_TRUSTED_ORIGINS = envlist("DJANGO_CSRF_TRUSTED_ORIGINS", "")

# --- HTTPS (production) ---------------------------------------------------------------
# On by default without DEBUG: redirect to HTTPS, HSTS, cookies sent over HTTPS only. Behind
# a proxy that terminates TLS, set DJANGO_SECURE_PROXY_SSL_HEADER=true so that Django trusts
# its X-Forwarded-Proto header (only if the proxy sets it, and nothing else can reach Parley).
DJANGO_HTTPS = envbool("DJANGO_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = DJANGO_HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container health check speaks plain HTTP
SECURE_HSTS_SECONDS = envint("DJANGO_HSTS_SECONDS", 31536000) if DJANGO_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("DJANGO_HSTS_PRELOAD", False)
# Preloading is a decision for the owner of the domain (hstspreload.org), not for an app.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = DJANGO_HTTPS
if envbool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Server-Timing headers (request time, for devtools and bench/): with DEBUG, or on demand.
PARLEY_SERVER_TIMING = envbool("PARLEY_SERVER_TIMING", DEBUG)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "axes",
    "csp",
    "annotate",
]

MIDDLEWARE = [
    "annotate.middleware.ServerTimingMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

# Content-Security-Policy (django-csp): scripts, styles and everything else from Parley's own
# origin only; no inline script or style anywhere (templates/base.html turns off htmx's
# injected indicator styles). tests/browser/test_csp.py loads every page under it.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

ROOT_URLCONF = "annotate.urls"
WSGI_APPLICATION = "annotate.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

# --- Database -----------------------------------------------------------------------
# Embedded default: SQLite in DATA_DIR. WAL and IMMEDIATE transactions let the web server
# and the worker process write to the same file without "database is locked" surprises.
DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{DATA_DIR / 'parley.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache ----------------------------------------------------------------------------
# Import progress lives here, so it must be shared between the web server and workers. Only
# derived, short-lived values: while Redis is down every read misses and every write is
# dropped (annotate/cache.py), and requests go on without it.
REDIS_URL = envstr("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "annotate.cache.ResilientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "parley",
            "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(DATA_DIR / "cache"),
        }
    }

# --- Celery ---------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# Broker: CELERY_BROKER_URL, else REDIS_URL, else kombu's filesystem transport (no server).
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
BROKER_DIR = DATA_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    BROKER_DIR.mkdir(exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        # Exchange tables for broadcasts (remote control); kombu's default is ./control.
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Redis redelivers unacknowledged messages after visibility_timeout: keep it above the
    # longest hard time limit (Celery "Redis caveats").
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 4 * 3600}
# Tasks record their outcome on their own rows (ImportJob, TrainingRun): no result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "annotate.train_student": {"queue": "training"},
    "annotate.score_pool": {"queue": "training"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Defaults for short tasks; long ones set their own limits.
CELERY_TASK_SOFT_TIME_LIMIT = envint("CELERY_TASK_SOFT_TIME_LIMIT", 300, minimum=1)
CELERY_TASK_TIME_LIMIT = envint("CELERY_TASK_TIME_LIMIT", 360, minimum=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A request that sends a job while the broker is down fails fast; the job's row stays queued
# and the sweeper sends it again (annotate/jobs.py).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
# Celery beat runs the sweeper (annotate/sweeper.py); `make run`, the Procfile and
# docker-compose start beat beside the workers.
PARLEY_SWEEP_EVERY_S = envint("PARLEY_SWEEP_EVERY_S", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "parley-sweep": {"task": "annotate.sweep", "schedule": float(PARLEY_SWEEP_EVERY_S)}
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Auth -----------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {
        "NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"
    },
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Sign-in throttling (django-axes): PARLEY_LOGIN_FAILURE_LIMIT wrong passwords for one
# username from one address lock that pair out for PARLEY_LOGIN_COOLOFF_MIN minutes (HTTP 429).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("PARLEY_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=envint("PARLEY_LOGIN_COOLOFF_MIN", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "annotate.ratelimit.client_ip"
# Behind reverse proxies: how many stand in front of Parley, each appending to
# X-Forwarded-For (the client's address is then read from it; 0: REMOTE_ADDR).
PARLEY_PROXY_COUNT = envint("PARLEY_PROXY_COUNT", 0)
# The token API: requests per minute per token's user, and failed authentications per
# minute per address; over either, HTTP 429 with Retry-After (annotate/ratelimit.py).
PARLEY_API_REQUESTS_PER_MIN = envint("PARLEY_API_REQUESTS_PER_MIN", 600, minimum=1)
# The live prediction API (docs/api.md): utterances per request, and ONNX Runtime threads per
# web process (gunicorn runs one process per core).
PARLEY_PREDICT_MAX_BATCH = envint("PARLEY_PREDICT_MAX_BATCH", 256, minimum=1)
PARLEY_PREDICT_THREADS = envint("PARLEY_PREDICT_THREADS", 1, minimum=0)
# How often (seconds) a web process looks up the task's active model version: a new version
# answers predictions within this time of its activation.
PARLEY_PREDICT_VERSION_CHECK_S = envfloat("PARLEY_PREDICT_VERSION_CHECK_S", 2.0)
PARLEY_API_AUTH_FAILURES_PER_MIN = envint(
    "PARLEY_API_AUTH_FAILURES_PER_MIN", 20, minimum=1
)

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotate:projects"
LOGOUT_REDIRECT_URL = "login"

# --- Files ----------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
MEDIA_ROOT = DATA_DIR / "media"
MEDIA_URL = "media/"
# Uploads larger than this go to a temporary file, never into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Import limits --------------------------------------------------------------------
PARLEY_IMPORT_MAX_FILE_MB = envint("PARLEY_IMPORT_MAX_FILE_MB", 1024, minimum=1)
PARLEY_IMPORT_MAX_LINE_KB = envint("PARLEY_IMPORT_MAX_LINE_KB", 1024, minimum=1)
# One dialogue, one utterance: larger ones are refused with their line and field.
PARLEY_IMPORT_MAX_TURNS = envint("PARLEY_IMPORT_MAX_TURNS", 2000, minimum=1)
PARLEY_IMPORT_MAX_UTTERANCE_CHARS = envint(
    "PARLEY_IMPORT_MAX_UTTERANCE_CHARS", 10000, minimum=1
)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- Queue, retraining and trust -----------------------------------------------------------
PARLEY_CLAIM_LEASE_S = envint("PARLEY_CLAIM_LEASE_S", 300, minimum=10)
PARLEY_UNDO_GRACE_S = envint("PARLEY_UNDO_GRACE_S", 120)
# Turns of the dialogue shown around the utterance to label (the rest behind "show all").
PARLEY_QUEUE_CONTEXT_BEFORE = envint("PARLEY_QUEUE_CONTEXT_BEFORE", 20)
PARLEY_QUEUE_CONTEXT_AFTER = envint("PARLEY_QUEUE_CONTEXT_AFTER", 5)
# Share of new items answered by two annotators (a task's Settings page may set its own).
PARLEY_OVERLAP_FRACTION = envfloat("PARLEY_OVERLAP_FRACTION", 0.1)
PARLEY_RETRAIN_EVERY = envint("PARLEY_RETRAIN_EVERY", 50, minimum=1)
PARLEY_TRUST_MIN_HUMAN = envint("PARLEY_TRUST_MIN_HUMAN", 50, minimum=2)
PARLEY_TRUST_FOLDS = envint("PARLEY_TRUST_FOLDS", 2, minimum=2)
# The audit (docs/active-loop.md): this share of the items served is drawn uniformly from the
# unanswered pool, for an honest calibration and "wrong LLM labels left" estimate.
PARLEY_AUDIT_FRACTION = envfloat("PARLEY_AUDIT_FRACTION", 0.05)
if PARLEY_AUDIT_FRACTION > 1:
    raise ImproperlyConfigured(
        f"PARLEY_AUDIT_FRACTION={PARLEY_AUDIT_FRACTION}: a share between 0 and 1"
    )
# Audit answers before the dashboard shows the audit's estimates (fewer: the bootstrap
# intervals cover the truth too rarely; docs/active-loop.md).
PARLEY_AUDIT_MIN_ANSWERS = envint("PARLEY_AUDIT_MIN_ANSWERS", 30, minimum=2)
# LLM budget mode (a label task's setting): the human answers (both the student and the LLM
# scored) a threshold needs before the student labels anything in the LLM's place; the
# uniformly drawn answers alone (audits, imported labels) once there are this many.
PARLEY_BUDGET_MIN_ANSWERS = envint("PARLEY_BUDGET_MIN_ANSWERS", 50, minimum=1)
# The diversity rule: after this many items of one dialogue (or tight embedding cluster among
# the first PARLEY_DIVERSITY_WINDOW items of the queue), each further one goes back by
# PARLEY_DIVERSITY_MARGIN of trust. 0 turns the rule off.
PARLEY_DIVERSITY_CAP = envint("PARLEY_DIVERSITY_CAP", 3)
PARLEY_DIVERSITY_MARGIN = envfloat("PARLEY_DIVERSITY_MARGIN", 0.15)
PARLEY_DIVERSITY_WINDOW = envint("PARLEY_DIVERSITY_WINDOW", 2000, minimum=1)
# Cosine similarity of the student's embeddings at which two utterances are near-duplicates.
PARLEY_DIVERSITY_SIMILARITY = envfloat("PARLEY_DIVERSITY_SIMILARITY", 0.98)
# The calibrated trust (docs/active-loop.md): "verifier" (learns from the answers each prompt's
# reliability and the LLM's per-class accuracy; calibrated on the audit answers) or "signals"
# (the previous trust: ensemble and student signals only).
PARLEY_TRUST_VERIFIER = envstr("PARLEY_TRUST_VERIFIER", "verifier")
if PARLEY_TRUST_VERIFIER not in ("verifier", "signals"):
    raise ImproperlyConfigured(
        f"PARLEY_TRUST_VERIFIER={PARLEY_TRUST_VERIFIER!r}: verifier or signals"
    )
# Jobs (annotate/sweeper.py): a queued job is sent again after this long without a worker
# taking it; a running one without a sign of life for PARLEY_JOB_STALE_S is taken for dead.
PARLEY_JOB_QUEUED_GRACE_S = envint("PARLEY_JOB_QUEUED_GRACE_S", 120, minimum=1)
PARLEY_JOB_STALE_S = envint("PARLEY_JOB_STALE_S", 600, minimum=1)
# Disk (annotate/retention.py): model versions whose checkpoints stay (the active one and
# pinned ones always do), fold models after scoring, and days an import's file is kept.
PARLEY_KEEP_MODEL_VERSIONS = envint("PARLEY_KEEP_MODEL_VERSIONS", 2, minimum=1)
PARLEY_KEEP_FOLD_MODELS = envbool("PARLEY_KEEP_FOLD_MODELS", False)
PARLEY_KEEP_UPLOADS_DAYS = envint("PARLEY_KEEP_UPLOADS_DAYS", 7)
if PARLEY_OVERLAP_FRACTION > 1:
    raise ImproperlyConfigured("PARLEY_OVERLAP_FRACTION must be between 0 and 1")

# --- The student (learner/) ---------------------------------------------------------------
# "minilm-l6" is the bundled MiniLM-L6; or a Hugging Face model directory.
LEARNER_BACKBONE = envstr("LEARNER_BACKBONE", "minilm-l6")
LEARNER_OBJECTIVE = envstr("LEARNER_OBJECTIVE", "pref")
LEARNER_EPOCHS = envint("LEARNER_EPOCHS", 3, minimum=1)
LEARNER_BATCH_SIZE = envint("LEARNER_BATCH_SIZE", 32, minimum=1)
LEARNER_MAX_LENGTH = envint("LEARNER_MAX_LENGTH", 64, minimum=8)
LEARNER_CONTEXT_TURNS = envint("LEARNER_CONTEXT_TURNS", 1)
# λ_kd, the weight of the distillation term beside `pref`'s ranking (docs/distillation.md).
LEARNER_KD_WEIGHT = envfloat("LEARNER_KD_WEIGHT", 0.1)
# Once a task has this many human labels, the student trains in two stages: the objective on
# the LLM labels at λ_kd LEARNER_PRETRAIN_KD_WEIGHT, then cross-entropy on the human labels
# alone (0: always one stage). Issue 17's q4 (docs/distillation.md): two-stage won on dev with
# 764 human labels and lost with 190; the count between is not measured.
LEARNER_FINETUNE_MIN_HUMAN = envint("LEARNER_FINETUNE_MIN_HUMAN", 750)
LEARNER_PRETRAIN_KD_WEIGHT = envfloat("LEARNER_PRETRAIN_KD_WEIGHT", 1.0)
LEARNER_DEVICE = envstr("LEARNER_DEVICE", "auto")
# How scoring runs the student on the CPU: "torch", "onnx" (ONNX Runtime, fp32) or
# "onnx-int8" (int8 weights). The ONNX files are exported once per model version beside its
# checkpoint; a failed export falls back to torch with the reason logged. torch stays the
# default until bench/inference.py has measured the int8 path's accuracy on dev (issue 15).
LEARNER_INFERENCE = envstr("LEARNER_INFERENCE", "torch")
if LEARNER_INFERENCE not in ("onnx-int8", "onnx", "torch"):
    raise ImproperlyConfigured(
        f"LEARNER_INFERENCE={LEARNER_INFERENCE!r}: onnx-int8, onnx or torch"
    )
LEARNER_PRECISION = envstr("LEARNER_PRECISION", "auto")
if LEARNER_PRECISION not in ("auto", "fp32", "bf16"):
    raise ImproperlyConfigured(
        f"LEARNER_PRECISION={LEARNER_PRECISION!r}: auto, fp32 or bf16"
    )
if LEARNER_OBJECTIVE not in ("ce", "kd", "llmr", "pref"):
    raise ImproperlyConfigured(
        f"LEARNER_OBJECTIVE={LEARNER_OBJECTIVE!r}: one of ce, kd, llmr, pref"
    )

# --- LLM teacher (any OpenAI-compatible chat-completions endpoint) -------------------------
# Empty LLM_BASE_URL: no provider; LLM labels can still come in through imports.
LLM_BASE_URL = envstr("LLM_BASE_URL", "")
LLM_MODEL = envstr("LLM_MODEL", "")
LLM_API_KEY = envstr("LLM_API_KEY", "")
LLM_CONCURRENCY = envint("LLM_CONCURRENCY", 4, minimum=1)
LLM_REQUESTS_PER_SECOND = envfloat("LLM_REQUESTS_PER_SECOND", 0.0)
LLM_TIMEOUT_S = envfloat("LLM_TIMEOUT_S", 60.0, minimum=0.1)
LLM_MAX_RETRIES = envint("LLM_MAX_RETRIES", 5)
LLM_LOGPROBS = envbool("LLM_LOGPROBS", True)
LLM_SAMPLES = envint("LLM_SAMPLES", 1, minimum=1)
if LLM_BASE_URL and not LLM_MODEL:
    raise ImproperlyConfigured("LLM_MODEL must be set when LLM_BASE_URL is")

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("DJANGO_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"refusals": {"()": "annotate.logs.ExpectedRefusals"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["refusals"]}
    },
    "root": {"handlers": ["console"], "level": envstr("DJANGO_LOG_LEVEL", "INFO")},
    # Django's own console handler would print each of its lines a second time: its loggers
    # go to the root's handler only.
    "loggers": {"django": {"handlers": [], "propagate": True}},
}
# The worker logs through the same configuration instead of adding its own handler.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
