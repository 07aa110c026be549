"""Save a row together with the files it owns: all of them, or none (no orphan files)."""
from __future__ import annotations

import uuid
from pathlib import Path

from django.core.files import File
from django.db import models, transaction


def row_save_with_files(*, row: models.Model, files: list[tuple[str, Path, str]]) -> None:
    """Store each (file field name, source path, suffix) under a fresh random name, then save
    ``row``, in one transaction; on any failure the files already stored are deleted again.
    """
    saved: list[tuple[models.FileField, str]] = []
    try:
        with transaction.atomic():
            for field, src, suffix in files:
                fieldfile = getattr(row, field)
                with open(src, "rb") as f:
                    fieldfile.save(f"{uuid.uuid4().hex}{suffix}", File(f), save=False)
                saved.append((fieldfile.storage, fieldfile.name))
            row.save()
    except BaseException:
        for storage, name in saved:
            storage.delete(name)
        raise
