# Lock-safety, unsafe form: a CHECK constraint validated at once scans the whole table under
# ACCESS EXCLUSIVE (no reads, no writes). Refused (notes.0004_note_text_not_empty:add_check_constraint:notes_note).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('notes', '0003_note_text_index'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='note',
            constraint=models.CheckConstraint(check=~models.Q(text=''), name='notes_note_text_not_empty'),
        ),
    ]
