"""The compiled decode loop (ml.cdecode): the numpy decoder's notes, rows free of their
neighbours and of the thread count, built once per CPU, and a clear fallback without a compiler.
(Its parity with the torch decoder: tests/unit/ml/test_fastdecode.py runs on both CPU decoders.)"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ml.cdecode as cdecode
from ml.cdecode import CDecoder, cpu_decoder
from ml.fastdecode import FIXED, PERTURB, PRIOR, NumpyDecoder, Rows
from ml.model import DECIDE, EXPECTED, HEADS, CVRNN

NH = len(HEADS)
SAMPLED = np.array([0.3, 0.5, 0.5, 0.6, 1.0, 0.3], np.float32)
DEFAULTS = np.array([EXPECTED] * 4 + [DECIDE, 0.3], np.float32)


@pytest.fixture(scope="module")
def model(tiny_config):
    torch.manual_seed(0)
    return CVRNN(tiny_config).eval()


@pytest.fixture(scope="module")
def decoders(model):
    return NumpyDecoder(model), CDecoder(model, threads=1)


def _features(fast, n, seed=0):
    c = np.random.default_rng(seed).standard_normal((n, fast.cfg.c_dim)).astype(np.float32)
    return fast.precompute(c)


@pytest.mark.parametrize("mode", ["prior", "perturb", "fixed"])
@pytest.mark.parametrize("temps", [SAMPLED, DEFAULTS, np.zeros(NH, np.float32)],
                         ids=["sampled", "defaults", "greedy"])
def test_the_same_notes_as_the_numpy_decoder(decoders, tiny_config, mode, temps):
    """Same noise, same arithmetic: the same classes at every note, z and h equal to rounding."""
    nd, cd = decoders
    cg, cs = _features(nd, 40)
    V, Z = 3, tiny_config.z_dim
    shape = (tiny_config.state_layers, V, tiny_config.state_dim)
    h = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    kw = dict(mode=mode, temperature=temps, z_temperature=1.3,
              delta=np.linspace(-1, 1, V * Z).reshape(V, Z) if mode == "perturb" else None,
              z_fixed=np.random.default_rng(3).standard_normal((40, V, Z)) if mode == "fixed" else None)
    xn, zn, hn = nd.decode(cg, cs, h.copy(), np.random.default_rng(7), **kw)
    xc, zc, hc = cd.decode(cg, cs, h.copy(), np.random.default_rng(7), **kw)
    np.testing.assert_array_equal(xc, xn)
    np.testing.assert_allclose(zc, zn, atol=1e-4)
    np.testing.assert_allclose(hc, hn, atol=1e-4)
    if temps is SAMPLED:  # the draws follow the seed
        assert not np.array_equal(cd.decode(cg, cs, h.copy(), np.random.default_rng(8), **kw)[0], xc)


def test_scope_and_the_note_before_repeat_classes_as_in_numpy(decoders, tiny_config):
    nd, cd = decoders
    cg, cs = _features(nd, 12, seed=1)
    h = np.zeros((tiny_config.state_layers, 2, tiny_config.state_dim), np.float32)
    scope = np.ones((12, NH), bool)
    scope[::3, list(HEADS).index("tempo")] = False
    scope[1:5, list(HEADS).index("sustain")] = False
    x_prev = np.array([[60, 10, 50, 40, 20, 1], [70, 11, 51, 41, 21, 0]])
    outs = [d.decode(cg, cs, h.copy(), np.random.default_rng(4), temperature=SAMPLED, scope=scope, x_prev=x_prev)
            for d in (nd, cd)]
    np.testing.assert_array_equal(outs[1][0], outs[0][0])
    tempo = list(HEADS).index("tempo")
    np.testing.assert_array_equal(outs[1][0][0, :, tempo], x_prev[:, tempo])


def _rows(groups, n, rngs, temps, modes, Z, B):
    """Rows of several renders: group g is rows groups[g], decodes n[g] notes."""
    mode = np.concatenate([np.full(b - a, m) for (a, b), m in zip(groups, modes)])
    return Rows(groups=groups, rngs=rngs, n=np.array(n), mode=mode,
                temps=np.concatenate([np.broadcast_to(t, (b - a, NH)) for (a, b), t in zip(groups, temps)]),
                z_temperature=np.full((B, 1), 1.2, np.float32), x_prev=np.zeros((B, NH), np.int64),
                has_prev=np.zeros(B, bool), delta=np.full((max(n), B, Z), 0.4, np.float32),
                z_fixed=np.full((max(n), B, Z), -0.3, np.float32))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_render_is_the_same_alone_or_beside_others_on_any_number_of_threads(model, tiny_config, threads):
    """Bit for bit: rows in blocks of 8, 4, 2 and 1 (13 rows) and split between threads sum in
    one order, so each render's classes, z and state equal those it gets alone."""
    cd = CDecoder(model, threads=threads)
    Z, L, Hd = tiny_config.z_dim, tiny_config.state_layers, tiny_config.state_dim
    groups, n = [(0, 1), (1, 6), (6, 7), (7, 13)], [9, 6, 9, 3]
    temps, modes = [SAMPLED, DEFAULTS, SAMPLED, DEFAULTS], [PRIOR, PERTURB, FIXED, PRIOR]
    B = 13
    cg, cs = _features(cd, 9, seed=5)
    cg_rows = np.ascontiguousarray(np.broadcast_to(cg[:, None], (9, B, cg.shape[1])))
    cs_rows = np.ascontiguousarray(np.broadcast_to(cs[:, None], (9, B, cs.shape[1])))
    h = np.random.default_rng(6).standard_normal((L, B, Hd)).astype(np.float32)
    rows = _rows(groups, n, [np.random.default_rng(s) for s in (1, 2, 3, 4)], temps, modes, Z, B)
    x_all, z_all, h_all = cd.decode_rows(cg_rows, cs_rows, h.copy(), rows)
    alone = CDecoder(model, threads=1)
    for g, ((a, b), m) in enumerate(zip(groups, n)):
        one = _rows([(0, b - a)], [m], [np.random.default_rng(g + 1)], [temps[g]], [modes[g]], Z, b - a)
        x1, z1, h1 = alone.decode_rows(cg_rows[:m, a:b], cs_rows[:m, a:b], h[:, a:b].copy(), one)
        np.testing.assert_array_equal(x_all[:m, a:b], x1)
        np.testing.assert_array_equal(z_all[:m, a:b], z1)
        np.testing.assert_array_equal(h_all[:, a:b], h1)  # a render past its notes keeps its state


