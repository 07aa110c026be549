"""Request validation and the documented shapes of API responses (the OpenAPI schema's components).

Requests are checked for types here; what a value means (ranges, modes, sections within the
score) is checked by the same services as the web pages, with the same messages.
"""
from __future__ import annotations

from rest_framework import serializers

from webapp.jobs.controls import DELTA_LIMIT, MODES, TEMPO_RANGE, Z_LIMIT


class ErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What went wrong, for a person to read.")
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()),
                                   required=False, help_text="Messages per invalid field.")


class SectionSerializer(serializers.Serializer):
    from_bar = serializers.IntegerField(min_value=1)
    to_bar = serializers.IntegerField(min_value=1)
    delta = serializers.ListField(child=serializers.FloatField(), min_length=5, max_length=5)


class ControlsSerializer(serializers.Serializer):
    """Interpretation controls (webapp.jobs.controls): every one optional."""

    mode = serializers.ChoiceField(choices=MODES, required=False,
                                   help_text="prior: sample z; perturb: prior mean + delta; "
                                             "fixed: z as given.")
    delta = serializers.ListField(
        child=serializers.FloatField(min_value=-DELTA_LIMIT, max_value=DELTA_LIMIT),
        min_length=5, max_length=5, required=False,
        help_text="The paper's Delta: 5 numbers in units of the prior's spread (mode perturb).")
    sections = serializers.ListField(child=SectionSerializer(), required=False,
                                     help_text="Delta on ranges of bars (mode perturb).")
    z = serializers.ListField(child=serializers.FloatField(min_value=-Z_LIMIT, max_value=Z_LIMIT),
                              min_length=5, max_length=5, required=False,
                              help_text="The interpretation for mode fixed.")
    base_tempo_bpm = serializers.FloatField(min_value=TEMPO_RANGE[0], max_value=TEMPO_RANGE[1],
                                            required=False)
    expressiveness = serializers.FloatField(min_value=0, max_value=3, required=False)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False,
                                         help_text="Note-level randomness of the model's sampling "
                                                   "(0 = its most likely notes; default the model card's).")
    variations = serializers.IntegerField(min_value=1, required=False,
                                          help_text="Takes rendered at once.")
    reference_id = serializers.UUIDField(required=False,
                                         help_text="A reference performance of yours.")


class RenderRequestSerializer(serializers.Serializer):
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False,
                                    allow_null=True, help_text="Omit for a fresh one.")
    controls = ControlsSerializer(required=False)


def _controls_object() -> serializers.DictField:
    """Controls as the views take them: any JSON object (what its values mean is checked by the
    services, with the web's messages)."""
    return serializers.DictField(required=False, error_messages={"not_a_dict": "must be a JSON object"})


class RenderRequestCheck(RenderRequestSerializer):
    """What the view checks itself: the controls' values are checked by the render service
    (webapp.jobs.controls), with the web's messages."""

    controls = _controls_object()


class ScoreUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True,  # refused by the service, as on the web
                                 help_text="MusicXML, MIDI, MEI or Humdrum kern.")
    title = serializers.CharField(max_length=200, required=False, allow_blank=True)


class ScoreSerializer(serializers.Serializer):
    score_id = serializers.UUIDField()
    title = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    is_demo = serializers.BooleanField()
    original_filename = serializers.CharField()
    format = serializers.CharField()
    n_notes = serializers.IntegerField()
    duration_beat = serializers.FloatField()
    written_tempo_bpm = serializers.FloatField(allow_null=True)
    warnings = serializers.ListField(child=serializers.CharField())
    created = serializers.DateTimeField()
    page_url = serializers.CharField()
    mei_url = serializers.CharField()


