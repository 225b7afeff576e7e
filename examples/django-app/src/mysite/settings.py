"""Settings for the example app. Everything that differs between hosts comes from the environment
(the slot's systemd unit reads shared/env and slots/<slot>.env); nothing secret is in the code."""
import getpass
import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_list(name, default):
    value = os.environ.get(name, "")
    return [item.strip() for item in value.split(",") if item.strip()] or default


def env_bool(name, default=False):
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if os.environ.get("MYSITE_SERVING") == "1":
        raise ImproperlyConfigured("SECRET_KEY is not set; put it in the app environment (appEnv)")
    # migrate, check and collectstatic sign nothing that outlives them: a throwaway key will do.
    SECRET_KEY = secrets.token_urlsafe(50)

DEBUG = env_bool("DEBUG")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"])
# NGINX sets X-Forwarded-Proto on every request it proxies (it never passes the client's through).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE")
# NGINX redirects plain HTTP to HTTPS before a request reaches the app.
SILENCED_SYSTEM_CHECKS = ["security.W008"]

# Which release and slot answer; the deploy agent writes both into the slot's environment.
RELEASE_VERSION = os.environ.get("RELEASE_VERSION") or (
    (BASE_DIR / "VERSION").read_text().strip() if (BASE_DIR / "VERSION").exists() else "dev"
)
SLOT = os.environ.get("SLOT", "")

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "notes.middleware.release_headers",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]

# PostgreSQL over its Unix socket with peer authentication: the app user has a role and a
# database of the same name, so there is no password to manage. DATABASE_* override for tests.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("DATABASE_NAME") or getpass.getuser(),
        "USER": os.environ.get("DATABASE_USER", ""),
        "PASSWORD": os.environ.get("DATABASE_PASSWORD", ""),
        "HOST": os.environ.get("DATABASE_HOST", ""),
        "PORT": os.environ.get("DATABASE_PORT", ""),
        # Reused across requests; a connection that failed is dropped at the end of its request.
        "CONN_MAX_AGE": 60,
        # libpq ignores PGOPTIONS once the connection sets options of its own, so append it: the
        # deploy agent bounds a migration's lock waits with it (-c lock_timeout=...; later -c wins).
        "OPTIONS": {"connect_timeout": 5, "options": " ".join(filter(None, ["-c statement_timeout=10000", os.environ.get("PGOPTIONS", "")]))},
    }
}

# Two releases serve at once during a shift; the agent gives each its own prefix (<app>:<version>),
# so neither reads objects the other cached in a shape it does not know. Per process here; the
# prefix matters as soon as the backend is shared (Redis, memcached).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "KEY_PREFIX": os.environ.get("CACHE_KEY_PREFIX", ""),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Collected when the release archive is built (scripts/build-example-releases.sh); the deploy agent
# merges <release>/static into the shared dir NGINX serves at /static/. The manifest stays here.
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "static"
STATICFILES_STORAGE = "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"
# Linked to the shared media dir by the deploy agent.
MEDIA_URL = "/media/"
MEDIA_ROOT = BASE_DIR / "media"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# stderr goes to the journal (<app>-<slot>).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
