"""The worker's model handle: loaded once, warmed up by a short render through the job's path."""
from __future__ import annotations

import pytest
import torch

from ml.model import CVRNN, save_checkpoint
from tests.unit.ml.conftest import TINY
from webapp.jobs import renderer as handle


@pytest.fixture
def tiny_model(tmp_path, monkeypatch):
    from ml.model import ModelConfig

    torch.manual_seed(0)
    path = tmp_path / "tiny.pt"
    save_checkpoint(path, CVRNN(ModelConfig(**TINY)))
    monkeypatch.setenv("MODEL_CHECKPOINT", str(path))
    monkeypatch.setattr(handle, "_renderer", None)
    return path


def test_the_warm_up_loads_the_model_once_and_renders_through_the_jobs_path(tiny_model):
    seconds = handle.renderer_warm_up(n_notes=24)
    assert seconds > 0
    first = handle.get_renderer()
    assert first.cfg.dense_units == TINY["dense_units"]   # the checkpoint of MODEL_CHECKPOINT
    handle.renderer_warm_up(n_notes=24)
    assert handle.get_renderer() is first                # loaded once per process