def test_decide_on_a_head_other_than_the_sustain_is_refused(decoders):
    _, cd = decoders
    cg, cs = _features(cd, 3)
    h = np.zeros((cd.cfg.state_layers, 1, cd.cfg.state_dim), np.float32)
    with pytest.raises(ValueError, match="sustain"):
        cd.decode(cg, cs, h, np.random.default_rng(0), temperature=np.full(NH, DECIDE, np.float32))


def test_the_renderer_decodes_compiled_unless_told_numpy(model, monkeypatch):
    from ml.inference import Renderer
    assert type(Renderer(model, torch.device("cpu")).fast) is CDecoder
    monkeypatch.setenv("DECODER", "numpy")
    assert type(Renderer(model, torch.device("cpu")).fast) is NumpyDecoder
    monkeypatch.setenv("DECODER", "fortran")
    with pytest.raises(ValueError, match="DECODER must be"):
        cpu_decoder(model)


def test_the_library_is_built_once_per_cpu_and_source(tmp_path, monkeypatch):
    monkeypatch.setenv("CDECODE_DIR", str(tmp_path))
    first = cdecode.build()
    mtime = first.stat().st_mtime_ns
    assert first.parent == tmp_path and first.name.startswith("cvdecode-") and first.suffix == ".so"
    assert cdecode.build() == first and first.stat().st_mtime_ns == mtime  # not compiled again
    monkeypatch.setattr(cdecode, "_cpu_fingerprint", lambda: "another CPU")
    assert cdecode.build() != first  # another machine on the same disk gets its own build
    assert not list(tmp_path.glob("*.tmp"))


