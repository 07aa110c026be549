"""ml.train on a tiny cache of synthetic performances: a run, and a run that continues another's weights."""
from __future__ import annotations

import json

import torch

from ml.model import load_model
from ml.train import parse_args, train
from tests.unit.ml.conftest import TINY, make_piece
from tests.unit.ml.test_data import save_piece


def _cache(root):
    for split, names in {"train": ["a", "b", "c"], "val": ["v"]}.items():
        (root / split).mkdir(parents=True)
        for i, name in enumerate(names):
            save_piece(root / split / f"{name}.npz", make_piece(8, seed=i), f"Synthetic/{name}")
    return root


def _args(data, out, *extra):
    return parse_args(["--data", str(data), "--out", str(out), "--batch", "2", "--window", "16",
                       "--threads", "1", "--val-every", "0", "--model", json.dumps(TINY),
                       "--kl-anneal-steps", "1", "--export", str(out / "export"), *extra])


def test_a_run_with_the_prior_below_the_floor_and_the_point_loss_and_one_continuing_its_weights(tmp_path):
    data = _cache(tmp_path / "cache")
    first = train(_args(data, tmp_path / "a", "--max-steps", "3", "--prior-below-floor", "--free-bits", "0.2",
                        "--point-weight", "0.5", "--sample-weight", "0.5"))
    assert first["steps"] == 3 and first["final_val"]["notes"] > 0
    assert first["final_val"]["point_nll"] > 0 and "point_tempo" in first["final_val"]
    assert first["final_val"]["sample_nll"] > 0 and "sample_tempo" in first["final_val"]
    src, _ = load_model(tmp_path / "a" / "export" / "last.pt")
    # a learning rate of 0: the continued run must end with exactly the weights it started from
    second = train(_args(data, tmp_path / "b", "--max-steps", "1", "--lr", "0", "--lr-min", "0",
                         "--init-from", str(tmp_path / "a" / "export" / "last.pt")))
    assert second["steps"] == 1
    out, ckpt = load_model(tmp_path / "b" / "export" / "last.pt")
    assert ckpt["train_config"]["init_from"].endswith("last.pt")
    for (name, a), (_, b) in zip(src.state_dict().items(), out.state_dict().items()):
        if "running" in name or "num_batches" in name:
            continue  # BatchNorm statistics move in train mode even at a learning rate of 0
        assert torch.equal(a, b), name


def test_a_run_with_the_free_path_carried_across_windows_and_a_take_run_free(tmp_path):
    data = _cache(tmp_path / "cache")
    res = train(_args(data, tmp_path / "a", "--max-steps", "4", "--free-weight", "1", "--free-carry",
                      "--free-take-weight", "1"))
    assert res["steps"] == 4 and res["final_val"]["free_nll"] > 0 and "free_tempo" in res["final_val"]
    assert res["final_val"]["take_nll"] > 0 and "take_tempo" in res["final_val"]
    ckpt = torch.load(tmp_path / "a" / "last.pt", weights_only=False)
    assert len(ckpt["state"]) == 3  # the resumable state holds the free path's own CVRNN state
    again = train(_args(data, tmp_path / "a", "--max-steps", "5", "--free-weight", "1", "--free-carry", "--resume"))
    assert again["steps"] == 5
