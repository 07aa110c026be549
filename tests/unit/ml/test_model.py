"""The CVRNN on a tiny config: shapes, the paper's assumptions, loss, overfitting, checkpoints."""
from __future__ import annotations

import numpy as np
import torch

from ml.data import Piece, StreamBatcher, collate, window_arrays
from ml.model import HEADS, CVRNN, classes_to_targets, elbo_loss, load_model, save_checkpoint, targets_to_classes
from ml.train import to_torch
from render.features import piano_roll, roll_notes, score_features
from tests.unit.ml.conftest import make_score


def make_piece(n_beats=16, seed=0) -> Piece:
    """A synthetic 'performance': louder high notes, longer low notes, a slow tempo drift."""
    score = make_score(n_beats)
    notes = score.notes
    feat, frame = score_features(notes, np.full(len(notes), 100.0))
    rng = np.random.default_rng(seed)
    target = np.stack([
        np.clip(notes["pitch"] - 10 + rng.integers(-3, 4, len(notes)), 1, 127),
        np.clip(np.round(notes["duration_beat"] * 90), 1, 800),
        np.where(notes["staff"] == 1, -2, 3),
        np.round(10 * np.sin(notes["onset_beat"] / 4)),
    ], axis=1).astype(np.int16)
    spans = roll_notes(notes)
    return Piece(feat=feat, frame=frame, target=target, onset_beat=notes["onset_beat"], spans=spans,
                 meta={"work": "synthetic"}, roll=piano_roll(spans))


def batch_of(pieces, T):
    items = [window_arrays(p, 0, min(T, p.n)) for p in pieces]
    return to_torch(collate(items, T), "cpu")


def test_forward_shapes(tiny_config):
    m = CVRNN(tiny_config)
    b = batch_of([make_piece(), make_piece(8, seed=1)], 40)
    state = m.init_state(2)
    logits, (mq, lq, mp, lp), (h, hs) = m(b["feat"], b["roll"], b["pos"], b["x"], b["mask"], state, truncate=30)
    assert logits.shape == (2, 40, sum(HEADS.values()))
    assert mq.shape == lq.shape == mp.shape == lp.shape == (2, 40, tiny_config.z_dim)
    assert h.shape == (tiny_config.state_layers, 2, tiny_config.state_dim)
    assert hs.shape == (tiny_config.score_gru_layers, 2, tiny_config.score_gru)


def test_padded_steps_leave_the_state_alone(tiny_config):
    torch.manual_seed(0)
    m = CVRNN(tiny_config).eval()
    short = make_piece(4)  # 16 notes, padded to 40
    b = batch_of([short], 40)
    torch.manual_seed(1)
    _, _, (h_pad, _) = m(b["feat"], b["roll"], b["pos"], b["x"], b["mask"], m.init_state(1))
    b2 = batch_of([short], short.n)
    torch.manual_seed(1)
    _, _, (h_exact, _) = m(b2["feat"], b2["roll"], b2["pos"], b2["x"], b2["mask"], m.init_state(1))
    # The posterior sample differs in the RNG stream only after the last valid note.
    assert torch.allclose(h_pad, h_exact, atol=1e-5)


def test_generation_sees_h_only_through_z(tiny_config):
    """Paper 3.3.1: x_n depends on h only via z_n, and the prior does not see c_n."""
    m = CVRNN(tiny_config).eval()
    assert m.gen[0].in_features == tiny_config.c_dim + tiny_config.dense_units  # [c, psi(z)]
    assert m.prior.layers[0].in_features == tiny_config.state_dim               # h only
    assert m.post.layers[0].in_features == tiny_config.state_dim + tiny_config.dense_units  # [h, phi(x)]


def test_class_mapping_round_trip():
    t = torch.tensor([[1, 1, -50, -50], [127, 800, 49, 49], [64, 120, 0, -3]])
    c = targets_to_classes(t)
    assert (c >= 0).all() and (c[:, 1] < HEADS["duration"]).all()
    assert torch.equal(classes_to_targets(c), t)


def test_kl_matches_closed_form():
    mq, lq = torch.tensor([[[0.5, -1.0]]]), torch.tensor([[[0.2, -0.3]]])
    mp, lp = torch.tensor([[[0.0, 0.5]]]), torch.tensor([[[0.0, 0.1]]])
    logits = torch.zeros(1, 1, sum(HEADS.values()))
    x = torch.zeros(1, 1, 4, dtype=torch.long)
    _, stats = elbo_loss(logits, x, torch.ones(1, 1, dtype=torch.bool), (mq, lq, mp, lp))
    q = torch.distributions.Normal(mq, (0.5 * lq).exp())
    p = torch.distributions.Normal(mp, (0.5 * lp).exp())
    expected = torch.distributions.kl_divergence(q, p).sum().item()
    assert abs(stats["kl"] - expected) < 1e-5
    uniform_nll = sum(np.log(k) for k in HEADS.values())
    assert abs(stats["nll"] - uniform_nll) < 1e-4


def test_loss_falls_and_a_short_piece_is_overfit(tiny_config):
    torch.manual_seed(0)
    m = CVRNN(tiny_config)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    b = batch_of([make_piece(8)], 32)
    losses = []
    for step in range(60):
        logits, qp, _ = m(b["feat"], b["roll"], b["pos"], b["x"], b["mask"], m.init_state(1), truncate=30)
        loss, stats = elbo_loss(logits, b["x"], b["mask"], qp, kl_weight=min(1.0, step / 30))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 5.0)
        opt.step()
        losses.append(stats["nll"])
    assert losses[-1] < 0.5 * losses[0], (losses[0], losses[-1])


def test_checkpoint_round_trip(tmp_path, tiny_config):
    torch.manual_seed(1)
    m = CVRNN(tiny_config).eval()
    path = tmp_path / "m.pt"
    save_checkpoint(path, m, note="x")
    m2, ck = load_model(path)
    assert ck["note"] == "x" and m2.cfg == m.cfg
    b = batch_of([make_piece()], 20)
    c1, _ = m.score(b["feat"], b["roll"], b["pos"])
    c2, _ = m2.score(b["feat"], b["roll"], b["pos"])
    assert torch.equal(c1, c2)


def test_stream_batcher_covers_every_note_once():
    pieces = [make_piece(n, seed=n) for n in (3, 5, 9, 16)]
    batcher = StreamBatcher(pieces, batch=2, window=10, transpose=0, ou_sigma_bpm=0)
    seen = 0
    plan = batcher.plan_epoch(0)
    for batch, reset in batcher.batches(plan):
        seen += int(batch["mask"].sum())
    assert seen == sum(p.n for p in pieces)
