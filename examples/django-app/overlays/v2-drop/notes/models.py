from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=500)
    # v2-drop: created_at is gone, model and column at once. The live v1 still selects it, so the
    # deploy must be refused before any migration runs.

    def as_dict(self):
        return {"id": self.id, "text": self.text}
