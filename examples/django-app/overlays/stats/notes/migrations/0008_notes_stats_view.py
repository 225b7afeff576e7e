# A view the code reads with raw SQL (views._stats): what static migration rules cannot follow.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0007_backfill_note_words'),
    ]

    operations = [
        migrations.RunSQL(
            sql='CREATE VIEW "notes_stats" AS SELECT count(*) AS "total" FROM "notes_note";',
            reverse_sql='DROP VIEW "notes_stats";',
        ),
    ]
