from django.conf import settings


def release_headers(get_response):
    """Tags every response with the release and slot that produced it (tests count these)."""

    def middleware(request):
        response = get_response(request)
        response["X-Release-Version"] = settings.RELEASE_VERSION
        if settings.SLOT:
            response["X-Slot"] = settings.SLOT
        return response

    return middleware
