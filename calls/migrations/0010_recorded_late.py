# Numbered 0010 as the issue asks: 0009 comes from another branch; on merge, depend on it instead of 0008.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('calls', '0009_see_caller_numbers'),
    ]

    operations = [
        migrations.AddField(
            model_name='call',
            name='recorded_late',
            field=models.BooleanField(default=False, help_text='Answered while the database was unreachable; recorded afterwards from the webhook spool.'),
        ),
    ]
