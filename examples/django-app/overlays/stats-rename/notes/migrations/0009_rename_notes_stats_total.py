# Compatible by every static rule (no table or column of a table changes), yet the live release's
# raw query (SELECT "total" FROM notes_stats) fails once it runs: only the migration rehearsal,
# which runs the live release's code against the migrated schema, refuses it.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0008_notes_stats_view'),
    ]

    operations = [
        migrations.RunSQL(
            sql='ALTER VIEW "notes_stats" RENAME COLUMN "total" TO "notes";',
            reverse_sql='ALTER VIEW "notes_stats" RENAME COLUMN "notes" TO "total";',
        ),
    ]
