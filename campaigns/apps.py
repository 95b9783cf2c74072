from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = "Campaigns and numbers"

    def ready(self) -> None:
        from .routing import connect_signals

        connect_signals()
