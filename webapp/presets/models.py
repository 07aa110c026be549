"""A preset: the interpretation of a take (seed, controls, reference), kept by its owner."""
from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models


def new_share_token() -> str:
    """An unguessable share token (128 random bits, URL-safe)."""
    return secrets.token_urlsafe(16)


class Preset(models.Model):
    """The controls of a take, applicable to any score, private unless shared by its link.

    ``controls`` is a copy of the take's ``Performance.controls`` without ``reference_id``: the
    reference is ``reference``, the preset's own copy of the encoded reference performance (a
    ReferencePerformance row with no score, made when the preset is saved), so the preset keeps
    working when the owner deletes the upload it was made from; it is deleted with the preset
    (RESTRICT: nothing else may delete it while the preset exists).
    ``share_token`` is replaced when sharing stops, so a stopped link never works again.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                              related_name="presets")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, default="")
    seed = models.BigIntegerField(null=True, blank=True)
    controls = models.JSONField(default=dict, blank=True)
    reference = models.ForeignKey("webapp.ReferencePerformance", null=True, blank=True,
                                  on_delete=models.RESTRICT, related_name="presets")
    source_performance = models.ForeignKey("webapp.Performance", null=True, blank=True,
                                           on_delete=models.SET_NULL, related_name="presets")
    is_shared = models.BooleanField(default=False)
    share_token = models.CharField(max_length=64, unique=True, default=new_share_token,
                                   editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated"]

    def __str__(self) -> str:
        return self.name
