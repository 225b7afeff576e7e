"""WSGI entry point: python3 -m gunicorn --bind 127.0.0.1:$PORT mysite.wsgi"""
import os

# Serving needs a real SECRET_KEY; management commands may run without one (see settings).
os.environ["MYSITE_SERVING"] = "1"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
