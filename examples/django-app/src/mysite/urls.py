from django.urls import path

from notes import health, views

urlpatterns = [
    path("", views.index, name="index"),
    path("notes/", views.create_note, name="create-note"),
    path("api/notes", views.api_notes, name="api-notes"),
    path("healthz", health.healthz, name="healthz"),
]
