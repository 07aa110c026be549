from django.contrib import admin

from webapp.models import Performance, RenderChunk, RenderJob, Score


@admin.register(Score)
class ScoreAdmin(admin.ModelAdmin):
    list_display = ("title", "owner", "is_demo", "format", "n_notes", "notemap_coverage", "created")
    list_filter = ("is_demo", "format")
    search_fields = ("title", "original_filename")
    exclude = ("mei",)


@admin.register(RenderJob)
class RenderJobAdmin(admin.ModelAdmin):
    list_display = ("id", "score", "owner", "state", "n_notes_done", "n_notes_total", "created")
    list_filter = ("state",)


@admin.register(Performance)
class PerformanceAdmin(admin.ModelAdmin):
    list_display = ("id", "score", "seed", "n_notes", "duration_sec", "created")
    exclude = ("notes",)


admin.site.register(RenderChunk)
