from django.apps import AppConfig


class CallsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "calls"
    verbose_name = "Call history"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
