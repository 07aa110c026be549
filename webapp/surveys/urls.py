"""Routes of the listening tests, mounted at /surveys/."""
from django.urls import path

from webapp.surveys import views

app_name = "surveys"
urlpatterns = [
    path("", views.survey_list, name="list"),
    path("new/", views.survey_new, name="new"),
    path("<uuid:survey_id>/", views.survey_detail, name="detail"),
    path("<uuid:survey_id>/status.json", views.survey_status, name="status"),
    path("<uuid:survey_id>/pieces/<int:piece_id>/", views.piece_update, name="piece"),
    path("<uuid:survey_id>/try/", views.survey_try, name="try"),
    path("<uuid:survey_id>/delete/", views.survey_delete, name="delete"),
    path("<uuid:survey_id>/<str:action>/", views.survey_action, name="action"),
    path("<uuid:survey_id>/results", views.survey_results, name="results"),
    path("<uuid:survey_id>/responses.csv", views.responses_csv, name="responses-csv"),
    path("<uuid:survey_id>/summary.csv", views.summary_csv, name="summary-csv"),
    path("clips/<uuid:stimulus_id>.ogg", views.stimulus_audio, name="audio"),
    path("s/<uuid:survey_id>/", views.take, name="take"),
    path("s/<uuid:survey_id>/consent", views.consent, name="consent"),
    path("p/<str:token>/", views.run, name="run"),
    path("p/<str:token>/state.json", views.state, name="state"),
    path("p/<str:token>/answer", views.answer, name="answer"),
    path("p/<str:token>/submit", views.submit, name="submit"),
]
