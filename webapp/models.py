"""Database rows: uploaded scores, render jobs with their streamed chunks, finished performances."""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from webapp.jsontext import EncodedJSONEncoder


class Score(models.Model):
    """An uploaded (or demo) score, parsed once at upload.

    ``parsed`` is an .npz of the render.score.Score arrays (notes, tempo and dynamics marks) so the
    worker never parses the file again; ``mei`` is Verovio's MEI with ids stable across requests;
    ``notemap`` maps partitura base note ids to the Verovio element ids of that MEI.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.CASCADE, related_name="scores")
    is_demo = models.BooleanField(default=False)
    demo_key = models.CharField(max_length=100, blank=True, default="", db_index=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    original_filename = models.CharField(max_length=255)
    file = models.FileField(upload_to="scores/%Y/%m/")
    parsed = models.FileField(upload_to="parsed/%Y/%m/")
    format = models.CharField(max_length=20)
    n_notes = models.PositiveIntegerField()
    duration_beat = models.FloatField()
    written_tempo_bpm = models.FloatField(null=True, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    mei = models.TextField()
    notemap = models.JSONField(default=dict)
    notemap_coverage = models.FloatField(default=0.0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]
        constraints = [models.UniqueConstraint(
            fields=["demo_key"], condition=models.Q(is_demo=True), name="unique_demo_key")]

    def __str__(self) -> str:
        return self.title


class RenderJob(models.Model):
    """One request to render a score: a row whose state the worker moves forward.

    ``controls`` holds the interpretation controls (mode, delta, base tempo, ...), passed through
    to the renderer as keyword arguments; ``heartbeat`` is touched by the worker while it runs.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (State.QUEUED, State.RUNNING)
    FINISHED = (State.DONE, State.FAILED, State.CANCELLED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    score = models.ForeignKey(Score, on_delete=models.CASCADE, related_name="jobs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.CASCADE, related_name="render_jobs")
    session_key = models.CharField(max_length=64, blank=True, default="", db_index=True)
    seed = models.BigIntegerField()
    controls = models.JSONField(default=dict, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED,
                             db_index=True)
    message = models.TextField(blank=True, default="")
    n_notes_total = models.PositiveIntegerField(default=0)
    n_notes_done = models.PositiveIntegerField(default=0)
    n_chunks = models.PositiveIntegerField(default=0)
    celery_task_id = models.CharField(max_length=64, blank=True, default="")
    # The requester's network address (anonymous renders are limited per address too).
    client_addr = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # When its task was last sent to the queue, and how many times (webapp.jobs.lifecycle's sweep).
    enqueued = models.DateTimeField(null=True, blank=True)
    n_enqueued = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, default="")
    heartbeat = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"job {self.id} ({self.state})"

    @property
    def group_name(self) -> str:
        return f"job_{self.id.hex}"


class RenderChunk(models.Model):
    """A chunk of rendered notes as it was streamed (NOTE dicts of the web contract)."""

    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="chunks")
    seq = models.PositiveIntegerField()
    notes = models.JSONField(encoder=EncodedJSONEncoder)   # stored as the message encoded them
    pedal = models.JSONField(default=list, blank=True, encoder=EncodedJSONEncoder)  # PEDAL events (webapp.jobs.notes)

    class Meta:
        ordering = ["job", "seq"]
        constraints = [models.UniqueConstraint(fields=["job", "seq"], name="unique_chunk_seq")]


class Performance(models.Model):
    """A finished render: MIDI file plus every rendered note, with the seed and controls used.

    A job rendering several takes at once (control ``variations``) stores one performance per
    variation; ``variation`` is its number within the job (0..).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(RenderJob, on_delete=models.CASCADE, related_name="performances")
    variation = models.PositiveSmallIntegerField(default=0)
    score = models.ForeignKey(Score, on_delete=models.CASCADE, related_name="performances")
    seed = models.BigIntegerField()
    controls = models.JSONField(default=dict, blank=True)
    notes = models.JSONField(encoder=EncodedJSONEncoder)   # the streamed chunks' text, joined
    pedal = models.JSONField(default=list, blank=True)  # sustain / soft events (webapp.jobs.notes)
    n_notes = models.PositiveIntegerField()
    duration_sec = models.FloatField()
    midi = models.FileField(upload_to="performances/%Y/%m/")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created", "variation"]
        constraints = [models.UniqueConstraint(fields=["job", "variation"],
                                               name="unique_job_variation")]


class ReferencePerformance(models.Model):
    """A human performance (MIDI) of a score, aligned to it and encoded, to render "in its style".

    ``encoded`` is an .npz written by ml.inference.save_reference: the encoded matched notes with
    the score they index into, so the reference can also prime renders of other scores (presets).
    ``report`` is render.align.AlignmentReport.to_dict() (matched, missing, extra notes ...).
    A render uses it through the job control ``reference_id``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    score = models.ForeignKey(Score, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="references")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                              on_delete=models.CASCADE, related_name="references")
    session_key = models.CharField(max_length=64, blank=True, default="", db_index=True)
    title = models.CharField(max_length=200, blank=True, default="")
    original_filename = models.CharField(max_length=255, blank=True, default="")
    midi = models.FileField(upload_to="references/%Y/%m/", blank=True)
    encoded = models.FileField(upload_to="references/%Y/%m/")
    report = models.JSONField(default=dict, blank=True)
    # The performed notes as NOTE dicts (score ids on matched notes), for playing the reference.
    notes = models.JSONField(default=list, blank=True)
    n_matched = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.title or self.original_filename or f"reference {self.id}"
