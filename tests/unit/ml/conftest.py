"""Tiny models and synthetic scores for the ml tests (no data files, no trained checkpoint)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.model import CVRNN, ModelConfig, save_checkpoint
from render.score import NOTE_DTYPE, Score

TINY = dict(cnn_channels=(4, 4, 4, 4), cnn_proj=4, mlp_hidden=32, mlp_out=16, score_gru=8,
            score_gru_layers=2, dense_units=16, x_emb=4, state_in=8, state_dim=8, state_layers=2,
            feature_emb={"pitch": 4, "ioi_96": 4, "duration_96": 4, "key": 2, "ts_num": 2, "ts_den": 2,
                         "tempo_30": 2, "velocity_10": 2, "bar_pos_12": 4, "staff": 2, "is_grace": 2})


def make_score(n_beats: int = 16, tempo: float = 100.0, repeat_ids: bool = False) -> Score:
    """A two-hand piece: eighth-note melody over quarter-note chords, 4/4, C major."""
    rows = []
    for b in range(n_beats):
        for k in range(2):  # melody eighths
            pitch = 72 + [0, 2, 4, 5, 7, 5, 4, 2][(2 * b + k) % 8]
            rows.append((b + 0.5 * k, 0.5, pitch, 1))
        for p in (48 + (b % 4) * 2, 55 + (b % 4) * 2):  # left-hand dyads
            rows.append((float(b), 1.0, p, 2))
    notes = np.zeros(len(rows), NOTE_DTYPE)
    for i, (on, du, p, st) in enumerate(sorted(rows, key=lambda r: (r[0], r[2]))):
        notes[i] = (f"n{i + 1}-1" if repeat_ids else f"n{i + 1}", p, on, du, st, st, False,
                    on // 4 * 4, 4.0, 4, 4, 0, 1, tempo, 64 if on < n_beats / 2 else 96)
    return Score(notes=notes, title="synthetic", format="test")


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return ModelConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_config) -> str:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, CVRNN(tiny_config))
    return str(path)


@pytest.fixture
def score() -> Score:
    return make_score()


torch.set_num_threads(1)  # tests share two cores with other processes: no thread oversubscription
