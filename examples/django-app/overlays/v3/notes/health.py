"""v3 is broken on purpose: it boots and serves pages, but never reports ready. The deploy must stop
at the health gate and leave the live release serving every request."""
from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache


@never_cache
def healthz(request):
    body = {"status": "unavailable", "version": settings.RELEASE_VERSION, "slot": settings.SLOT,
            "reason": "this release never becomes ready (a test fixture)"}
    return JsonResponse(body, status=503)
