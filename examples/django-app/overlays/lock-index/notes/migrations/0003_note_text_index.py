# Lock-safety, unsafe form: a plain CREATE INDEX on an existing table blocks every write to it
# (SHARE lock) for as long as the build takes. The migration-safety gate refuses it
# (notes.0003_note_text_index:create_index:notes_note).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0002_note_author'),
    ]

    operations = [
        migrations.AddIndex(
            model_name='note',
            index=models.Index(fields=['text'], name='notes_note_text_idx'),
        ),
    ]
