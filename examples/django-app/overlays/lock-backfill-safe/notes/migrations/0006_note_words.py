# Lock-safety, safe form of lock-backfill, first half: only the column (nullable, no default: a
# catalog change, the lock lasts a moment).

from django.db import migrations, models


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
    ]
