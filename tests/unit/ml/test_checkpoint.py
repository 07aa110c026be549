"""Checkpoints load with ``torch.load(weights_only=True)``: no pickled code runs on loading.

save_checkpoint writes the metadata as plain Python (numpy scalars and arrays, paths converted),
and checkpoints written before that, with numpy scalars in their metadata, still load.
"""
from __future__ import annotations

import pickle
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.inference import DEFAULT_CHECKPOINT
from ml.model import CVRNN, load_checkpoint, load_model, save_checkpoint


def test_the_shipped_checkpoint_loads_weights_only():
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"{DEFAULT_CHECKPOINT} is not in this checkout")
    assert not torch.serialization.get_unsafe_globals_in_checkpoint(DEFAULT_CHECKPOINT)
    ckpt = torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)
    assert {"config", "model"} <= set(ckpt)
    model, _ = load_model(DEFAULT_CHECKPOINT)
    assert isinstance(model, CVRNN)


def test_a_tiny_checkpoint_loads_weights_only(tiny_checkpoint):
    assert not torch.serialization.get_unsafe_globals_in_checkpoint(tiny_checkpoint)
    torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)


def test_metadata_is_saved_as_plain_python(tmp_path, tiny_config):
    """What ml.train saves beside the weights: an optimizer, a plan, a loss (numpy), paths."""
    model = CVRNN(tiny_config)
    opt = torch.optim.Adam(model.parameters())
    path = tmp_path / "last.pt"
    save_checkpoint(path, model, optimizer=opt.state_dict(), best=np.float32(1.5), step=np.int64(7),
                    plan={"streams": [[np.int64(2), 0]], "shift": np.arange(3)}, out=Path("runs/x"),
                    state=[torch.zeros(2)])
    assert not torch.serialization.get_unsafe_globals_in_checkpoint(path)
    ck = torch.load(path, map_location="cpu", weights_only=True)
    assert ck["best"] == 1.5 and type(ck["best"]) is float and type(ck["step"]) is int
    assert ck["plan"] == {"streams": [[2, 0]], "shift": [0, 1, 2]} and ck["out"] == "runs/x"
    assert torch.equal(ck["state"][0], torch.zeros(2))
    opt.load_state_dict(ck["optimizer"])


def test_an_old_checkpoint_with_numpy_metadata_still_loads(tmp_path, tiny_config):
    model = CVRNN(tiny_config)
    path = tmp_path / "old.pt"
    torch.save({"config": asdict(tiny_config), "model": model.state_dict(), "best": np.float32(1.5),
                "step": np.int64(7), "flag": np.bool_(True)}, path)
    with pytest.raises(pickle.UnpicklingError):  # as such, weights_only refuses it
        torch.load(path, map_location="cpu", weights_only=True)
    ck = load_checkpoint(path)
    assert ck["best"] == 1.5 and ck["step"] == 7 and ck["flag"]
    model2, _ = load_model(path)
    assert model2.cfg == tiny_config
