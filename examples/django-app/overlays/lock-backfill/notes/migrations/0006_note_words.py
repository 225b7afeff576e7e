# Lock-safety, unsafe form: the column add and its backfill in one atomic migration. The ALTER
# TABLE's ACCESS EXCLUSIVE lock stays until the transaction ends, so no query of the live release
# gets through while the Python backfill runs. Refused (notes.0006_note_words:run_python_with_ddl:notes_note).

from django.db import migrations, models


def count_words(apps, schema_editor):
    Note = apps.get_model('notes', 'Note')
    for note in Note.objects.filter(words__isnull=True).only('id', 'text').iterator():
        Note.objects.filter(pk=note.pk).update(words=len(note.text.split()))


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0005_validate_note_text_not_empty'),
    ]

    operations = [
        migrations.AddField(
            model_name='note',
            name='words',
            field=models.IntegerField(null=True, blank=True),
        ),
        migrations.RunPython(count_words, migrations.RunPython.noop),
    ]
