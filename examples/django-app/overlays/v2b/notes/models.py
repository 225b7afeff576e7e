from django.db import models


class Note(models.Model):
    text = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # v2b: author is no longer mapped, so no query of this release names the column (Django selects
    # every mapped field). The column stays until v2c; it is nullable, so inserts without it work.

    def as_dict(self):
        return {"id": self.id, "text": self.text, "created_at": self.created_at.isoformat()}
