# Fails midway on purpose: the first operation (an additive nullable column) succeeds, the second
# (validating a CHECK constraint the existing rows violate) fails. The constraint is added NOT VALID,
# so the lock-safety rules let it through; its validation scans the rows and finds the violation. Django runs the migration in one
# transaction on PostgreSQL, so the column must not be there afterwards and 0005 must not be
# recorded as applied.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0004_drop_note_author'),
    ]

    operations = [
        migrations.AddField(
            model_name='note',
            name='title',
            field=models.CharField(blank=True, max_length=100, null=True),
        ),
        migrations.RunSQL(
            sql=[
                'ALTER TABLE "notes_note" ADD CONSTRAINT "notes_note_text_short" CHECK (char_length("text") <= 3) NOT VALID;',
                'ALTER TABLE "notes_note" VALIDATE CONSTRAINT "notes_note_text_short";',
            ],
            reverse_sql='ALTER TABLE "notes_note" DROP CONSTRAINT "notes_note_text_short";',
        ),
    ]
