from django.contrib import admin

from webapp.presets.models import Preset


@admin.register(Preset)
class PresetAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "is_shared", "seed", "reference", "updated")
    list_filter = ("is_shared",)
    search_fields = ("name", "description", "owner__username")
    readonly_fields = ("share_token", "source_performance", "reference")
