"""Settings shared by every environment; everything deployment-specific comes from env vars.

Environment
-----------
DATABASE_URL : default sqlite at var/db.sqlite3
REDIS_URL : Celery broker and channel layer, default redis://127.0.0.1:6390/0
MODEL_CHECKPOINT, DEVICE : not settings: read by ml.inference.Renderer.load (the one place) in the worker
SECRET_KEY, ALLOWED_HOSTS (comma separated), MEDIA_ROOT
"""
from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

from config.layers import channel_layer_host

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_list(name: str, default: str = "") -> list[str]:
    return [x.strip() for x in os.environ.get(name, default).split(",") if x.strip()]


SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "webapp",
    "webapp.presets",
    "webapp.surveys",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [BASE_DIR / "templates"],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = {"default": dj_database_url.config(
    default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}", conn_max_age=0)}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Worker and web processes share the file: WAL lets readers and the writer overlap, and
    # transactions take the write lock when they begin, so that they wait for it (timeout, s)
    # instead of failing with "database is locked" when a reader upgrades to a writer.
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        "timeout": 20, "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"})

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0")
# No read timeout, and each command reconnects after a Redis restart (config.layers says why).
CHANNEL_LAYERS = {"default": {
    "BACKEND": "channels_redis.core.RedisChannelLayer",
    "CONFIG": {"hosts": [channel_layer_host(REDIS_URL)],
               "capacity": 1500, "expiry": 60},
}}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {"webapp.tasks.render_job": {"queue": "render"}}   # the task's registered name
# Render tasks acknowledge late (webapp.jobs.tasks): a message taken by a worker that dies before it
# ends is delivered again, and the task, which starts a job only while it is queued, does nothing
# for a job already started (the stale-job sweep fails a running job whose heartbeat stops).
# Workers take one message at a time, so a dead worker holds no queued job hostage. The visibility
# timeout (when Redis hands an unacknowledged message out again) is above the longest time limit.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_DISABLE_PREFETCH = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# A worker keeps its database connection from task to task (Celery closes it every 2 x this many
# tasks; webapp.jobs.worker drops one that stopped working): a new one per render job cost ~5 ms
# on SQLite (CONN_MAX_AGE is 0 for the web processes), a network round trip or more on PostgreSQL.
CELERY_DB_REUSE_MAX = int(os.environ.get("CELERY_DB_REUSE_MAX", 50))

# Product limits.
UPLOAD_MAX_BYTES = int(os.environ.get("UPLOAD_MAX_BYTES", 5_000_000))
UPLOAD_MAX_NOTES = int(os.environ.get("UPLOAD_MAX_NOTES", 20_000))
UPLOAD_PARSE_TIMEOUT_S = float(os.environ.get("UPLOAD_PARSE_TIMEOUT_S", 60))
# Takes (variations) one render may produce: the player's "takes at once" and the API's "variations".
RENDER_MAX_VARIATIONS = int(os.environ.get("RENDER_MAX_VARIATIONS", 8))
# An uploaded reference recording is aligned to the score in a child process killed after this long.
REFERENCE_ALIGN_TIMEOUT_S = float(os.environ.get("REFERENCE_ALIGN_TIMEOUT_S", 120))
RENDER_MAX_CONCURRENT_PER_USER = int(os.environ.get("RENDER_MAX_CONCURRENT_PER_USER", 2))
# Anonymous renders in progress from one network address (sessions without cookies are free).
RENDER_MAX_CONCURRENT_PER_ADDRESS = int(os.environ.get("RENDER_MAX_CONCURRENT_PER_ADDRESS", 4))
# A render's time limit: a base plus a time per note (all takes; renders run at ~2,000 notes/s on
# one CPU thread, so 50 notes/s is far from a normal render; 8 takes of 20,000 notes stay under
# the visibility timeout). Also Celery's soft limit.
RENDER_TIME_LIMIT_BASE_S = float(os.environ.get("RENDER_TIME_LIMIT_BASE_S", 60))
RENDER_TIME_LIMIT_PER_NOTE_S = float(os.environ.get("RENDER_TIME_LIMIT_PER_NOTE_S", 0.02))
# A queued job that no worker took this long (plus its estimated wait) after it was sent is sent
# again, at most RENDER_MAX_REQUEUES times, then failed with a message.
RENDER_QUEUED_STALE_AFTER_S = float(os.environ.get("RENDER_QUEUED_STALE_AFTER_S", 120))
RENDER_MAX_REQUEUES = int(os.environ.get("RENDER_MAX_REQUEUES", 1))
# Render speed (notes per second per worker) for the queue estimate until jobs have been timed.
RENDER_NOTES_PER_S = float(os.environ.get("RENDER_NOTES_PER_S", 1000))
# A render's first chunk has RENDER_CHUNK_NOTES notes (the sound starts after it); each next one
# twice as many, up to RENDER_MAX_CHUNK_NOTES (fewer stores and sends per job).
RENDER_CHUNK_NOTES = int(os.environ.get("RENDER_CHUNK_NOTES", 16))
RENDER_MAX_CHUNK_NOTES = int(os.environ.get("RENDER_MAX_CHUNK_NOTES", 512))
# A running job whose worker has not written a heartbeat for this long is failed by the sweep.
RENDER_STALE_AFTER_S = float(os.environ.get("RENDER_STALE_AFTER_S", 60))
# A worker renders up to RENDER_BATCH_MAX jobs in one batched pass: while it renders, it takes
# jobs that have waited RENDER_BATCH_CLAIM_AFTER_S (an idle worker gets a new job first), looking
# every RENDER_BATCH_POLL_S, for RENDER_SESSION_MAX_S (then it finishes what it has).
RENDER_BATCH_MAX = int(os.environ.get("RENDER_BATCH_MAX", 8))
RENDER_BATCH_CLAIM_AFTER_S = float(os.environ.get("RENDER_BATCH_CLAIM_AFTER_S", 0.2))
RENDER_BATCH_POLL_S = float(os.environ.get("RENDER_BATCH_POLL_S", 0.1))
RENDER_SESSION_MAX_S = float(os.environ.get("RENDER_SESSION_MAX_S", 120))
# Each worker sweeps the queue this often (seconds; 0: only on requests, sockets, worker start).
RENDER_SWEEP_EVERY_S = float(os.environ.get("RENDER_SWEEP_EVERY_S", 30))
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# JSON API (webapp.api): token auth for scripts, session auth (with CSRF) for the browser.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Expressive piano API",
    "DESCRIPTION": "Upload scores, render performances with every interpretation control, "
                   "follow jobs, fetch performances, keep and share presets.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"webapp": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")}},
}
