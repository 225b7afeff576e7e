from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    title = models.CharField(max_length=100, null=True, blank=True)

    def as_dict(self):
        return {"id": self.id, "text": self.text, "title": self.title, "created_at": self.created_at.isoformat()}
