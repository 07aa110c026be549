"""API routes: /api/v1/... (JSON), /api/schema/ (OpenAPI 3), /api/ (docs page), /api/token/
(token page)."""
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from webapp.api import pages, preset_views, views

v1 = [
    path("token/", views.TokenView.as_view(), name="api-token"),
    path("scores/", views.ScoreListView.as_view(), name="api-scores"),
    path("scores/<uuid:score_id>/", views.ScoreDetailView.as_view(), name="api-score"),
    path("scores/<uuid:score_id>/render/", views.ScoreRenderView.as_view(),
         name="api-score-render"),
    path("scores/<uuid:score_id>/performances/", views.ScorePerformancesView.as_view(),
         name="api-score-performances"),
    path("jobs/<uuid:job_id>/", views.JobView.as_view(), name="api-job"),
    path("jobs/<uuid:job_id>/cancel/", views.JobCancelView.as_view(), name="api-job-cancel"),
    path("performances/<uuid:performance_id>/", views.PerformanceView.as_view(),
         name="api-performance"),
    path("performances/<uuid:performance_id>/download/<str:fmt>/",
         views.PerformanceDownloadView.as_view(), name="api-performance-download"),
    path("presets/", preset_views.PresetListView.as_view(), name="api-presets"),
    path("presets/<uuid:preset_id>/", preset_views.PresetDetailView.as_view(), name="api-preset"),
    path("presets/<uuid:preset_id>/share/", preset_views.PresetShareView.as_view(),
         name="api-preset-share"),
    path("presets/<uuid:preset_id>/unshare/", preset_views.PresetUnshareView.as_view(),
         name="api-preset-unshare"),
    path("presets/<uuid:preset_id>/apply/", preset_views.PresetApplyView.as_view(),
         name="api-preset-apply"),
    path("shared-presets/", preset_views.SharedPresetListView.as_view(), name="api-shared-presets"),
    path("shared-presets/<str:token>/", preset_views.SharedPresetDetailView.as_view(),
         name="api-shared-preset"),
    path("shared-presets/<str:token>/apply/", preset_views.SharedPresetApplyView.as_view(),
         name="api-shared-preset-apply"),
]

urlpatterns = [
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/", pages.api_docs, name="api-docs"),
    path("api/token/", pages.api_token_page, name="api-token-page"),
    path("api/v1/", include(v1)),
    re_path(r"^api/v1/", pages.api_not_found),  # anything else under /api/v1/: JSON 404
]
