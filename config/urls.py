"""URL configuration: the web app's pages, auth and the admin; media served by Django."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("surveys/", include("webapp.surveys.urls")),
    path("", include("webapp.urls")),
    path("", include("webapp.presets.urls")),
    path("", include("webapp.api.urls")),
]
