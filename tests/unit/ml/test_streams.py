"""Several renders decoded together (ml.streams via Renderer.step): each render's notes are those
it gets alone, whatever its neighbours' scores, modes, takes, chunk sizes and lengths."""
from __future__ import annotations

import numpy as np
import pytest

from ml.inference import Renderer
from tests.unit.ml.conftest import make_score

# Renders of different lengths, modes, takes and chunk sizes (one a reference's primed state).
SETTINGS = [
    dict(score=40, seed=1),
    dict(score=16, seed=2, variations=3, mode="perturb", delta=[1, -1, 0.5, 0, 2], chunk_notes=24),
    dict(score=28, seed=3, mode="fixed", z=[0.3, 0, 0, -1, 0], expressiveness=0.5, chunk_notes=7),
    dict(score=9, seed=4, variations=2, temperature=0.0, pedal="none"),
    dict(score=70, seed=5, chunk_notes=4, max_chunk_notes=32),
]


@pytest.fixture(scope="module", params=["tiny", "full-size"])
def renderer(request, tiny_checkpoint, tmp_path_factory):
    """The tiny test model, and the shipped architecture with random weights (its matrix shapes
    are the ones BLAS may round differently by row count)."""
    if request.param == "tiny":
        return Renderer.load(tiny_checkpoint)
    import torch

    from ml.model import CVRNN, ModelConfig, save_checkpoint

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("full") / "full.pt"
    save_checkpoint(path, CVRNN(ModelConfig()))
    return Renderer.load(path)


def _start(renderer, s):
    kw = {k: v for k, v in s.items() if k != "score"}
    return renderer.start(make_score(s["score"]), **kw)


def _alone(renderer, s):
    kw = {k: v for k, v in s.items() if k != "score"}
    return list(renderer.render(make_score(s["score"]), **kw))


def _together(renderer, settings, join_at=None):
    """Step all streams in shared passes; stream k joins at pass join_at[k] (default 0)."""
    join_at = join_at or [0] * len(settings)
    streams, chunks = [None] * len(settings), [[] for _ in settings]
    passes = 0
    while passes == 0 or any(s is not None and not s.done for s in streams) or passes <= max(join_at):
        for k, s in enumerate(settings):
            if join_at[k] == passes:
                streams[k] = _start(renderer, s)
        live = [s for s in streams if s is not None and not s.done]
        for s, c in zip(live, renderer.step(live)):
            if c is not None:
                chunks[streams.index(s)].append(c)
        passes += 1
    return chunks


@pytest.mark.parametrize("join_at", [None, [0, 3, 1, 5, 2]], ids=["together", "joining-later"])
def test_each_render_in_a_shared_pass_gets_the_notes_it_gets_alone(renderer, join_at):
    together = _together(renderer, SETTINGS, join_at)
    for s, got in zip(SETTINGS, together):
        alone = _alone(renderer, s)
        assert len(got) == len(alone), s
        for a, b in zip(got, alone):
            assert a.dtype == b.dtype and np.array_equal(a, b), s
        n_notes = len(make_score(s["score"]).notes)
        assert len(np.concatenate(got)) == n_notes * s.get("variations", 1)


def test_the_torch_decoder_steps_several_renders_too(tiny_checkpoint):
    """Without the numpy decoder (a GPU worker) each render is its own pass: still its notes."""
    r = Renderer.load(tiny_checkpoint)
    r.fast = None
    together = _together(r, SETTINGS[:2])
    for s, got in zip(SETTINGS[:2], together):
        alone = _alone(r, s)
        assert all(np.array_equal(a, b) for a, b in zip(got, alone)) and len(got) == len(alone)


def test_a_finished_stream_gives_none_and_others_go_on(renderer):
    short = _start(renderer, dict(score=2, seed=1))                     # 8 notes: one chunk
    long = _start(renderer, dict(score=12, seed=1, chunk_notes=16))     # 48 notes: three
    first = renderer.step([short, long])
    assert all(c is not None for c in first)
    second = renderer.step([short, long])
    assert second[0] is None and short.done and second[1] is not None and not long.done


def test_chunks_grow_to_their_maximum_and_the_notes_do_not_change(renderer):
    score = make_score(40)  # 160 notes
    grown = list(renderer.render(score, seed=3, chunk_notes=4, max_chunk_notes=32))
    fixed = list(renderer.render(score, seed=3, chunk_notes=16))
    assert [len(c) for c in grown] == [4, 8, 16, 32, 32, 32, 32, 4]
    a, b = np.concatenate(grown), np.concatenate(fixed)
    for k in a.dtype.names:  # the seconds are summed per chunk: equal up to rounding
        if k == "onset_sec":
            np.testing.assert_allclose(a[k], b[k], rtol=0, atol=1e-9)
        else:
            assert np.array_equal(a[k], b[k]), k
    with pytest.raises(ValueError, match="max_chunk_notes"):
        renderer.start(score, chunk_notes=8, max_chunk_notes=4)
