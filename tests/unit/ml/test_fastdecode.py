"""The numpy decode step computes what the torch model computes; per-head temperature and head
scope behave the same in the torch decoder (Renderer.decode_steps) and in each CPU decoder: numpy
(ml.fastdecode.NumpyDecoder) and compiled (ml.cdecode.CDecoder), the tests below run on both."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.cdecode import CDecoder
from ml.fastdecode import NumpyDecoder, Rows
from ml.inference import Renderer
from ml.model import EXPECTED, HEADS, ORDINAL_HEADS, CVRNN

H = list(HEADS)
NH = len(HEADS)


@pytest.fixture(scope="module")
def model(tiny_config):
    torch.manual_seed(0)
    return CVRNN(tiny_config).eval()


DECODERS = {"numpy": NumpyDecoder, "c": CDecoder}


@pytest.fixture(scope="module", params=list(DECODERS))
def setup(model, tiny_config, request):
    """(renderer, CPU decoder, c (n, c_dim), h (layers, V, H), z (V, Z)) with V = 3 takes; once
    with each CPU decoder."""
    g = torch.Generator().manual_seed(4)
    cfg = tiny_config
    c = torch.randn(24, cfg.c_dim, generator=g)
    h = torch.randn(cfg.state_layers, 3, cfg.state_dim, generator=g)
    z = torch.randn(3, cfg.z_dim, generator=g)
    return Renderer(model, torch.device("cpu")), DECODERS[request.param](model), c, h, z


def test_numpy_step_matches_torch(model, tiny_config):
    m, fast = model, NumpyDecoder(model)
    V, cfg = 3, tiny_config
    h = torch.randn(cfg.state_layers, V, cfg.state_dim)
    z = torch.randn(V, cfg.z_dim)
    c = torch.randn(1, cfg.c_dim)
    x = torch.stack([torch.tensor([1, 5, 90]), torch.tensor([0, 799, 3]), torch.tensor([50, 2, 99]),
                     torch.tensor([7, 70, 49]), torch.tensor([0, 80, 40]), torch.tensor([1, 0, 1])], -1)  # (V, 6)
    with torch.no_grad():
        mu, lv = m.prior_params(h[-1])
        ps = m.psi(z)
        logits = m.generate(m.precompute(c.expand(V, -1))[0], ps)
        inp = m.state_in(torch.cat([c.expand(V, -1), m.embed_x(x), ps], -1))
        h_next = m.step_state(h, inp)
    mo = fast.prior(h[-1].numpy()) @ fast.prior_out[0] + fast.prior_out[1]
    assert np.allclose(mo[:, :cfg.z_dim], mu.numpy(), atol=1e-5)
    assert np.allclose(mo[:, cfg.z_dim:], lv.numpy(), atol=1e-5)
    c_gen, c_state = fast.precompute(c.numpy())
    ps_np = fast.psi(z.numpy())
    assert np.allclose(ps_np, ps.numpy(), atol=1e-5)
    hid = np.maximum(c_gen[0] + ps_np @ fast.g0_psi, 0.1 * (c_gen[0] + ps_np @ fast.g0_psi))
    l2 = hid @ fast.g2[0] + fast.g2[1]
    lg = np.where(l2 > 0, l2, 0.1 * l2) @ fast.g4[0] + fast.g4[1]
    assert lg.shape == (V, sum(HEADS.values())) and np.allclose(lg, logits.numpy(), atol=1e-4)
    emb = np.concatenate([tab[x[:, k].numpy()] for k, tab in enumerate(fast.x_embs)], -1)
    inp_np = c_state[0] + fast.phi(emb) @ fast.s_phi + ps_np @ fast.s_psi
    assert np.allclose(inp_np, inp.numpy(), atol=1e-5)
    assert np.allclose(fast.step_state(h.numpy(), inp_np), h_next.numpy(), atol=1e-5)


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_sampling_follows_the_heads(tiny_config, decoder):
    """With one class far more likely in every head, inverse-CDF sampling picks it."""
    torch.manual_seed(0)
    m = CVRNN(tiny_config).eval()
    want = {"velocity": 64, "duration": 99, "deviation": 50, "tempo": 10, "sustain": 80, "soft": 1}
    with torch.no_grad():
        m.gen_out.weight.zero_()
        m.gen_out.bias.fill_(-20.0)
        start = 0
        for h, k in HEADS.items():
            m.gen_out.bias[start + want[h]] = 20.0
            start += k
    fast = DECODERS[decoder](m)
    c = np.random.default_rng(0).standard_normal((20, tiny_config.c_dim)).astype(np.float32)
    h = np.zeros((tiny_config.state_layers, 2, tiny_config.state_dim), np.float32)
    x, z, _ = fast.decode(*fast.precompute(c), h, np.random.default_rng(1), temperature=[0.3, 1, 1, 2, 0.5, 1])
    assert x.shape == (20, 2, NH) and z.shape == (20, 2, tiny_config.z_dim)
    for k, h_name in enumerate(H):
        assert (x[..., k] == want[h_name]).all(), h_name


def expected_argmax(model, c, z):
    """(n, V, H) most likely classes with z fixed: the logits depend on c_n and z only."""
    with torch.no_grad():
        V = z.shape[0]
        pre = model.precompute(c[:, None].expand(-1, V, -1))[0]
        logits = model.generate(pre, model.psi(z)[None].expand(len(c), -1, -1))
    return torch.stack([p.argmax(-1) for p in logits.split(list(HEADS.values()), -1)], -1).numpy()


def decode_both(setup, temperature, seeds=(1, 1), scope=None, x_prev=None, n=None):
    r, fast, c, h, z = setup
    c = c[:n] if n else c
    xt, _, ht = r.decode_steps(c, h.clone(), torch.Generator().manual_seed(seeds[0]), mode="fixed", z_fixed=z,
                               temperature=temperature, scope=scope,
                               x_prev=None if x_prev is None else torch.from_numpy(x_prev))
    xn, _, hn = fast.decode(*fast.precompute(c.numpy()), h.numpy().copy(), np.random.default_rng(seeds[1]),
                            mode="fixed", z_fixed=z.numpy(), temperature=temperature, scope=scope, x_prev=x_prev)
    return xt.numpy(), ht.numpy(), xn, hn


def test_greedy_fixed_z_parity(setup):
    """Mode 'fixed' (same z) at temperature 0: both decoders give the same classes and states."""
    xt, ht, xn, hn = decode_both(setup, 0.0)
    np.testing.assert_array_equal(xt, xn)
    np.testing.assert_allclose(ht, hn, atol=1e-4)
    np.testing.assert_array_equal(xn, expected_argmax(setup[0].model, setup[2], setup[4]))
    xt2, _, xn2, _ = decode_both(setup, np.zeros(NH, np.float32), seeds=(7, 8))  # per-head zeros: the same
    np.testing.assert_array_equal(xt2, xt)
    np.testing.assert_array_equal(xn2, xn)


@pytest.mark.parametrize("greedy_head", ["velocity", "tempo"])
def test_temperature_zero_for_one_head_while_others_sample(setup, greedy_head):
    temps = np.ones(NH, np.float32)
    k = H.index(greedy_head)
    temps[k] = 0.0
    best = expected_argmax(setup[0].model, setup[2], setup[4])
    a_t, _, a_n, _ = decode_both(setup, temps, seeds=(1, 1))
    b_t, _, b_n, _ = decode_both(setup, temps, seeds=(2, 2))
    for a, b in ((a_t, b_t), (a_n, b_n)):
        np.testing.assert_array_equal(a[..., k], best[..., k])
        np.testing.assert_array_equal(b[..., k], best[..., k])
        dur = H.index("duration")
        assert not np.array_equal(a[..., dur], b[..., dur])  # a sampled head follows the seed
        assert not np.array_equal(a[..., dur], best[..., dur])


def test_a_head_outside_its_scope_repeats_the_previous_class(setup):
    n = 12
    scope = np.ones((n, NH), bool)
    tempo, sus = H.index("tempo"), H.index("sustain")
    scope[[0, 1, 2, 5, 6, 7, 8], tempo] = False  # row 0: repeats x_prev across the chunk boundary
    scope[[0, 3, 4, 9], sus] = False
    x_prev = np.tile(np.array([[60, 100, 50, 33, 17, 1]], np.int64), (3, 1))
    for temps in (0.0, 1.0):
        xt, ht, xn, hn = decode_both(setup, temps, scope=scope, x_prev=x_prev, n=n)
        for x in (xt, xn):
            prev = np.concatenate([x_prev[None], x[:-1]])
            for k in (tempo, sus):
                off = ~scope[:, k]
                np.testing.assert_array_equal(x[off, :, k], prev[off, :, k])
            np.testing.assert_array_equal(x[0, :, tempo], x_prev[:, tempo])
        if temps == 0.0:  # the repeated classes feed the state the same way in both decoders
            np.testing.assert_array_equal(xt, xn)
            np.testing.assert_allclose(ht, hn, atol=1e-4)
    # without x_prev the first note takes its own class (the piece's first note)
    xt0, _, xn0, _ = decode_both(setup, 0.0, scope=scope, n=n)
    best = expected_argmax(setup[0].model, setup[2][:n], setup[4])
    np.testing.assert_array_equal(xn0[0], best[0])
    np.testing.assert_array_equal(xt0[0], best[0])


def test_chunks_with_x_prev_equal_one_pass(setup):
    """Decoding in two chunks (state, random stream and x_prev carried) equals one pass."""
    r, fast, c, h, z = setup
    n = len(c)
    scope = np.zeros((n, NH), bool)
    scope[::4] = True          # every head only every 4th note: long repeats across the cut at 10
    cut = 10
    rng = np.random.default_rng(3)
    one, _, h1 = fast.decode(*fast.precompute(c.numpy()), h.numpy().copy(), rng, scope=scope, x_prev=None)
    rng = np.random.default_rng(3)
    a, _, ha = fast.decode(*fast.precompute(c[:cut].numpy()), h.numpy().copy(), rng, scope=scope[:cut])
    b, _, hb = fast.decode(*fast.precompute(c[cut:].numpy()), ha, rng, scope=scope[cut:], x_prev=a[-1])
    np.testing.assert_array_equal(np.concatenate([a, b]), one)
    np.testing.assert_allclose(hb, h1, atol=1e-5)
    assert (one[9:12] == one[8]).all()  # notes 9..11 repeat note 8 through the cut
    gen = torch.Generator().manual_seed(3)
    tone, _, _ = r.decode_steps(c, h.clone(), gen, scope=scope)
    gen = torch.Generator().manual_seed(3)
    ta, _, th = r.decode_steps(c[:cut], h.clone(), gen, scope=scope[:cut])
    tb, _, _ = r.decode_steps(c[cut:], th, gen, scope=scope[cut:], x_prev=ta[-1])
    assert torch.equal(torch.cat([ta, tb]), tone)
    assert (tone[9:12] == tone[8]).all()


def expected_mean_class(model, c, z):
    """(n, V, H) rounded mean class of each head with z fixed."""
    with torch.no_grad():
        V = z.shape[0]
        pre = model.precompute(c[:, None].expand(-1, V, -1))[0]
        logits = model.generate(pre, model.psi(z)[None].expand(len(c), -1, -1))
    out = []
    for p in logits.double().split(list(HEADS.values()), -1):
        prob = torch.softmax(p, -1)
        out.append((prob * torch.arange(p.shape[-1], dtype=prob.dtype)).sum(-1).round().long())
    return torch.stack(out, -1).numpy()


def test_the_point_estimate_takes_the_expected_class_of_the_ordinal_heads(setup):
    """POINT_TEMPERATURE: ordinal heads at their mean class, pedal heads at their mode, in both
    decoders; the mean is not the mode (the distributions are broad)."""
    from ml.inference import point_temperature

    temps = point_temperature()
    assert (temps[[H.index(h) for h in ORDINAL_HEADS]] == EXPECTED).all()
    xt, ht, xn, hn = decode_both(setup, temps)
    np.testing.assert_array_equal(xt, xn)
    np.testing.assert_allclose(ht, hn, atol=1e-4)
    mean = expected_mean_class(setup[0].model, setup[2], setup[4])
    mode = expected_argmax(setup[0].model, setup[2], setup[4])
    for k, name in enumerate(H):
        np.testing.assert_array_equal(xn[..., k], (mean if name in ORDINAL_HEADS else mode)[..., k], err_msg=name)
    assert not np.array_equal(mean[..., H.index("duration")], mode[..., H.index("duration")])
    # the same classes whatever the seed: nothing is drawn
    xt2, _, xn2, _ = decode_both(setup, temps, seeds=(5, 6))
    np.testing.assert_array_equal(xt2, xt)
    np.testing.assert_array_equal(xn2, xn)


def test_rows_are_laid_out_on_the_row_tile_with_padding_groups_that_decode_nothing():
    rng = [np.random.default_rng(k) for k in range(2)]
    one = Rows.one(5, 1, rng[0], 5, mode="prior", delta=None, z_fixed=None, temperature=0.5, scope=None,
                   x_prev=None, z_temperature=1.0)
    three = Rows.one(3, 3, rng[1], 5, mode="fixed", delta=None, z_fixed=np.ones(5), temperature=0.0,
                     scope=None, x_prev=np.ones((3, len(HEADS))), z_temperature=0.7)
    both = Rows(groups=[(0, 1), (1, 4)], rngs=rng, n=np.array([5, 3]), mode=np.r_[one.mode, three.mode],
                temps=np.r_[one.temps, three.temps], z_temperature=np.r_[one.z_temperature, three.z_temperature],
                x_prev=np.r_[one.x_prev, three.x_prev], has_prev=np.r_[one.has_prev, three.has_prev],
                z_fixed=np.zeros((5, 4, 5), np.float32))
    rows, where = both.aligned(4)
    assert where.tolist() == [0, 4, 5, 6] and len(rows.mode) == 8
    assert rows.groups == [(0, 1), (4, 7)] and rows.rngs == rng and rows.n.tolist() == [5, 3]
    assert rows.live(2).tolist() == [True, False, False, False, True, True, True, False]
    assert rows.live(4).tolist() == [True] + [False] * 7
    assert (rows.z_temperature[where] == both.z_temperature).all() and not rows.has_prev[[1, 2, 3, 7]].any()
    assert both.aligned(1)[0] is both  # already on the tile: unchanged
    # Where a row's place in a full tile does not matter, the groups share tiles.
    rows, where = both.aligned(4, dense=True)
    assert where.tolist() == [0, 1, 2, 3] and len(rows.mode) == 4 and rows.groups == [(0, 1), (1, 4)]
    rows, where = both.aligned(3, dense=True)
    assert where.tolist() == [0, 1, 2, 3] and len(rows.mode) == 6 and rows.groups == [(0, 1), (1, 4)]
    assert rows.live(2).tolist() == [True, True, True, True, False, False]


def test_the_row_tile_makes_every_row_the_same_wherever_it_sits(model):
    fast = NumpyDecoder(model)
    a = fast.row_align
    W = fast.g2[0]
    X = np.random.default_rng(0).standard_normal((4 * a, W.shape[0])).astype(np.float32)
    ref = X @ W
    assert all(np.array_equal(X[o:o + a] @ W, ref[o:o + a]) for o in range(0, 4 * a, a))
    assert all(np.array_equal(X[:M] @ W, ref[:M]) for M in range(a, 4 * a, a))
    if fast.rows_dense:  # and then at any place in a product of whole tiles
        placed = []
        for p in range(2 * a):
            Y = X[:2 * a].copy()
            Y[p] = X[0]
            placed.append((Y @ W)[p])
        assert all(np.array_equal(row, ref[0]) for row in placed)


def test_the_expected_sustain_pattern_is_each_segments_expected_depth(model, setup):
    """EXPECTED on the sustain head (81 patterns of 4 segments x 3 depths, render.pedal): each
    segment at its expected depth, rounded, in both decoders. A sustain head that gives "up
    throughout" 0.3 and spreads 0.7 over the 16 patterns of half and full depths plays every
    segment half down (class 40): not its likeliest pattern (0), nor its mean class (42)."""
    import copy

    from render.pedal import sustain_levels

    k = H.index("sustain")
    lo = sum(list(HEADS.values())[:k])
    levels = sustain_levels(np.arange(HEADS["sustain"]))
    p = np.where((levels >= 1).all(1), 0.7 / 16, 1e-9)
    p[0] = 0.3
    biased = copy.deepcopy(model)
    with torch.no_grad():  # the sustain logits are log p whatever the input
        biased.gen_out.weight[lo:lo + len(p)] = 0.0
        biased.gen_out.bias[lo:lo + len(p)] = torch.from_numpy(np.log(p)).float()
    _, _, c, h, z = setup
    temps = np.full(NH, EXPECTED, np.float32)
    xt, _, xn, _ = decode_both((Renderer(biased, torch.device("cpu")), type(setup[1])(biased), c, h, z), temps)
    np.testing.assert_array_equal(xt, xn)
    assert (xn[..., k] == 40).all() and np.rint((p * np.arange(len(p))).sum() / p.sum()) == 42
    assert (xn[..., H.index("velocity")] == expected_mean_class(biased, c, z)[..., H.index("velocity")]).all()


@pytest.mark.parametrize("p_up", [0.3, 0.2])
def test_decide_lifts_the_pedal_where_the_model_gives_a_change_the_threshold(model, setup, p_up):
    """DECIDE on the sustain head: the pedal comes up in a chord's interval when the patterns with
    a segment up hold at least LIFT_THRESHOLD (0.25) of the head's mass, then a pattern is drawn
    among those that agree, in proportion to the head's probabilities (both decoders). Drawn at
    temperature 1 instead, a 0.3 or 0.2 change would come up in about that share of chords."""
    import copy

    from ml.model import DECIDE, LIFT_THRESHOLD

    assert LIFT_THRESHOLD == 0.25
    k = H.index("sustain")
    lo = sum(list(HEADS.values())[:k])
    p = np.full(HEADS["sustain"], 1e-12)
    p[26], p[0] = p_up * 2 / 3, p_up / 3            # a change at the onset; up throughout
    p[80], p[40] = (1 - p_up) / 2, (1 - p_up) / 2    # down throughout; half down throughout
    biased = copy.deepcopy(model)
    with torch.no_grad():
        biased.gen_out.weight[lo:lo + len(p)] = 0.0
        biased.gen_out.bias[lo:lo + len(p)] = torch.from_numpy(np.log(p)).float()
    _, _, c, h, z = setup
    temps = np.ones(NH, np.float32)
    temps[k] = DECIDE
    counts = {}
    for seed in (1, 2, 3):
        xt, _, xn, _ = decode_both((Renderer(biased, torch.device("cpu")), type(setup[1])(biased), c, h, z), temps,
                                   seeds=(seed, seed))
        for name, x in (("torch", xt), ("numpy", xn)):
            got = x[..., k].ravel()
            counts.setdefault(name, []).extend(got.tolist())
    for name, got in counts.items():
        got = np.array(got)
        allowed = (26, 0) if p_up >= LIFT_THRESHOLD else (80, 40)
        assert set(np.unique(got)) <= set(allowed), (name, np.unique(got))
        share = (got == allowed[0]).mean()   # 2/3 of the up patterns' mass, 1/2 of the down ones'
        assert abs(share - (2 / 3 if p_up >= LIFT_THRESHOLD else 0.5)) < 0.12, (name, share, len(got))
