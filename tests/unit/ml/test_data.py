"""ml.data for model v2: head scopes, beat-context crops, windows and batches, our split."""
from __future__ import annotations

import json

import numpy as np
import pytest

from ml.data import (CTX_MARGIN_BEATS, EXTRA_VAL_WORKS, N_TARGETS, beat_crop, collate, head_scope_mask,
                     load_split, split_files, window_arrays)
from ml.model import HEAD_SCOPE, HEADS
from render.features import BEAT_FEATURES, FEATURE_NAMES
from tests.unit.ml.conftest import make_piece

H = list(HEADS)


def test_head_scope_mask_tempo_once_per_beat_pedal_once_per_chord():
    #          beat 0 chord  .5   beat 1 chord  1.25  (no beat 2)  3   3.5 chord
    onset = np.array([0.0, 0.0, 0.5, 1.0, 1.0, 1.25, 3.0, 3.5, 3.5])
    m = head_scope_mask(onset)
    assert m.shape == (len(onset), len(HEADS)) and m.dtype == bool
    for h in ("velocity", "duration", "deviation"):
        assert m[:, H.index(h)].all()
    assert np.flatnonzero(m[:, H.index("tempo")]).tolist() == [0, 3, 6]
    for h in ("sustain", "soft"):
        assert np.flatnonzero(m[:, H.index(h)]).tolist() == [0, 2, 3, 5, 6, 7]
    assert set(HEAD_SCOPE) == set(HEADS)


def test_head_scope_mask_with_a_pickup_and_a_single_note():
    m = head_scope_mask(np.array([-0.5, 0.0, 0.25, 0.25, 2.0]))
    assert np.flatnonzero(m[:, H.index("tempo")]).tolist() == [0, 1, 4]
    assert np.flatnonzero(m[:, H.index("sustain")]).tolist() == [0, 1, 2, 4]
    assert head_scope_mask(np.array([7.0])).all()


def test_beat_crop_positions_padding_and_transposition():
    nb = 10
    ctx = np.zeros((nb, BEAT_FEATURES), np.float32)
    ctx[:, 0] = 0.5            # beats with notes...
    ctx[7, 0] = 0.0            # ... and one without (a rest)
    ctx[:, 1:4] = 0.1
    ctx[:, 17] = np.arange(nb)
    beats = np.array([2, 2, 3, 5])
    out, pos = beat_crop(ctx, beats)
    L = int(beats[-1]) - int(beats[0]) + 2 * CTX_MARGIN_BEATS + 1
    assert out.shape == (BEAT_FEATURES, L) and out.dtype == np.float32
    assert pos.tolist() == [64, 64, 65, 67]
    np.testing.assert_array_equal(out[:, pos], ctx[beats].T)
    b0 = 2 - CTX_MARGIN_BEATS  # the crop's first row is beat -62: zeros before the piece
    np.testing.assert_array_equal(out[:, -b0:-b0 + nb], ctx.T)
    assert not out[:, :-b0].any() and not out[:, -b0 + nb:].any()
    up, pos2 = beat_crop(ctx, beats, transpose=3)
    assert pos2.tolist() == pos.tolist()
    has = np.r_[np.zeros(-b0, bool), ctx[:, 0] > 0, np.zeros(L + b0 - nb, bool)]
    np.testing.assert_allclose(up[1:4][:, has], out[1:4][:, has] + 3 / 64.0)
    np.testing.assert_array_equal(up[1:4][:, ~has], out[1:4][:, ~has])  # rests and padding stay
    np.testing.assert_array_equal(np.delete(up, [1, 2, 3], 0), np.delete(out, [1, 2, 3], 0))
    # a window far into a long piece: no padding on the left
    long = np.ones((300, BEAT_FEATURES), np.float32)
    crop, p = beat_crop(long, np.array([150, 151]))
    assert p.tolist() == [64, 65] and crop.shape[1] == 2 + 2 * CTX_MARGIN_BEATS and crop.all()


