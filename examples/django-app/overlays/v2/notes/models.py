from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # v2: nullable, so v1 (which never writes it) keeps working on the migrated table.
    author = models.CharField(max_length=100, null=True, blank=True)

    def as_dict(self):
        return {"id": self.id, "text": self.text, "author": self.author, "created_at": self.created_at.isoformat()}
