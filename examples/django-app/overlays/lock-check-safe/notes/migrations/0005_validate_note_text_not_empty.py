# Lock-safety, safe form of lock-check, second half, in a migration (and transaction) of its own:
# VALIDATE CONSTRAINT scans the rows under SHARE UPDATE EXCLUSIVE, which lets reads and writes on.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0004_note_text_not_empty'),
    ]

    operations = [
        migrations.RunSQL(
            sql='ALTER TABLE "notes_note" VALIDATE CONSTRAINT "notes_note_text_not_empty";',
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
