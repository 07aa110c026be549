"""Listening tests (paper section 4.1 and 4.2): surveys, their stimuli and items, participants.

A `Survey` is a MOS test or an interpretation A/B test over `SurveyPiece` rows (a score, and for
the MOS oracle a human performance MIDI). Preparing it fixes a passage per piece (score beats)
and creates `Stimulus` rows, each rendered once to an audio file by a Celery worker, and the
`Item` rows participants answer (one clip per MOS item; A1, A2 and B in the presented order for
an A/B item). A `Participant` gets a per-participant order of items; a `Response` row is one
answer to one question of one item.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.core import signing
from django.db import models

from webapp.models import Score


class Survey(models.Model):
    class Kind(models.TextChoices):
        MOS = "mos", "MOS test (naturalness, expressiveness)"
        AB = "ab", "Interpretation A/B test"

    class State(models.TextChoices):
        DRAFT = "draft"          # pieces and passages may change
        RENDERING = "rendering"  # stimuli queued on the workers
        READY = "ready"          # every stimulus rendered: preview, then open
        OPEN = "open"            # participants may take it
        CLOSED = "closed"        # no more submissions

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="surveys")
    title = models.CharField(max_length=200)
    kind = models.CharField(max_length=4, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.DRAFT)
    segment_sec = models.FloatField(default=15.0)
    conditions = models.JSONField(default=list, blank=True)  # MOS: subset of CONDITIONS
    pairs_per_piece = models.PositiveIntegerField(default=1)  # A/B
    n_attention = models.PositiveIntegerField(default=2)
    seed = models.BigIntegerField()
    instructions = models.TextField(blank=True, default="")
    completion_code = models.CharField(max_length=40)
    # Panel surveys: a participant must come with an external id (one take per id).
    require_external_id = models.BooleanField(default=False)
    message = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)
    opened = models.DateTimeField(null=True, blank=True)
    closed = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.title


class SurveyPiece(models.Model):
    """A score in a survey; ``start_beat`` None means "pick the passage at random"."""

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="pieces")
    score = models.ForeignKey(Score, on_delete=models.PROTECT, related_name="survey_pieces")
    order = models.PositiveIntegerField()
    start_beat = models.FloatField(null=True, blank=True)
    human_midi = models.FileField(upload_to="surveys/human/%Y/%m/", blank=True)
    human_name = models.CharField(max_length=255, blank=True, default="")
    # The worker aligns the human performance once it is uploaded (render.align): the state,
    # the passage of the score it covers, or why it does not fit.
    human_state = models.CharField(max_length=8, blank=True, default="")  # pending|done|failed
    human_message = models.TextField(blank=True, default="")
    human_start_beat = models.FloatField(null=True, blank=True)
    human_end_beat = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["survey", "order"]


class Stimulus(models.Model):
    """One audio clip: a passage of a piece in one condition, rendered once."""

    class State(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="stimuli")
    piece = models.ForeignKey(SurveyPiece, on_delete=models.CASCADE, related_name="stimuli")
    condition = models.CharField(max_length=12)   # deadpan|humanizer|model|human|perturb
    segment = models.CharField(max_length=1, blank=True, default="")  # A/B: "A" or "B"
    pair = models.PositiveIntegerField(default=0)  # A/B: pair number within the survey
    sign = models.SmallIntegerField(default=0)     # A/B: +1 (mu + D e^g) or -1 (mu - D e^g)
    delta = models.JSONField(default=list, blank=True)
    seed = models.BigIntegerField()
    start_beat = models.FloatField()
    end_beat = models.FloatField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    message = models.TextField(blank=True, default="")
    audio = models.FileField(upload_to="surveys/audio/%Y/%m/", blank=True)
    duration_sec = models.FloatField(default=0.0)
    n_notes = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["piece__order", "pair", "segment", "-sign", "condition"]


class Item(models.Model):
    """What a participant answers: a MOS clip, or an A/B quadruple (A1, A2, B first, B second)."""

    class Role(models.TextChoices):
        TRIAL = "trial"
        PRACTICE = "practice"
        ATTENTION = "attention"

    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="items")
    role = models.CharField(max_length=10, choices=Role.choices)
    piece = models.ForeignKey(SurveyPiece, on_delete=models.CASCADE, related_name="items")
    condition = models.CharField(max_length=12, blank=True, default="")
    pair = models.PositiveIntegerField(default=0)
    b_reversed = models.BooleanField(default=False)  # A/B: B2 is played before B1
    clips = models.ManyToManyField(Stimulus, through="ItemClip", related_name="items")
    expected = models.JSONField(default=dict, blank=True)  # attention checks: known answers
    instruction = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["survey", "id"]


class ItemClip(models.Model):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="item_clips")
    stimulus = models.ForeignKey(Stimulus, on_delete=models.CASCADE)
    order = models.PositiveSmallIntegerField()
    label = models.CharField(max_length=8)  # what the participant sees: "A1", "B first", ...

    class Meta:
        ordering = ["item", "order"]
        constraints = [models.UniqueConstraint(fields=["item", "order"], name="unique_clip_order")]


class Participant(models.Model):
    """One person taking a survey. ``token`` is their secret (in their URL); ``browser`` the
    hash of the signed browser id of the browser that consented, the only one that may go on.

    ``preview`` marks a researcher trying the survey before (or while) it is open: the same
    pages and rules, left out of the counts, statistics and exports."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="participants")
    token = models.CharField(max_length=64, unique=True)
    external_id = models.CharField(max_length=100, blank=True, default="")
    browser = models.CharField(max_length=64, blank=True, default="", db_index=True)
    order = models.JSONField(default=list)       # item ids: practice first, then shuffled
    served = models.JSONField(default=dict)      # position -> unix time the item was first shown
    n_answered = models.PositiveIntegerField(default=0)
    age_band = models.CharField(max_length=10, blank=True, default="")
    training_band = models.CharField(max_length=10, blank=True, default="")
    attention_passed = models.BooleanField(null=True, blank=True)
    preview = models.BooleanField(default=False)
    consented = models.DateTimeField()
    submitted = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["consented"]
        constraints = [models.UniqueConstraint(
            fields=["survey", "external_id"], condition=~models.Q(external_id=""),
            name="unique_external_id_per_survey")]

    def item_key(self, position: int) -> str:
        """The key of the item at ``position`` that the answer must carry back: an HMAC of the
        participant, the position and the item, opaque (item ids would hint at the condition)."""
        signer = signing.Signer(salt=f"surveys.item.{self.id}")
        return signer.signature(f"{position}:{self.order[position]}")


class Response(models.Model):
    """One answer: ``question`` is naturalness / expressiveness (1-5), or relation (+1 same,
    -1 reversed) and confidence (0-2) for A/B items."""

    participant = models.ForeignKey(Participant, on_delete=models.CASCADE,
                                    related_name="responses")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="responses")
    position = models.PositiveIntegerField()
    question = models.CharField(max_length=16)
    value = models.SmallIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["participant", "position", "question"]
        constraints = [models.UniqueConstraint(fields=["participant", "item", "question"],
                                               name="unique_answer")]
