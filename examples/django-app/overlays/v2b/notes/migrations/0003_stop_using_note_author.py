# The first half of a contract: the model forgets notes_note.author, the database keeps it, so the
# release still live during this deploy (v2, which reads author) keeps working. v2c drops the column.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0002_note_author'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(model_name='note', name='author'),
            ],
            database_operations=[],
        ),
    ]
