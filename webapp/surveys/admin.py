from django.contrib import admin

from webapp.surveys.models import Participant, Stimulus, Survey


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    list_display = ("title", "kind", "state", "owner", "created")
    list_filter = ("kind", "state")


@admin.register(Stimulus)
class StimulusAdmin(admin.ModelAdmin):
    list_display = ("survey", "piece", "condition", "segment", "sign", "state", "duration_sec")
    list_filter = ("state", "condition")


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ("survey", "external_id", "n_answered", "attention_passed", "submitted")
    exclude = ("token",)