def test_without_a_compiler_the_numpy_decoder_serves_with_a_warning(model, tmp_path, monkeypatch):
    """A real failure to compile (no such compiler), not a mock: 'auto' warns and falls back,
    DECODER=c says why it cannot."""
    monkeypatch.setenv("CDECODE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setattr(cdecode, "_LIB", None)
    monkeypatch.setattr(cdecode, "_WARNED", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = cpu_decoder(model)
    assert type(fast) is NumpyDecoder
    assert any("decoding in numpy" in str(w.message) and "no-such-cc" in str(w.message) for w in caught)
    monkeypatch.setenv("DECODER", "c")
    with pytest.raises(RuntimeError, match="cannot compile"):
        cpu_decoder(model)


def test_a_compile_error_is_reported_with_the_compilers_message(tmp_path, monkeypatch):
    broken = tmp_path / "cvdecode.c"
    broken.write_text("int cv_decode(void) { return undeclared_name; }\n")
    monkeypatch.setenv("CDECODE_DIR", str(tmp_path / "build"))
    monkeypatch.setattr(cdecode, "SOURCE", broken)
    with pytest.raises(RuntimeError, match="undeclared_name"):
        cdecode.build()
    assert not list((tmp_path / "build").glob("*"))  # no half-written library left behind


def test_the_shipped_model_decodes_the_same_notes_compiled(tiny_config):
    """The shipped checkpoint's sizes (250 units: partial panels; 1,211 logits): the same classes
    as numpy for 3 takes over 48 notes at the defaults and 12 with every head sampled (the two
    round differently in the last bits, which can move a draw that sits on a class boundary and
    from there the take: about one draw in a few hundred with every head sampled), and 11 rows
    batched equal each row alone, bit for bit."""
    from ml.inference import DEFAULT_CHECKPOINT, Renderer
    if not DEFAULT_CHECKPOINT.is_file():
        pytest.skip(f"{DEFAULT_CHECKPOINT} is not in this checkout")
    m = Renderer.load(DEFAULT_CHECKPOINT).model
    nd, cd = NumpyDecoder(m), CDecoder(m, threads=2)
    cg, cs = _features(nd, 48, seed=9)
    h = np.zeros((m.cfg.state_layers, 3, m.cfg.state_dim), np.float32)
    for temps, n in ((DEFAULTS, 48), (SAMPLED, 12)):
        xn, zn, _ = nd.decode(cg[:n], cs[:n], h.copy(), np.random.default_rng(3), temperature=temps, z_temperature=1.3)
        xc, zc, _ = cd.decode(cg[:n], cs[:n], h.copy(), np.random.default_rng(3), temperature=temps, z_temperature=1.3)
        np.testing.assert_array_equal(xc, xn)
        np.testing.assert_allclose(zc, zn, atol=1e-3)
    B = 11
    h11 = np.random.default_rng(1).standard_normal((m.cfg.state_layers, B, m.cfg.state_dim)).astype(np.float32)
    x_all, _, h_all = cd.decode(cg[:8], cs[:8], h11.copy(), np.random.default_rng(5), temperature=DEFAULTS)
    # each row alone with the noise it drew in the batch (rows 0 and 7: the 8-row block; 8: the
    # 2-row remainder; 10: the 1-row one)
    rng = np.random.default_rng(5)
    draws = [(rng.standard_normal((B, m.cfg.z_dim), dtype=np.float32), rng.random((B, NH), dtype=np.float32))
             for _ in range(8)]
    one = CDecoder(m, threads=1)
    for b in (0, 7, 8, 10):
        rows = Rows(groups=[(0, 1)], rngs=[_Replay([(e[b], u[b]) for e, u in draws])], n=np.array([8]),
                    mode=np.array([PRIOR]), temps=DEFAULTS[None], z_temperature=np.ones((1, 1), np.float32),
                    x_prev=np.zeros((1, NH), np.int64), has_prev=np.zeros(1, bool))
        x1, _, h1 = one.decode_rows(np.ascontiguousarray(cg[:8, None]), np.ascontiguousarray(cs[:8, None]),
                                    h11[:, b:b + 1].copy(), rows)
        np.testing.assert_array_equal(x1[:, 0], x_all[:, b])
        np.testing.assert_array_equal(h1[:, 0], h_all[:, b])


class _Replay:
    """A generator that hands out recorded draws: (z noise, uniforms) per note."""

    def __init__(self, draws):
        self.draws, self.i = draws, 0

    def standard_normal(self, shape, dtype):
        return self.draws[self.i][0][None].astype(dtype)

    def random(self, shape, dtype):
        out = self.draws[self.i][1][None].astype(dtype)
        self.i += 1
        return out


def test_the_score_gru_compiled_is_torchs_and_carries_its_state_across_blocks(model, decoders):
    """The score encoder's GRU over notes (ml.cdecode.CDecoder.score_gru, what a CPU render's
    score_blocks runs) against torch.nn.GRU: one sequence, and the same cut in two blocks."""
    _, cd = decoders
    gru = model.score.gru
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 37, gru.input_size, generator=g)
    h0 = torch.randn(gru.num_layers, 1, gru.hidden_size, generator=g)
    with torch.no_grad():
        want, want_h = gru(x, h0)
    got, got_h = cd.score_gru(x, h0)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_h, want_h, atol=1e-5, rtol=0)
    a, ha = cd.score_gru(x[:, :20])  # from a zero state, as nn.GRU with h0=None
    b, hb = cd.score_gru(x[:, 20:], ha)
    with torch.no_grad():
        whole, whole_h = gru(x)
    torch.testing.assert_close(torch.cat([a, b], 1), whole, atol=1e-5, rtol=0)
    torch.testing.assert_close(hb, whole_h, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="one sequence"):
        cd.score_gru(torch.zeros(2, 5, gru.input_size))


def test_a_cpu_render_reads_the_same_score_features_with_either_decoder(model, score, monkeypatch):
    from ml.inference import Renderer, written_tempi
    blocks = {}
    for name in ("c", "numpy"):
        monkeypatch.setenv("DECODER", name)
        r = Renderer(model, torch.device("cpu"))
        blocks[name] = torch.cat([c for _, c in r.score_blocks(score, written_tempi(score, None), block=7)])
    torch.testing.assert_close(blocks["c"], blocks["numpy"], atol=1e-5, rtol=0)
