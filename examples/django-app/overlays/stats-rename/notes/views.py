import json

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from .models import Note

MAX_TEXT = Note._meta.get_field("text").max_length


def _stats():
    """The notes_stats view, read with raw SQL (as reporting code often is)."""
    with connection.cursor() as cursor:
        cursor.execute('SELECT "notes" FROM "notes_stats"')
        return cursor.fetchone()[0]


def _context(**extra):
    return {
        "stats_total": _stats(),
        "version": settings.RELEASE_VERSION,
        "slot": settings.SLOT,
        "notes": Note.objects.order_by("-id")[:20],
        "count": Note.objects.count(),
        **extra,
    }


@require_http_methods(["GET", "HEAD"])
def index(request):
    return render(request, "notes/index.html", _context())


@require_POST
def create_note(request):
    """The HTML form (CSRF-protected); redirects back to the list (post/redirect/get)."""
    text = request.POST.get("text", "").strip()
    if not text or len(text) > MAX_TEXT:
        return render(request, "notes/index.html", _context(error=f"A note needs 1-{MAX_TEXT} characters."), status=400)
    Note.objects.create(text=text, author=request.POST.get("author", "").strip()[:100] or None)
    return HttpResponse(status=303, headers={"Location": "/"})


# The JSON API takes no cookies, so CSRF does not apply; load generators use it.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def api_notes(request):
    if request.method == "GET":
        notes = [n.as_dict() for n in Note.objects.order_by("-id")[:20]]
        return JsonResponse({"version": settings.RELEASE_VERSION, "count": Note.objects.count(), "notes": notes})
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except ValueError:
            return HttpResponseBadRequest("invalid JSON")
    else:
        data = request.POST
    text = str(data.get("text", "")).strip() if hasattr(data, "get") else ""
    if not text or len(text) > MAX_TEXT:
        return JsonResponse({"error": f"text must be 1-{MAX_TEXT} characters"}, status=400)
    author = str(data.get("author", "")).strip()[:100] or None
    note = Note.objects.create(text=text, author=author)
    return JsonResponse({"version": settings.RELEASE_VERSION, "note": note.as_dict()}, status=201)
