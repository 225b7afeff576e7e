# The second half of the contract: the column v2b stopped using goes. The model already forgot it
# (0003), so this is SQL only. The migration-safety gate refuses it unless the stack config
# acknowledges notes.0004_drop_note_author:drop_column:notes_note.author, which is safe once v2b
# is the live release.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0003_stop_using_note_author'),
    ]

    operations = [
        migrations.RunSQL(
            sql='ALTER TABLE "notes_note" DROP COLUMN "author";',
            reverse_sql='ALTER TABLE "notes_note" ADD COLUMN "author" varchar(100) NULL;',
        ),
    ]
