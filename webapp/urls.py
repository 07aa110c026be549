"""URL routes of the web app (see the web contract for what each returns); the JSON API, which
the score page renders through too, is webapp.api.urls."""
from django.contrib.auth import views as auth_views
from django.urls import path

from webapp.accounts.views import signup
from webapp.jobs.views import performance_download, performance_notes, score_takes
from webapp.references.views import reference_delete, reference_notes, score_references
from webapp.scores.views import home, score_bars, score_delete, score_mei, score_notemap, score_page, upload

urlpatterns = [
    path("", home, name="home"),
    path("upload/", upload, name="upload"),
    path("scores/<uuid:score_id>/", score_page, name="score"),
    path("scores/<uuid:score_id>/delete", score_delete, name="score-delete"),
    path("scores/<uuid:score_id>/mei", score_mei, name="score-mei"),
    path("scores/<uuid:score_id>/notemap.json", score_notemap, name="score-notemap"),
    path("scores/<uuid:score_id>/takes.json", score_takes, name="score-takes"),
    path("scores/<uuid:score_id>/bars.json", score_bars, name="score-bars"),
    path("scores/<uuid:score_id>/references", score_references, name="score-references"),
    path("references/<uuid:reference_id>/notes.json", reference_notes,
         name="reference-notes"),
    path("references/<uuid:reference_id>/delete", reference_delete,
         name="reference-delete"),
    path("performances/<uuid:performance_id>/notes.json", performance_notes,
         name="performance-notes"),
    path("performances/<uuid:performance_id>/download.<str:fmt>", performance_download,
         name="performance-download"),
    path("accounts/signup/", signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
