"""The non-causal beat context (model v2, DESIGN 4.1): c_n sees the score ahead, as far as the
receptive field (+-63 beats) and no further; it stays a function of the score alone."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.inference import Renderer, written_tempi
from ml.model import CVRNN, BeatContext
from render.features import BEAT_FEATURES
from render.score import Score
from tests.unit.ml.conftest import make_score


@pytest.fixture(scope="module")
def renderer(tiny_config):
    torch.manual_seed(0)
    return Renderer(CVRNN(tiny_config).eval(), torch.device("cpu"))


def features(renderer, score, block=4096):
    return torch.cat([c for _, c in renderer.score_blocks(score, written_tempi(score, None), block=block)])


def with_pitch(score: Score, beat: float, delta: int) -> Score:
    """The score with the melody note at ``beat`` moved by ``delta`` semitones (order kept)."""
    notes = score.notes.copy()
    i = int(np.flatnonzero((notes["onset_beat"] == beat) & (notes["staff"] == 1))[0])
    notes["pitch"][i] += delta
    return Score(notes=notes, title="changed", format="test")


def test_receptive_field_is_63_beats_each_side(tiny_config):
    torch.manual_seed(0)
    ctx = BeatContext(tiny_config)
    assert ctx.receptive == 63
    beats = torch.randn(1, BEAT_FEATURES, 200, requires_grad=True)
    out = ctx(beats)
    assert out.shape == (1, tiny_config.ctx_out, 200)
    out[0, :, 100].sum().backward()
    seen = beats.grad[0].abs().sum(0)  # (200,): which beats reach beat 100
    assert (seen[100 - 63:100 + 64] > 0).all()
    assert (seen[:100 - 63] == 0).all() and (seen[100 + 64:] == 0).all()


def test_beat_context_gather_reads_each_notes_beat():
    ctx = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)
    pos = torch.tensor([[0, 0, 4], [2, 3, 3]])
    out = BeatContext.gather(ctx, pos)
    assert out.shape == (2, 3, 3)
    assert torch.equal(out[1, 0], ctx[1, :, 2]) and torch.equal(out[0, 2], ctx[0, :, 4])


def test_a_change_40_beats_ahead_reaches_an_early_note_and_70_beats_does_not(renderer):
    score = make_score(100)
    base = features(renderer, score)
    near = features(renderer, with_pitch(score, 40.0, 5))
    far = features(renderer, with_pitch(score, 70.0, 5))
    first_beat = score.notes["onset_beat"] < 1.0
    # 40 beats ahead: outside the CNN window (+-7 beats) and behind the causal score GRU, so only
    # the non-causal context can carry it back to the first beat
    assert (base[first_beat] - near[first_beat]).abs().max() > 1e-5   # (the 70-beat change: exactly 0)
    # 70 beats ahead: beyond the receptive field, nothing moves at the first beat
    torch.testing.assert_close(base[first_beat], far[first_beat], rtol=0, atol=1e-6)
    # ... while notes within 63 beats of the change do see it
    around = (score.notes["onset_beat"] >= 60.0) & (score.notes["onset_beat"] < 61.0)
    assert (base[around] - far[around]).abs().max() > 1e-4


def test_changes_behind_reach_back_only_through_the_context(renderer):
    """The context is symmetric: a change 40 beats back reaches a note's context part of c_n, one
    70 beats back does not (the causal score GRU may still carry it)."""
    score = make_score(100)
    base = features(renderer, score)
    far = features(renderer, with_pitch(score, 5.0, 5))
    later = score.notes["onset_beat"] >= 75.0
    cfg = renderer.cfg
    ctx = slice(cfg.mlp_out + cfg.score_gru, cfg.mlp_out + cfg.score_gru + cfg.ctx_out)
    torch.testing.assert_close(base[later][:, ctx], far[later][:, ctx], rtol=0, atol=1e-6)
    near = (score.notes["onset_beat"] >= 45.0) & (score.notes["onset_beat"] < 46.0)
    assert (base[near][:, ctx] - far[near][:, ctx]).abs().max() > 1e-5  # (random weights: a small effect)


def test_score_blocks_equal_one_pass(renderer):
    """The context is computed once over the whole score: blocks of 16 notes give the features of
    one block of the whole piece."""
    score = make_score(40)
    one = features(renderer, score, block=4096)
    blocks = features(renderer, score, block=16)
    assert one.shape == (score.n_notes, renderer.cfg.c_dim)
    torch.testing.assert_close(one, blocks, rtol=1e-4, atol=1e-5)
    # the first block short (the first chunk waits for it), each next one 4 times longer, capped
    sizes = [len(c) for _, c in renderer.score_blocks(score, written_tempi(score, None), block=4, max_block=32)]
    assert sizes[:4] == [4, 16, 32, 32] and sum(sizes) == score.n_notes
    capped = torch.cat([c for _, c in renderer.score_blocks(score, written_tempi(score, None), block=4, max_block=32)])
    torch.testing.assert_close(one, capped, rtol=1e-4, atol=1e-5)

