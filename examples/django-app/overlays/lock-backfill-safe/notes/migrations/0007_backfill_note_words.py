# Lock-safety, safe form of lock-backfill, second half: the backfill in a migration of its own, not
# atomic, so each row's UPDATE commits by itself and holds no lock beyond that row.

from django.db import migrations


def count_words(apps, schema_editor):
    Note = apps.get_model('notes', 'Note')
    for note in Note.objects.filter(words__isnull=True).only('id', 'text').iterator():
        Note.objects.filter(pk=note.pk).update(words=len(note.text.split()))


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('notes', '0006_note_words'),
    ]

    operations = [
        migrations.RunPython(count_words, migrations.RunPython.noop),
    ]
