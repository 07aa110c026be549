"""Tiny models and synthetic scores for the ml tests (no data files, no trained checkpoint)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.data import Piece, collate, head_scope_mask, window_arrays
from ml.model import CVRNN, ModelConfig, save_checkpoint
from ml.train import to_torch
from render.features import FEATURE_CLASSES, beat_context, beat_index, piano_roll, roll_notes, score_features
from render.score import NOTE_DTYPE, Score

# Every score feature needs an embedding (ScoreEncoder reads them all); the beat context keeps the
# shipped dilations (1..32: +-63 beats) so the receptive-field tests test the real layout.
TINY = dict(cnn_channels=(4, 4, 4, 4), cnn_proj=4, mlp_hidden=32, mlp_out=16, score_gru=8,
            score_gru_layers=2, dense_units=16, x_emb=4, state_in=8, state_dim=8, state_layers=2,
            feature_emb={k: (4 if k in ("pitch", "ioi_96", "duration_96", "bar_pos_12") else 2)
                         for k in FEATURE_CLASSES},
            ctx_channels=4, ctx_out=4)


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


def make_piece(n_beats=16, seed=0) -> Piece:
    """A synthetic 'performance' (ml.data.Piece, 6 targets in ENCODED_DTYPE order): louder high
    notes, longer low notes, a slow tempo arc, pedal changes on each chord."""
    score = make_score(n_beats)
    notes = score.notes
    written = np.full(len(notes), 100.0)
    feat, frame = score_features(notes, written)
    rng = np.random.default_rng(seed)
    target = np.stack([
        np.clip(notes["pitch"] - 10 + rng.integers(-3, 4, len(notes)), 1, 127),
        np.clip(np.round(notes["duration_beat"] * 90), 1, 800),
        np.where(notes["staff"] == 1, -2, 3),
        np.round(10 * np.sin(np.floor(notes["onset_beat"]) / 4)),
        (np.floor(notes["onset_beat"]) % 3) * 20,
        (notes["onset_beat"] >= n_beats / 2).astype(int),
    ], axis=1).astype(np.int16)
    spans = roll_notes(notes)
    return Piece(feat=feat, frame=frame, target=target, onset_beat=notes["onset_beat"], spans=spans,
                 meta={"work": "synthetic"}, beat=beat_index(notes["onset_beat"]).astype(np.int32),
                 beat_ctx=beat_context(notes, written), scope=head_scope_mask(notes["onset_beat"]),
                 roll=piano_roll(spans))


def batch_of(pieces, T):
    """A collated torch batch of the first T notes of each piece."""
    items = [window_arrays(p, 0, min(T, p.n)) for p in pieces]
    return to_torch(collate(items, T), "cpu")


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
