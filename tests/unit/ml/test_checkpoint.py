"""Checkpoints load with ``torch.load(weights_only=True)``: no pickled code runs on loading.

save_checkpoint writes the metadata as plain Python (numpy scalars and arrays, paths converted),
and checkpoints written before that, with numpy scalars in their metadata, still load.
"""
from __future__ import annotations

import pickle
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ml.inference import DEFAULT_CHECKPOINT
from ml.model import CVRNN, ModelConfig, load_checkpoint, load_model, save_checkpoint


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


def test_a_grown_model_computes_what_its_checkpoint_did_and_reads_the_new_inputs(tmp_path, tiny_config):
    """ml.model.grow_model: a checkpoint from before the marked pedal (no ``pedal`` embedding, 24
    beat-context columns, its config without ``beat_features`` as v2.5's) grows the new inputs with
    zero weights: the same logits, whatever the new inputs hold; training then moves them."""
    from ml.model import FEATURE_NAMES, grow_model
    from tests.unit.ml.conftest import batch_of, make_piece

    from render.features import BEAT_FEATURES

    added = ("pedal", "harmony")   # the score features since v2.5 (v2.6, v2.7)
    old_cfg = replace(tiny_config, feature_emb={k: v for k, v in tiny_config.feature_emb.items() if k not in added},
                      beat_features=24)
    torch.manual_seed(0)
    old = CVRNN(old_cfg)
    cfg = asdict(old_cfg)
    del cfg["beat_features"]
    torch.save({"config": cfg, "model": old.state_dict()}, tmp_path / "v25.pt")
    old, _ = load_model(tmp_path / "v25.pt")
    new = grow_model(tmp_path / "v25.pt")
    assert list(new.cfg.feature_emb)[-2:] == list(added) and new.cfg.beat_features == BEAT_FEATURES
    assert new.cfg.c_dim == old.cfg.c_dim + sum(ModelConfig().feature_emb[k] for k in added)
    b = batch_of([make_piece(8), make_piece(8, seed=1)], 24)
    b["feat"][..., FEATURE_NAMES.index("pedal")] = torch.randint(0, 3, b["feat"].shape[:2])
    b["feat"][..., FEATURE_NAMES.index("harmony")] = torch.randint(0, 4, b["feat"].shape[:2])
    b["beats"][:, 24:] = torch.rand_like(b["beats"][:, 24:])
    args = [b[k] for k in ("feat", "roll", "pos", "beats", "beat_pos", "x", "mask")]
    outs = []
    for m in (old, new):
        torch.manual_seed(1)
        outs.append(m(*args, m.init_state(2))[0])
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    new.train()
    torch.manual_seed(1)
    new(*args, new.init_state(2))[0].logsumexp(-1).sum().backward()
    assert float(new.gen_in.weight.grad[:, old.cfg.c_dim:new.cfg.c_dim].abs().sum()) > 0
    assert float(new.score.context.inp.weight.grad[:, 24:].abs().sum()) > 0
    # and the old checkpoint still runs on today's wider beat features, reading its 24
    with torch.no_grad():
        assert old.score.context(b["beats"]).shape[1] == old.cfg.ctx_out
