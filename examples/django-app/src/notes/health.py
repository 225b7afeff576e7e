"""Readiness for HAProxy and the deploy agent: 200 only when this release can serve requests."""
import logging

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

log = logging.getLogger(__name__)
# Once this process saw its migrations applied it stops loading the migration graph per check.
_migrations_applied = False


def _reply(status, code, **extra):
    body = {"status": status, "version": settings.RELEASE_VERSION, "slot": settings.SLOT,
            "cache_key_prefix": settings.CACHES["default"]["KEY_PREFIX"], **extra}
    return JsonResponse(body, status=code)


@never_cache
def healthz(request):
    global _migrations_applied
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        if not _migrations_applied:
            executor = MigrationExecutor(connection)
            pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if pending:
                names = [f"{m.app_label}.{m.name}" for m, _ in pending]
                return _reply("unavailable", 503, reason="migrations not applied", pending=names)
            _migrations_applied = True
    except DatabaseError as exc:
        log.warning("health check: database unavailable: %s", exc)
        return _reply("unavailable", 503, reason=f"database unavailable: {type(exc).__name__}")
    return _reply("ok", 200)
