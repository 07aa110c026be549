from django.apps import AppConfig


class PresetsConfig(AppConfig):
    name = "webapp.presets"
    label = "presets"
    verbose_name = "Presets"
    default_auto_field = "django.db.models.BigAutoField"
