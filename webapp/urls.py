"""URL routes of the web app (see the web contract for what each returns)."""
from django.contrib.auth import views as auth_views
from django.urls import path

from webapp import views

urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("scores/<uuid:score_id>/", views.score_page, name="score"),
    path("scores/<uuid:score_id>/delete", views.score_delete, name="score-delete"),
    path("scores/<uuid:score_id>/mei", views.score_mei, name="score-mei"),
    path("scores/<uuid:score_id>/notemap.json", views.score_notemap, name="score-notemap"),
    path("scores/<uuid:score_id>/render", views.score_render, name="score-render"),
    path("scores/<uuid:score_id>/takes.json", views.score_takes, name="score-takes"),
    path("scores/<uuid:score_id>/bars.json", views.score_bars, name="score-bars"),
    path("scores/<uuid:score_id>/references", views.score_references, name="score-references"),
    path("references/<uuid:reference_id>/notes.json", views.reference_notes,
         name="reference-notes"),
    path("references/<uuid:reference_id>/delete", views.reference_delete,
         name="reference-delete"),
    path("jobs/<uuid:job_id>/", views.job_status, name="job"),
    path("jobs/<uuid:job_id>/cancel", views.job_cancel, name="job-cancel"),
    path("performances/<uuid:performance_id>/notes.json", views.performance_notes,
         name="performance-notes"),
    path("performances/<uuid:performance_id>/download.<str:fmt>", views.performance_download,
         name="performance-download"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
]
