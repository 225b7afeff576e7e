# Lock-safety, safe form of lock-index: CREATE INDEX CONCURRENTLY, which cannot run inside a
# transaction, so the migration is not atomic. Writes go on while the index builds.

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('notes', '0002_note_author'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='note',
            index=models.Index(fields=['text'], name='notes_note_text_idx'),
        ),
    ]
