"""The CVRNN on a tiny config: shapes, the paper's assumptions, loss, overfitting, checkpoints."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ml.data import StreamBatcher
from ml.inference import Renderer
from ml.model import (EXPECTED, HEADS, ORDINAL_HEADS, CVRNN, classes_to_targets, elbo_loss, free_loss, load_model,
                      point_loss, save_checkpoint, targets_to_classes)
from render.features import FEATURE_NAMES
from tests.unit.ml.conftest import batch_of, make_piece


def fwd(m, b, state=None, **kw):
    state = state if state is not None else m.init_state(b["x"].shape[0])
    return m(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"], b["x"], b["mask"], state, **kw)


def test_forward_shapes(tiny_config):
    m = CVRNN(tiny_config)
    b = batch_of([make_piece(), make_piece(8, seed=1)], 40)
    assert b["x"].shape == (2, 40, len(HEADS)) and b["scope"].shape == (2, 40, len(HEADS))
    logits, (mq, lq, mp, lp), (h, hs) = fwd(m, b, truncate=30)
    assert logits.shape == (2, 40, sum(HEADS.values()))
    assert mq.shape == lq.shape == mp.shape == lp.shape == (2, 40, tiny_config.z_dim)
    assert h.shape == (tiny_config.state_layers, 2, tiny_config.state_dim)
    assert hs.shape == (tiny_config.score_gru_layers, 2, tiny_config.score_gru)
    c, _ = m.score(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"])
    assert c.shape == (2, 40, tiny_config.c_dim)
    assert tiny_config.c_dim == (tiny_config.mlp_out + tiny_config.score_gru + tiny_config.ctx_out
                                 + sum(tiny_config.feature_emb.values()))


def test_padded_steps_leave_the_state_alone(tiny_config):
    torch.manual_seed(0)
    m = CVRNN(tiny_config).eval()
    short = make_piece(4)  # 16 notes, padded to 40
    torch.manual_seed(1)
    _, _, (h_pad, _) = fwd(m, batch_of([short], 40))
    torch.manual_seed(1)
    _, _, (h_exact, _) = fwd(m, batch_of([short], short.n))
    # The posterior sample differs in the RNG stream only after the last valid note.
    assert torch.allclose(h_pad, h_exact, atol=1e-5)


def test_network_inputs_keep_the_papers_assumptions(tiny_config):
    """Paper 3.3.1: generation reads [c_n, psi(z_n)], the prior h only, the posterior [h, phi(x)]."""
    m = CVRNN(tiny_config).eval()
    assert m.gen_in.in_features == tiny_config.c_dim + tiny_config.dense_units
    assert m.prior.layers[0].in_features == tiny_config.state_dim
    assert m.post.layers[0].in_features == tiny_config.state_dim + tiny_config.dense_units


def _change_note_feature(b, k):
    b2 = {key: v.clone() for key, v in b.items()}
    col = FEATURE_NAMES.index("velocity_10")
    b2["feat"][:, k, col] = (b2["feat"][:, k, col] + 5) % 14
    return b2


def _change_beat_ahead(b, k):
    b2 = {key: v.clone() for key, v in b.items()}
    row = int(b["beat_pos"][0, 0]) + 40  # 40 beats after the first note: inside the window's context
    b2["beats"][:, :, row] += 1.0
    return b2


@pytest.mark.parametrize("change", [_change_note_feature, _change_beat_ahead], ids=["note_feature", "beat_ahead"])
def test_prior_and_inference_do_not_see_c_n(tiny_config, change):
    """Change c (a note's own feature, or a beat summary 40 beats ahead through the non-causal
    context) with the same x and random draws: the prior at a note and the posterior there are
    unchanged given h_{n-1}; the generation at that note changes, and the prior of the next note
    changes through h_n (so the check is not blind)."""
    torch.manual_seed(0)
    m = CVRNN(tiny_config).eval()
    b = batch_of([make_piece(12)], 30)
    k = 0 if change is _change_beat_ahead else 10
    b2 = change(b, k)
    with torch.no_grad():
        c1, _ = m.score(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"])
        c2, _ = m.score(b2["feat"], b2["roll"], b2["pos"], b2["beats"], b2["beat_pos"])
        assert not torch.allclose(c1[0, k], c2[0, k], atol=1e-5)  # c_k does change
        torch.manual_seed(3)
        l1, (mq1, lq1, mp1, lp1), _ = fwd(m, b)
        torch.manual_seed(3)
        l2, (mq2, lq2, mp2, lp2), _ = fwd(m, b2)
    for a, a2 in ((mp1, mp2), (lp1, lp2), (mq1, mq2), (lq1, lq2)):
        torch.testing.assert_close(a[:, :k + 1], a2[:, :k + 1], rtol=0, atol=1e-6)
    assert not torch.allclose(l1[:, k], l2[:, k], atol=1e-5)
    assert float((mp1[:, k + 1] - mp2[:, k + 1]).abs().max()) > 1e-7  # (random weights: a small effect)


def test_generation_sees_h_only_through_z(tiny_config):
    """With z fixed, the sampled x (same draws) are the same from any state h: x_n depends on
    h_{n-1} only through z_n."""
    torch.manual_seed(0)
    m = CVRNN(tiny_config).eval()
    r = Renderer(m, torch.device("cpu"))
    cfg = tiny_config
    c = torch.randn(25, cfg.c_dim)
    z = torch.randn(25, 2, cfg.z_dim)
    h1 = torch.zeros(cfg.state_layers, 2, cfg.state_dim)
    h2 = 3 * torch.randn(cfg.state_layers, 2, cfg.state_dim)
    x1, _, hn1 = r.decode_steps(c, h1, torch.Generator().manual_seed(1), mode="fixed", z_fixed=z)
    x2, _, hn2 = r.decode_steps(c, h2, torch.Generator().manual_seed(1), mode="fixed", z_fixed=z)
    assert torch.equal(x1, x2)
    assert not torch.allclose(hn1, hn2)
    # and the prior does not see c: the first z from the prior is the same for any features
    _, za, _ = r.decode_steps(c, h2, torch.Generator().manual_seed(2), mode="prior")
    _, zb, _ = r.decode_steps(-c, h2, torch.Generator().manual_seed(2), mode="prior")
    assert torch.equal(za[0], zb[0]) and not torch.equal(za[1], zb[1])


def test_class_mapping_round_trip():
    t = torch.tensor([[1, 1, -50, -50, 0, 0], [127, 800, 49, 49, 80, 1], [64, 120, 0, -3, 40, 0]])
    c = targets_to_classes(t)
    assert (c >= 0).all() and (c < torch.tensor(list(HEADS.values()))).all()
    assert torch.equal(classes_to_targets(c), t)
    # out-of-range values clip into the classes
    clipped = targets_to_classes(torch.tensor([[200, 900, 70, -70, 99, 5]]))
    assert clipped.tolist() == [[127, 799, 99, 0, 80, 1]]


def test_kl_matches_closed_form():
    mq, lq = torch.tensor([[[0.5, -1.0]]]), torch.tensor([[[0.2, -0.3]]])
    mp, lp = torch.tensor([[[0.0, 0.5]]]), torch.tensor([[[0.0, 0.1]]])
    logits = torch.zeros(1, 1, sum(HEADS.values()))
    x = torch.zeros(1, 1, len(HEADS), dtype=torch.long)
    _, stats = elbo_loss(logits, x, torch.ones(1, 1, dtype=torch.bool), (mq, lq, mp, lp))
    q = torch.distributions.Normal(mq, (0.5 * lq).exp())
    p = torch.distributions.Normal(mp, (0.5 * lp).exp())
    expected = torch.distributions.kl_divergence(q, p).sum().item()
    assert abs(stats["kl"] - expected) < 1e-5
    uniform_nll = sum(np.log(k) for k in HEADS.values())
    assert abs(stats["nll"] - uniform_nll) < 1e-4


def test_below_the_free_bits_floor_the_prior_still_learns_and_nothing_else_changes():
    torch.manual_seed(0)
    B, T, Z = 3, 4, 5
    logits = torch.zeros(B, T, sum(HEADS.values()))
    x = torch.zeros(B, T, len(HEADS), dtype=torch.long)
    mask = torch.ones(B, T, dtype=torch.bool)

    def qp(scale=0.1):
        return [(scale * torch.randn(B, T, Z, generator=torch.Generator().manual_seed(i))).requires_grad_()
                for i in range(4)]

    plain, fixed = qp(), qp()
    loss_p, s_p = elbo_loss(logits, x, mask, tuple(plain), free_bits=1.0)
    loss_f, s_f = elbo_loss(logits, x, mask, tuple(fixed), free_bits=1.0, prior_below_floor=True)
    assert s_p["kl"] < 0.5 * Z                              # every dimension below the 1-nat floor
    assert s_f["kl"] == pytest.approx(s_p["kl"], rel=1e-6)
    assert float(loss_f) == pytest.approx(float(loss_p), rel=1e-6)  # the loss's value is the floor's
    loss_p.backward()
    loss_f.backward()
    mq, lq, mp, lp = plain
    # the plain floor: no gradient at all, to the prior or to the posterior
    assert float(mp.grad.abs().sum()) == 0.0 and float(mq.grad.abs().sum()) == 0.0
    mq, lq, mp, lp = fixed
    # now the prior still learns to match the posterior, and the posterior is still free
    assert float(mp.grad.abs().sum()) > 0 and float(lp.grad.abs().sum()) > 0
    assert float(mq.grad.abs().sum()) == 0.0 and float(lq.grad.abs().sum()) == 0.0
    # above the floor both get exactly the plain KL's gradients
    a, b = qp(2.0), qp(2.0)
    elbo_loss(logits, x, mask, tuple(a), free_bits=0.01)[0].backward()
    elbo_loss(logits, x, mask, tuple(b), free_bits=0.01, prior_below_floor=True)[0].backward()
    for g, h in zip(a, b):
        assert torch.allclose(g.grad, h.grad, atol=1e-7)


def _random_heads(B, T):
    """Random logits, targets and an all-valid mask (B, T), and a q/p of zeros (KL 0)."""
    torch.manual_seed(0)
    logits = torch.randn(B, T, sum(HEADS.values()))
    x = torch.stack([torch.randint(0, k, (B, T)) for k in HEADS.values()], -1)
    zeros = torch.zeros(B, T, 5)
    return logits, x, torch.ones(B, T, dtype=torch.bool), (zeros, zeros, zeros, zeros)


def test_head_mask_counts_a_head_only_where_set():
    B, T = 2, 7
    logits, x, mask, _ = _random_heads(B, T)
    mask[1, 5:] = False
    zeros = torch.zeros(B, T, 5)
    qp = (zeros, zeros, zeros, zeros)
    head_mask = torch.ones(B, T, len(HEADS), dtype=torch.bool)
    tempo = list(HEADS).index("tempo")
    head_mask[..., tempo] = False
    head_mask[:, ::3, tempo] = True  # notes 0, 3, 6: and note 6 of stream 1 is padding
    _, full = elbo_loss(logits, x, mask, qp)
    _, ones = elbo_loss(logits, x, mask, qp, head_mask=torch.ones_like(head_mask))
    _, part = elbo_loss(logits, x, mask, qp, head_mask=head_mask)
    assert ones == full
    n = int(mask.sum())
    start = sum(list(HEADS.values())[:tempo])
    ce = F.cross_entropy(logits[..., start:start + HEADS["tempo"]].reshape(-1, HEADS["tempo"]),
                         x[..., tempo].reshape(-1), reduction="none").view(B, T)
    expected = float((ce * (mask & head_mask[..., tempo])).sum() / n)
    assert part["nll_tempo"] == pytest.approx(expected, rel=1e-5)
    assert part["nll_tempo"] < full["nll_tempo"]
    for h in HEADS:
        if h != "tempo":
            assert part[f"nll_{h}"] == pytest.approx(full[f"nll_{h}"], rel=1e-6)
    none = head_mask.clone()
    none[..., tempo] = False
    _, off = elbo_loss(logits, x, mask, qp, head_mask=none)
    assert off["nll_tempo"] == 0.0
    assert off["nll"] == pytest.approx(full["nll"] - full["nll_tempo"], rel=1e-5)


def test_loss_falls_and_a_short_piece_is_overfit(tiny_config):
    torch.manual_seed(0)
    m = CVRNN(tiny_config)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    b = batch_of([make_piece(8)], 32)
    losses = []
    for step in range(60):
        logits, qp, _ = fwd(m, b, truncate=30)
        loss, stats = elbo_loss(logits, b["x"], b["mask"], qp, kl_weight=min(1.0, step / 30), head_mask=b["scope"])
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
    assert m2.cfg.ctx_dilations == tiny_config.ctx_dilations
    b = batch_of([make_piece()], 20)
    with torch.no_grad():
        c1, _ = m.score(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"])
        c2, _ = m2.score(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"])
    assert torch.equal(c1, c2)


def test_stream_batcher_covers_every_note_once():
    pieces = [make_piece(n, seed=n) for n in (3, 5, 9, 16)]
    batcher = StreamBatcher(pieces, batch=2, window=10, transpose=0, ou_sigma_bpm=0)
    seen = scoped = 0
    plan = batcher.plan_epoch(0)
    for batch, _reset in batcher.batches(plan):
        assert {"beats", "beat_pos", "scope"} <= set(batch)
        seen += int(batch["mask"].sum())
        scoped += int(batch["scope"][batch["mask"]].sum())
        assert not batch["scope"][~batch["mask"]].any()
        assert (batch["beat_pos"] < batch["beats"].shape[2]).all()
    assert seen == sum(p.n for p in pieces)
    assert scoped == sum(int(p.scope.sum()) for p in pieces)


def test_checkpoint_with_unnamed_generator_layers_loads(tmp_path, tiny_config):
    """Checkpoints written before the generator's layers had names (gen.0 / gen.2 / gen.4) load
    into gen_in / gen_hidden / gen_out with the same weights."""
    from dataclasses import asdict
    torch.manual_seed(3)
    m = CVRNN(tiny_config).eval()
    old = {}
    for k, v in m.state_dict().items():
        for a, b in (("gen_in.", "gen.0."), ("gen_hidden.", "gen.2."), ("gen_out.", "gen.4.")):
            if k.startswith(a):
                k = b + k[len(a):]
        old[k] = v
    assert any(k.startswith("gen.4.") for k in old)
    torch.save({"config": asdict(tiny_config), "model": old}, tmp_path / "old.pt")
    loaded, _ = load_model(tmp_path / "old.pt")
    for k, v in m.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_point_logits_come_from_the_prior_mean_and_the_point_loss_trains_it(tiny_config):
    torch.manual_seed(0)
    model = CVRNN(tiny_config)
    b = batch_of([make_piece(8), make_piece(8, seed=1)], 24)
    state = model.init_state(2)
    logits, (mq, lq, mp, lp), _, point = model(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"],
                                                b["x"], b["mask"], state, point=True)
    c, _ = model.score(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"], state[1])
    expected = model.generate(model.precompute(c)[0], model.psi(mp))
    assert torch.allclose(point, expected, atol=1e-5)
    assert not torch.allclose(point, logits)  # the ELBO's logits come from posterior samples
    nll, stats = point_loss(point, b["x"], b["mask"], b["scope"])
    ref, _ = elbo_loss(point, b["x"], b["mask"], (mq, lq, mq, lq), head_mask=b["scope"])
    assert float(nll) == pytest.approx(float(ref), rel=1e-5)  # the ELBO's NLL part, with KL 0
    assert set(stats) == {f"point_{h}" for h in HEADS}
    nll.backward()
    prior_grad = sum(float(p.grad.abs().sum()) for p in model.prior.parameters() if p.grad is not None)
    assert prior_grad > 0  # the prior's mean is what this term shapes


def test_sample_logits_come_from_a_draw_of_the_prior_and_train_the_generator_on_it(tiny_config):
    torch.manual_seed(0)
    model = CVRNN(tiny_config)
    b = batch_of([make_piece(8), make_piece(8, seed=1)], 24)
    state = model.init_state(2)
    args = (b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"], b["x"], b["mask"], state)
    torch.manual_seed(3)
    logits, (mq, lq, mp, lp), _, point, sample = model(*args, point=True, sample=True)
    c, _ = model.score(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"], state[1])
    c_gen = model.precompute(c)[0]
    assert torch.allclose(point, model.generate(c_gen, model.psi(mp)), atol=1e-5)
    assert not torch.allclose(sample, point)  # a draw, not the mean
    nll, stats = point_loss(sample, b["x"], b["mask"], b["scope"], prefix="sample")
    assert set(stats) == {f"sample_{h}" for h in HEADS}
    nll.backward()
    gen_grad = float(model.gen_out.weight.grad.abs().sum())
    spread_grad = float(model.prior_out.bias.grad[tiny_config.z_dim:].abs().sum())
    assert gen_grad > 0 and spread_grad > 0  # the generator and the prior's spread both learn from it
    # the draw is mu_p + eps * sigma_p: at a vanishing prior spread it is the point path
    with torch.no_grad():
        model.prior_out.bias[tiny_config.z_dim:] = -60.0
        model.prior_out.weight[tiny_config.z_dim:] = 0.0
        _, _, _, point0, sample0 = model(*args, point=True, sample=True)
    assert torch.allclose(sample0, point0, atol=1e-5)


def test_free_logits_are_the_point_estimate_rendering_its_own_notes(tiny_config):
    torch.manual_seed(0)
    model = CVRNN(tiny_config)
    b = batch_of([make_piece(12), make_piece(12, seed=1)], 24)
    state = model.init_state(2)
    state = (torch.randn_like(state[0]), state[1])  # a window that starts mid-piece
    *_, point, free = fwd(model, b, state, point=True, free=True)
    # the renderer's point decoding, step by step from the same state
    c, _ = model.score(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"], state[1])
    c_gen, c_state = model.precompute(c)
    temps = np.array([EXPECTED if k in ORDINAL_HEADS else 0.0 for k in HEADS], np.float32)
    h, rendered = state[0], []
    with torch.no_grad():
        for n in range(c.shape[1]):
            z = model.draw_z(h[-1], "prior_mean")
            rendered.append(model.generate(c_gen[:, n], model.psi(z)))
            _, h_new = model.step(h, c_gen[:, n], c_state[:, n], z, torch.rand(2, len(HEADS)), temps)
            h = torch.where(b["mask"][:, n].view(1, -1, 1), h_new, h)
    assert torch.allclose(free, torch.stack(rendered, 1), atol=1e-4)
    assert torch.allclose(free[:, 0], point[:, 0], atol=1e-5)   # the first note: the same state
    b2 = dict(b, x=torch.randint_like(b["x"], 0, 2))             # another human's notes
    *_, point2, free2 = fwd(model, b2, state, point=True, free=True)
    assert float((point2 - point).abs().max()) > 1e-6             # move the teacher-forced point path
    assert torch.equal(free2, free)                                # and leave the free one alone
    nll, stats = free_loss(free, b["x"], b["mask"], b["scope"])
    assert set(stats) == {f"free_{h}" for h in HEADS}
    nll.backward()
    assert float(model.prior_out.weight.grad[:tiny_config.z_dim].abs().sum()) > 0  # it shapes the prior's mean


def test_a_carried_free_state_runs_the_free_path_on_from_its_own_end_not_the_humans(tiny_config):
    torch.manual_seed(0)
    model = CVRNN(tiny_config)
    b = batch_of([make_piece(12), make_piece(12, seed=1)], 24)
    h_tf, hs = model.init_state(2)
    h_tf, h_free = torch.randn_like(h_tf), torch.randn_like(h_tf)
    with torch.no_grad():
        torch.manual_seed(1)  # the teacher-forced path draws z from the posterior
        *_, state2, free2 = fwd(model, b, (h_tf, hs), free=True)
        torch.manual_seed(1)
        *_, state3, free3 = fwd(model, b, (h_tf, hs, h_free), free=True)
        *_, free_from = fwd(model, b, (h_free, hs), free=True)
        c, _ = model.score(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"], hs)
        _, h_end = model.free_run(c, h_free, b["mask"])
    assert len(state2) == 2 and len(state3) == 3
    assert torch.equal(free3, free_from) and not torch.allclose(free3, free2)  # it starts where it ended
    assert torch.equal(state3[0], state2[0])                    # the teacher-forced state is untouched
    assert torch.equal(state3[2], h_end) and not torch.allclose(state3[2], state3[0])


def test_a_take_run_free_draws_z_around_the_point_path_and_leaves_the_prior_spread_alone(tiny_config):
    torch.manual_seed(0)
    model = CVRNN(tiny_config)
    b = batch_of([make_piece(12), make_piece(12, seed=1)], 24)
    state = model.init_state(2)
    *_, free, near = fwd(model, b, state, free=True, free_take=1e-6)
    assert torch.allclose(near, free, atol=1e-4)  # a vanishing temperature: the point path
    *_, free, take = fwd(model, b, state, free=True, free_take=1.25)
    assert float((take - free).abs().max()) > 1e-3
    nll, stats = free_loss(take, b["x"], b["mask"], b["scope"], prefix="take")
    assert set(stats) == {f"take_{h}" for h in HEADS}
    nll.backward()
    assert float(model.prior_out.weight.grad[:tiny_config.z_dim].abs().sum()) > 0  # the mean learns from it
    assert float(model.prior_out.weight.grad[tiny_config.z_dim:].abs().sum()) == 0  # the spread does not


def test_head_weight_scales_a_head_in_the_loss_and_not_in_the_figures():
    logits, x, mask, qp = _random_heads(2, 6)
    loss1, s1 = elbo_loss(logits, x, mask, qp)
    loss4, s4 = elbo_loss(logits, x, mask, qp, head_weight={"tempo": 4.0})
    assert float(loss4) == pytest.approx(float(loss1) + 3 * s1["nll_tempo"], rel=1e-5)
    assert s4 == s1  # per-head NLL and their sum stay unweighted (comparable across runs)
    p1, _ = point_loss(logits, x, mask, head_weight={"velocity": 0.0})
    assert float(p1) == pytest.approx(s1["nll"] - s1["nll_velocity"], rel=1e-5)
