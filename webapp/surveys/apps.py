from django.apps import AppConfig


class SurveysConfig(AppConfig):
    name = "webapp.surveys"
    label = "surveys"
    verbose_name = "Listening tests"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # config/celery.py autodiscovers webapp.jobs.tasks only: register our tasks with the worker
        # (and the web process, which queues them) when Django sets up.
        from webapp.surveys import tasks  # noqa: F401