class JobSerializer(serializers.Serializer):
    job_id = serializers.UUIDField()
    state = serializers.ChoiceField(choices=["queued", "running", "done", "failed", "cancelled"])
    message = serializers.CharField(allow_null=True)
    seed = serializers.IntegerField()
    controls = serializers.DictField()
    n_notes_done = serializers.IntegerField()
    n_notes_total = serializers.IntegerField()
    n_chunks = serializers.IntegerField()
    ws_url = serializers.CharField(help_text=(
        "WebSocket path streaming the render (ws://<host><ws_url>): scripts authenticate with "
        "the header 'Authorization: Token <key>' (or ?token=<key>) and send no Origin; browser "
        "sessions use their cookie. JSON messages: {type: 'state', state, message}, {type: "
        "'notes', seq (0, 1, ... in order), notes, pedal (sustain CC64 / soft CC67 events {t, cc, "
        "value, v} that these notes complete)}, then {type: 'done', performance_id, "
        "performances, n_notes}. A finished job is replayed. Refused: close code 4401 bad token, "
        "4403 not your job. Or poll status_url."))
    status_url = serializers.CharField(help_text="GET: this job again (poll it until it has ended).")
    cancel_url = serializers.CharField(help_text="POST: cancel the job while it is queued or running.")
    performance_id = serializers.UUIDField(allow_null=True)
    performance_ids = serializers.ListField(child=serializers.UUIDField())


class PerformanceSummarySerializer(serializers.Serializer):
    performance_id = serializers.UUIDField()
    job_id = serializers.UUIDField()
    seed = serializers.IntegerField()
    controls = serializers.DictField()
    variation = serializers.IntegerField()
    n_notes = serializers.IntegerField()
    duration = serializers.FloatField()
    created = serializers.DateTimeField()
    url = serializers.CharField()
    downloads = serializers.DictField(child=serializers.CharField(),
                                      help_text="mid, wav, ogg, csv")


class NoteSerializer(serializers.Serializer):
    i = serializers.IntegerField(help_text="Score note index")
    id = serializers.CharField(help_text="Score note id")
    pitch = serializers.IntegerField()
    onset = serializers.FloatField(help_text="s")
    duration = serializers.FloatField(help_text="s")
    velocity = serializers.IntegerField()
    tempo = serializers.FloatField(required=False)


class PerformanceSerializer(PerformanceSummarySerializer):
    score_id = serializers.UUIDField()
    notes = NoteSerializer(many=True)


class PresetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, error_messages={"blank": "the preset needs a name"})
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    performance_id = serializers.UUIDField(required=False,
                                           help_text="Save this take's interpretation (seed, "
                                                     "controls, reference).")
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False,
                                    allow_null=True, help_text="Without performance_id.")
    controls = ControlsSerializer(required=False, help_text="Without performance_id; no "
                                                            "reference_id.")


class PresetCreateCheck(PresetCreateSerializer):
    """As RenderRequestCheck: the controls' values are checked by the preset service."""

    controls = _controls_object()


class PresetUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False)
    description = serializers.CharField(max_length=2000, required=False, allow_blank=True)


class ApplySerializer(serializers.Serializer):
    score_id = serializers.UUIDField()
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, required=False,
                                    allow_null=True,
                                    help_text="A variation of the preset: this seed instead of "
                                              "its own (null: a fresh one).")
    controls = ControlsSerializer(required=False,
                                  help_text="A variation of the preset: these controls instead of "
                                            "its own (its reference is kept; no reference_id).")
    variations = serializers.IntegerField(min_value=1, required=False,
                                          help_text="Takes rendered at once, with the preset's "
                                                    "(or the given) controls.")


class ApplyCheck(ApplySerializer):
    """As RenderRequestCheck: the controls' values are checked by the render service."""

    controls = _controls_object()


class ReferenceInfoSerializer(serializers.Serializer):
    title = serializers.CharField()
    n_matched = serializers.IntegerField()


class SourceSerializer(serializers.Serializer):
    score_title = serializers.CharField()
    n_notes = serializers.IntegerField()
    duration = serializers.FloatField()


class PresetSerializer(serializers.Serializer):
    id = serializers.UUIDField(required=False, help_text="Only for the owner.")
    name = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    seed = serializers.IntegerField(allow_null=True)
    controls = serializers.DictField()
    reference = ReferenceInfoSerializer(allow_null=True)
    owner = serializers.CharField()
    is_shared = serializers.BooleanField()
    share_url = serializers.CharField(allow_null=True)
    source = SourceSerializer(allow_null=True)
    created = serializers.DateTimeField()
    updated = serializers.DateTimeField()
    api_url = serializers.CharField()
    page_url = serializers.CharField(help_text="The preset's page on the site (the owner's, or "
                                               "the share link's).")


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"})


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()
