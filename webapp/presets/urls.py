"""Routes of the preset pages (/presets/...) and of share links (/p/<token>/...)."""
from django.urls import path

from webapp.presets import views

urlpatterns = [
    path("presets/", views.preset_list, name="presets"),
    path("presets/shared/", views.preset_list_shared, name="presets-shared"),
    path("presets/<uuid:preset_id>/", views.preset_detail, name="preset-detail"),
    path("presets/<uuid:preset_id>/edit", views.preset_edit, name="preset-edit"),
    path("presets/<uuid:preset_id>/share", views.preset_share, name="preset-share"),
    path("presets/<uuid:preset_id>/unshare", views.preset_unshare, name="preset-unshare"),
    path("presets/<uuid:preset_id>/delete", views.preset_delete, name="preset-delete"),
    path("presets/<uuid:preset_id>/preset.json", views.preset_info, name="preset-info"),
    path("presets/<uuid:preset_id>/notes.json", views.preset_notes, name="preset-notes"),
    path("p/<str:token>/", views.preset_shared, name="preset-shared"),
    path("p/<str:token>/preset.json", views.preset_shared_info, name="preset-shared-info"),
    path("p/<str:token>/notes.json", views.preset_shared_notes, name="preset-shared-notes"),
]