def test_window_arrays_and_collate():
    piece = make_piece(16)
    items = [window_arrays(piece, 5, 25), window_arrays(piece, 0, 10, transpose=-2), None]
    feat, roll, pos, target, beats, beat_pos, scope = items[0]
    assert feat.shape == (20, len(FEATURE_NAMES)) and target.shape == (20, N_TARGETS) == (20, len(HEADS))
    assert beats.shape[0] == BEAT_FEATURES and scope.shape == (20, len(HEADS))
    np.testing.assert_array_equal(scope, piece.scope[5:25])
    np.testing.assert_array_equal(beats[:, beat_pos], piece.beat_ctx[piece.beat[5:25]].T)
    b = collate(items, 24)
    assert b["target"].shape == (3, 24, N_TARGETS)
    assert b["beats"].shape[:2] == (3, BEAT_FEATURES) and b["beats"].shape[2] % 32 == 0
    assert b["beat_pos"].shape == (3, 24) and b["scope"].shape == (3, 24, len(HEADS))
    assert b["mask"].sum(1).tolist() == [20, 10, 0]
    assert not b["scope"][~b["mask"]].any()
    np.testing.assert_array_equal(b["beats"][0, :, :beats.shape[1]], beats)
    assert (b["target"][~b["mask"]][:, 1] == 1).all()  # padded duration is a valid class


def save_piece(path, piece, work: str, **meta):
    np.savez_compressed(path, feat=piece.feat, frame=piece.frame, target=piece.target, onset_beat=piece.onset_beat,
                        spans=piece.spans, beat=piece.beat, beat_ctx=piece.beat_ctx.astype(np.float16),
                        meta=json.dumps({"work": work, **meta}))


@pytest.fixture
def cache(tmp_path):
    """A cache folder in render.dataset's layout: train has an EXTRA_VAL_WORKS work."""
    piece = make_piece(6)
    extra = EXTRA_VAL_WORKS[0]
    layout = {"train": [("a1", "Mozart/Other"), ("b1", extra), ("b2", extra), ("c1", "Chopin/Train")],
              "val": [("v1", "Bach/Val")], "test": [("t1", "Liszt/Test")]}
    for split, files in layout.items():
        (tmp_path / split).mkdir()
        for name, work in files:
            save_piece(tmp_path / split / f"{name}.npz", piece, work)
    save_piece(tmp_path / "train" / "d1.npz.tmp.npz", piece, "Chopin/Train")  # being written
    return tmp_path


def test_split_files_move_the_extra_val_works(cache):
    names = {s: [f"{f.parent.name}/{f.name}" for f in split_files(cache, s)] for s in ("train", "val", "test")}
    assert names["train"] == ["train/a1.npz", "train/c1.npz"]
    assert names["val"] == ["val/v1.npz", "train/b1.npz", "train/b2.npz"]
    assert names["test"] == ["test/t1.npz"]
    assert not set(names["train"]) & set(names["val"])


def test_load_split_and_load_piece(cache):
    val = load_split(cache, "val")
    assert [p.meta["work"] for p in val] == ["Bach/Val", EXTRA_VAL_WORKS[0], EXTRA_VAL_WORKS[0]]
    assert all(p.meta["work"] not in EXTRA_VAL_WORKS for p in load_split(cache, "train"))
    p, ref = val[0], make_piece(6)
    assert p.beat_ctx.dtype == np.float32 and p.beat_ctx.shape == ref.beat_ctx.shape
    np.testing.assert_array_equal(p.scope, head_scope_mask(ref.onset_beat))
    np.testing.assert_array_equal(p.beat, ref.beat)
    assert p.roll is not None and p.target.shape == (ref.n, N_TARGETS)


def test_tempo_noise_keeps_one_tempo_class_per_beat():
    """The tempo target is one class per beat (render.encoding); the training noise on it must keep
    that, or the teacher-forced x_n differs from what decoding feeds back (the previous class)."""
    from ml.data import StreamBatcher
    pieces = [make_piece(40, seed=k) for k in range(2)]
    batcher = StreamBatcher(pieces, batch=2, window=60, transpose=0, ou_sigma_bpm=1.5)
    k = list(HEADS).index("tempo")
    for batch, _ in batcher.batches(batcher.plan_epoch(0)):
        t, off = batch["target"][..., 3], ~batch["scope"][:, 1:, k] & batch["mask"][:, 1:]
        assert (t[:, 1:][off] == t[:, :-1][off]).all()
