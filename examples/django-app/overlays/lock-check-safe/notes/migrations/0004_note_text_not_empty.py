# Lock-safety, safe form of lock-check, first half: the constraint is added NOT VALID (new rows are
# checked from now on; existing rows are not scanned, so the exclusive lock lasts a moment). The
# model state gets the constraint as usual.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0003_note_text_index'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name='note',
                    constraint=models.CheckConstraint(check=~models.Q(text=''), name='notes_note_text_not_empty'),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    sql='ALTER TABLE "notes_note" ADD CONSTRAINT "notes_note_text_not_empty" CHECK (NOT ("text" = \'\')) NOT VALID;',
                    reverse_sql='ALTER TABLE "notes_note" DROP CONSTRAINT "notes_note_text_not_empty";',
                ),
            ],
        ),
    ]
