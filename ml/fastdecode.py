"""The CVRNN decode step in numpy, for CPU rendering.

One decode step is ~70 small matrix operations at batch 1-16; PyTorch's per-operation dispatch
(~10-20 us) dominates them on a CPU, numpy's (~1-2 us) does not. The weights are copied once
from a trained `CVRNN`; the arithmetic is that of `CVRNN.step` (mirrored again in C: ml.cdecode), with inverse-CDF
sampling of the heads from one vector of uniforms per note.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from ml.model import DECIDE, EXPECTED, HEADS, LIFT_THRESHOLD, CVRNN, head_digits, sustain_comes_up


def _np(t):
    return t.detach().cpu().numpy().astype(np.float32)


def _c(a):
    return np.ascontiguousarray(a)


def _lrelu(x):
    return np.maximum(x, 0.1 * x)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


_CONTROLLER = None


def _blas_controller() -> ThreadpoolController:
    # Made once: each ThreadpoolController() scans the loaded libraries (~7 ms).
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


class _Dense:
    """A DenseMLP whose growing concatenated input lives in one buffer: one product per layer."""

    def __init__(self, mlp, d_in: int):
        self.layers = [(np.ascontiguousarray(_np(layer.weight).T), _np(layer.bias)) for layer in mlp.layers]
        self.d_in, self.d_out = d_in, mlp.d_out
        self.buf = np.zeros((1, d_in + mlp.d_out * len(self.layers)), np.float32)

    def __call__(self, x):
        if self.buf.shape[0] != x.shape[0]:
            self.buf = np.zeros((x.shape[0], self.buf.shape[1]), np.float32)
        buf, end = self.buf, self.d_in
        buf[:, :end] = x
        for W, b in self.layers:
            y = buf[:, :end] @ W
            y += b
            buf[:, end:end + self.d_out] = np.maximum(y, 0.1 * y)
            end += self.d_out
        return buf[:, end - self.d_out:end].copy()


class NumpyDecoder:
    """Decode notes from precomputed score features with a CVRNN's weights, in numpy."""

    def __init__(self, model: CVRNN):
        cfg = model.cfg
        self.cfg = cfg
        u, c_dim = cfg.dense_units, cfg.c_dim
        self.prior = _Dense(model.prior, cfg.state_dim)
        # Every weight matrix C-contiguous: with a transposed (Fortran-order) operand OpenBLAS
        # rounds rows differently on more row counts (see `row_alignment`).
        self.prior_out = (_c(_np(model.prior_out.weight).T), _np(model.prior_out.bias))
        self.psi = _Dense(model.psi, cfg.z_dim)
        self.phi = _Dense(model.phi, cfg.x_emb * len(HEADS))
        self.x_embs = [_np(e.weight) for e in model.x_embs]
        g0, g2, g4 = model.gen_in, model.gen_hidden, model.gen_out
        self.g0_c = (_c(_np(g0.weight)[:, :c_dim].T), _np(g0.bias))
        self.g0_psi = np.ascontiguousarray(_np(g0.weight)[:, c_dim:].T)
        self.g2 = (_c(_np(g2.weight).T), _np(g2.bias))
        self.g4 = (_c(_np(g4.weight).T), _np(g4.bias))
        W, b = _np(model.state_in.weight), _np(model.state_in.bias)
        self.s_c = (_c(W[:, :c_dim].T), b)
        self.s_phi = np.ascontiguousarray(W[:, c_dim:c_dim + u].T)
        self.s_psi = np.ascontiguousarray(W[:, c_dim + u:].T)
        self.cells = [(_c(_np(c.weight_ih).T), _np(c.bias_ih), _c(_np(c.weight_hh).T), _np(c.bias_hh))
                      for c in model.cells]
        self.row_align, self.rows_dense = self._measure_rows()
        self.sizes = list(HEADS.values())
        self.bounds = np.cumsum([0] + self.sizes)
        self.last = np.array(self.sizes) - 1
        self.digits = [head_digits(name) for name in HEADS]   # for the expected class
        # psi(z) feeds the generator and the state: one product for both
        self.psi_out = np.ascontiguousarray(np.concatenate([self.g0_psi, self.s_psi], 1))
        self.n_gen = self.g0_psi.shape[1]
        self.comes_up = sustain_comes_up()   # (81,) bool: a segment up
        self.class_index = np.concatenate([np.arange(k, dtype=np.float32) for k in self.sizes])

    def _measure_rows(self) -> tuple[int, bool]:
        """(row tile, rows position-free) of this CPU's BLAS for these weights."""
        weights = ([W for mlp in (self.prior, self.psi, self.phi) for W, _ in mlp.layers]
                   + [self.prior_out[0], self.g0_psi, self.g2[0], self.g4[0], self.s_phi, self.s_psi]
                   + [w for c in self.cells for w in (c[0], c[2])])
        a = row_alignment(weights)
        return a, rows_position_free(weights, a)

    def precompute(self, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Terms that depend on c only, for all notes at once: (n, U) and (n, S)."""
        return c @ self.g0_c[0] + self.g0_c[1], c @ self.s_c[0] + self.s_c[1]

    def step_state(self, h: np.ndarray, x: np.ndarray) -> np.ndarray:
        out = []
        for (wi, bi, wh, bh), hl in zip(self.cells, h):
            gi, gh = x @ wi + bi, hl @ wh + bh
            H = hl.shape[-1]
            r = _sigmoid(gi[:, :H] + gh[:, :H])
            z = _sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
            n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
            x = (1.0 - z) * n + z * hl
            out.append(x)
        return np.stack(out)

    def decode(self, c_gen: np.ndarray, c_state: np.ndarray, h: np.ndarray, rng: np.random.Generator,
               *, mode: str = "prior", delta=None, z_fixed=None, temperature=1.0, scope=None, x_prev=None,
               z_temperature: float = 1.0):
        """Generate n notes. c_gen, c_state from `precompute`; h (layers, V, H) float32.

        delta / z_fixed: (V, Z) or (n, V, Z); temperature: one number or one per head (0 = the
        most likely class); scope (n, H) bool: where False the head repeats the previous note's
        class, x_prev (V, H) the note before the first; z_temperature scales the prior's spread
        in mode 'prior' (see `Renderer.decode_steps`).
        Returns classes (n, V, H) int64, z (n, V, Z), h.
        """
        n, V = len(c_gen), h.shape[1]
        rows = Rows.one(n, V, rng, self.cfg.z_dim, mode=mode, delta=delta, z_fixed=z_fixed,
                        temperature=temperature, scope=scope, x_prev=x_prev, z_temperature=z_temperature)
        return self.decode_rows(np.broadcast_to(c_gen[:, None], (n, V, c_gen.shape[1])),
                                np.broadcast_to(c_state[:, None], (n, V, c_state.shape[1])), h, rows)

    def decode_rows(self, c_gen: np.ndarray, c_state: np.ndarray, h: np.ndarray, rows: Rows):
        """Generate up to n notes for B rows that may belong to several renders (`Rows`).

        c_gen (n, B, U), c_state (n, B, S) from `precompute`, per row; h (layers, B, H). A group
        of rows decodes ``rows.n[g]`` notes: past it its rows are padding (their state is kept,
        their generator not drawn from). Returns classes (n, B, H) int64, z (n, B, Z), h.
        """
        B = h.shape[1]
        # A render's notes must not depend on the renders sharing its pass: the pass has a
        # multiple of the BLAS row tile's rows, and where a row's place in a full tile changes
        # its rounding, each group of rows starts on a tile (see `row_alignment`).
        rows, where = rows.aligned(self.row_align, dense=self.rows_dense)
        if len(rows.mode) != B or (where != np.arange(B)).any():
            h, c_gen, c_state = (_scatter(a, where, len(rows.mode)) for a in (h, c_gen, c_state))
        with _blas_controller().limit(limits=1, user_api="blas"):
            xs, zs, h = self._decode(c_gen, c_state, h, rows)
        return xs[:, where], zs[:, where], h[:, where]

    def _decode(self, c_gen, c_state, h, rows):
        n, B = len(c_gen), h.shape[1]
        Z, nh = self.cfg.z_dim, len(self.sizes)
        xs = np.zeros((n, B, nh), np.int64)
        zs = np.zeros((n, B, Z), np.float32)
        lo, hi = self.bounds[:-1], self.bounds[1:]
        temps = rows.temps
        greedy = temps == 0.0
        expected = temps == EXPECTED   # the rounded mean class
        decide = temps == DECIDE       # the sustain pattern: whether it comes up, then which
        chosen = greedy | expected | decide
        inv_t = np.repeat(np.where(chosen, 1.0, 1.0 / np.maximum(temps, 1e-6)), self.sizes, axis=1
                          ).astype(np.float32)
        scaled = not np.allclose(inv_t, 1.0)
        greedy_heads, expected_heads = np.flatnonzero(greedy.any(0)), np.flatnonzero(expected.any(0))
        decide_heads = np.flatnonzero(decide.any(0))
        ordinal_expected = [k for k in expected_heads if self.digits[k][0].shape[1] == 1]
        pattern_expected = [k for k in expected_heads if self.digits[k][0].shape[1] > 1]
        prior, perturb, fixed = (rows.mode == m for m in (PRIOR, PERTURB, FIXED))
        only_prior = prior.all()
        # padding rows (in no group) may take any state: their notes are dropped
        padding = ~rows.live(-1) if rows.groups else np.zeros(B, bool)
        x_prev, prev_ok = rows.x_prev.copy(), rows.has_prev.copy()
        eps = np.zeros((B, Z), np.float32)
        u = np.zeros((B, nh), np.float32)
        for i in range(n):
            live = rows.live(i)   # (B,) rows with a note to decode at step i
            for g, (a, b) in enumerate(rows.groups):  # each render draws from its own generator
                if rows.n[g] > i:
                    eps[a:b] = rows.rngs[g].standard_normal((b - a, Z), dtype=np.float32)
                    u[a:b] = rows.rngs[g].random((b - a, nh), dtype=np.float32)
            mo = self.prior(h[-1]) @ self.prior_out[0] + self.prior_out[1]
            mu, lv = mo[:, :Z], mo[:, Z:]
            if only_prior:
                z = mu + (rows.z_temperature * eps) * np.exp(0.5 * lv)
            else:
                z = np.where(prior[:, None], mu + (rows.z_temperature * eps) * np.exp(0.5 * lv), 0.0)
                if perturb.any():
                    z = np.where(perturb[:, None], mu + rows.delta[i] * np.exp(lv), z)
                if fixed.any():
                    z = np.where(fixed[:, None], rows.z_fixed[i], z)
                z = z.astype(np.float32)
            ps_out = self.psi(z) @ self.psi_out
            hid = _lrelu(c_gen[i] + ps_out[:, :self.n_gen])
            logits = _lrelu(hid @ self.g2[0] + self.g2[1]) @ self.g4[0] + self.g4[1]   # (B, sum(HEADS))
            x = xs[i]
            if not chosen.all():
                logits_t = logits * inv_t if scaled else logits
                # Inverse-CDF sampling of all heads at once: one exp and one running sum over
                # the concatenated logits; each head's CDF is a difference of that sum.
                e = np.exp(logits_t - np.repeat(np.maximum.reduceat(logits_t, lo, axis=1), self.sizes, axis=1))
                cum = np.cumsum(e, -1)
                before = np.concatenate([np.zeros((B, 1), np.float32), cum[:, hi[:-1] - 1]], 1)   # (B, H)
                thresh = before + u * (cum[:, hi - 1] - before)
                below = cum < np.repeat(thresh, self.sizes, axis=1)
                x[:] = np.minimum(np.add.reduceat(below, lo, axis=1), self.last)
            for k in greedy_heads:  # the most likely class of these heads
                r = greedy[:, k]
                x[r, k] = logits[r, lo[k]:hi[k]].argmax(-1)
            if len(ordinal_expected):  # the expected class of these, all heads at once
                if chosen.all():
                    e = np.exp(logits - np.repeat(np.maximum.reduceat(logits, lo, axis=1), self.sizes, axis=1))
                # e: each head's exp(logits - max) (at temperature 1 where a head is chosen);
                # sums, not products: they are free of the row count
                mean = np.add.reduceat(e * self.class_index, lo, axis=1) / np.add.reduceat(e, lo, axis=1)
                for k in ordinal_expected:
                    r = expected[:, k]
                    x[r, k] = np.rint(mean[r, k])
            for k in pattern_expected:  # the expected sustain pattern
                r = expected[:, k]
                part = logits[r, lo[k]:hi[k]]
                e = np.exp(part - part.max(-1, keepdims=True))
                digits, weights = self.digits[k]   # each segment's expected depth
                mean = (e[:, :, None] * digits[None]).sum(1) / e.sum(-1, keepdims=True)
                x[r, k] = (np.rint(mean).astype(np.int64) * weights).sum(-1)
            for k in decide_heads:  # the sustain pattern: does it come up, then which (DECIDE)
                r = decide[:, k]
                part = logits[r, lo[k]:hi[k]]
                p = np.exp(part - part.max(-1, keepdims=True))
                want = p[:, self.comes_up].sum(-1, keepdims=True) >= LIFT_THRESHOLD * p.sum(-1, keepdims=True)
                cum = np.cumsum(np.where(self.comes_up[None] == want, p, 0.0), -1)
                x[r, k] = np.minimum((cum <= u[r, k:k + 1] * cum[:, -1:]).sum(-1), self.last[k])
            if rows.scope is not None:
                keep = ~rows.scope[i] & prev_ok[:, None]
                x[keep] = x_prev[keep]
            emb = np.concatenate([tab[x[:, k]] for k, tab in enumerate(self.x_embs)], -1)
            inp = c_state[i] + self.phi(emb) @ self.s_phi + ps_out[:, self.n_gen:]
            h_next = self.step_state(h, inp)
            if (live | padding).all():
                h, x_prev[:] = h_next, x
                prev_ok[:] = True
            else:
                h = np.where(live[None, :, None], h_next, h)
                x_prev[live], prev_ok[live] = x[live], True
            zs[i] = z
        return xs, zs, h


PRIOR, PERTURB, FIXED = 0, 1, 2
MODE_CODES = {"prior": PRIOR, "perturb": PERTURB, "fixed": FIXED}


def row_alignment(weights: list[np.ndarray], probe: int = 96,
                  candidates=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)) -> int:
    """The smallest row tile ``a`` such that a product with each of these weights gives every
    row the same float32 result wherever the row sits, so long as the product has a multiple of
    ``a`` rows and the row's group starts on a multiple of ``a`` (measured here, per decoder).

    OpenBLAS picks its kernels by shape and by CPU: a 1-row product (gemv) sums in another order
    than larger ones (Intel: a = 2), and some kernels round the rows of a partial tile, or the
    last row of each 6-row half tile, differently (AMD Zen: a = 12). Laying every decode pass
    out on this tile makes a render's notes independent of the renders sharing its passes.
    """
    rng = np.random.default_rng(0)
    with _blas_controller().limit(limits=1, user_api="blas"):
        probes = [(W, rng.standard_normal((probe, W.shape[0])).astype(np.float32)) for W in weights]
        refs = [X @ W for W, X in probes]
        for a in candidates:
            if probe % a == 0 and all(
                    all(np.array_equal(X[:M] @ W, ref[:M]) for M in range(a, probe, a))
                    and all(np.array_equal(X[o:o + a] @ W, ref[o:o + a]) for o in range(a, probe, a))
                    for (W, X), ref in zip(probes, refs)):
                return a
    warnings.warn("no row tile gives batch-independent BLAS products: renders sharing a pass may "
                  "differ from the same renders alone in their last float bits", RuntimeWarning, stacklevel=2)
    return candidates[-1]


def rows_position_free(weights: list[np.ndarray], a: int, probe: int = 4, trials: int = 3) -> bool:
    """Whether, in products with a multiple of ``a`` rows, a row's result is the same at every
    place (measured here): then renders can share a tile, each starting on any row.

    On this project's AMD EPYC machines it is (checked here for tiles of 2 and 12 rows): only a
    partial tile rounds differently, so eight one-take renders fill one tile instead of eight.
    """
    rng = np.random.default_rng(1)
    with _blas_controller().limit(limits=1, user_api="blas"):
        for W in weights:
            for _ in range(trials):
                v = rng.standard_normal(W.shape[0]).astype(np.float32)
                ref = (np.broadcast_to(v, (a, W.shape[0])) @ W)[0]
                X = rng.standard_normal((probe * a, W.shape[0])).astype(np.float32)
                for p in range(probe * a):
                    X_p = X.copy()
                    X_p[p] = v
                    if not np.array_equal((X_p @ W)[p], ref):
                        return False
    return True


def _scatter(a: np.ndarray, where: np.ndarray, B: int) -> np.ndarray:
    """a (..., len(where), D) placed at rows ``where`` of a zero (..., B, D) array."""
    out = np.zeros(a.shape[:-2] + (B, a.shape[-1]), a.dtype)
    out[..., where, :] = a
    return out


@dataclass
class Rows:
    """Per-row settings of one decode pass over B rows: the takes of one or several renders.

    Rows ``groups[g] = (start, stop)`` are one render's takes: they draw their noise from
    ``rngs[g]`` (z noise, then one uniform per head, per note, as `Renderer.decode_steps`) and
    decode ``n[g]`` notes of the pass, so a render's notes do not depend on its neighbours.
    """

    groups: list            # [(start, stop)] row ranges, one per render
    rngs: list              # [np.random.Generator], one per group
    n: np.ndarray           # (G,) notes each group decodes in this pass
    mode: np.ndarray        # (B,) PRIOR / PERTURB / FIXED
    temps: np.ndarray       # (B, H) per head: > 0 sample, 0 most likely class, EXPECTED mean class,
    #                         DECIDE (sustain) whether it comes up, then a pattern
    z_temperature: np.ndarray  # (B, 1) the prior's spread in mode prior
    x_prev: np.ndarray      # (B, H) int64: the note before the first (where has_prev)
    has_prev: np.ndarray    # (B,) bool
    delta: np.ndarray | None = None    # (n, B, Z) for perturb rows
    z_fixed: np.ndarray | None = None  # (n, B, Z) for fixed rows
    scope: np.ndarray | None = None    # (n, B, H) bool: False repeats the previous class

    def live(self, i: int) -> np.ndarray:
        out = np.zeros(len(self.mode), bool)
        for (a, b), n in zip(self.groups, self.n):
            out[a:b] = n > i
        return out

    @classmethod
    def one(cls, n, V, rng, Z, *, mode, delta, z_fixed, temperature, scope, x_prev, z_temperature) -> Rows:
        """The rows of one render's V takes (the arguments of `NumpyDecoder.decode`)."""
        nh = len(HEADS)

        def per_note(a):
            return None if a is None else np.broadcast_to(a if np.ndim(a) == 3 else np.asarray(a)[None],
                                                          (n, V, Z))

        return cls(groups=[(0, V)], rngs=[rng], n=np.array([n]), mode=np.full(V, MODE_CODES[mode]),
                   temps=np.broadcast_to(np.asarray(temperature, np.float32), (V, nh)),
                   z_temperature=np.full((V, 1), z_temperature, np.float32),
                   x_prev=np.zeros((V, nh), np.int64) if x_prev is None else np.asarray(x_prev, np.int64),
                   has_prev=np.full(V, x_prev is not None),
                   delta=per_note(delta) if mode == "perturb" else None,
                   z_fixed=per_note(z_fixed) if mode == "fixed" else None,
                   scope=None if scope is None else np.broadcast_to(np.asarray(scope, bool)[:, None], (n, V, nh)))

    def aligned(self, a: int, dense: bool = False) -> tuple[Rows, np.ndarray]:
        """These rows laid out so that the pass has a multiple of ``a`` rows (at least one tile)
        and, unless ``dense``, each group starts on a multiple of ``a``; the gaps are padding rows
        in no group (never live: they draw nothing and keep their state). Returns (rows, where):
        old row i is new row where[i]."""
        B = len(self.mode)
        starts, pos = [], 0
        for s, e in self.groups:
            starts.append(pos)
            pos += (e - s) if dense else -(-(e - s) // a) * a
        total = max(-(-pos // a) * a, a)
        where = np.concatenate([np.arange(p, p + e - s) for p, (s, e) in zip(starts, self.groups)]
                               ) if self.groups else np.zeros(0, int)
        if total == B and (where == np.arange(B)).all():
            return self, where
        groups = [(p, p + e - s) for p, (s, e) in zip(starts, self.groups)]
        used = np.zeros(total, bool)
        used[where] = True
        fill = np.zeros(total, int)  # padding rows copy row 0's settings (their notes are dropped)
        fill[where] = np.arange(B)

        def put(x, axis, value):
            if x is None:
                return None
            out = np.take(x, fill, axis=axis).copy()
            idx = [slice(None)] * x.ndim
            idx[axis] = ~used
            out[tuple(idx)] = value
            return out

        return Rows(groups=groups, rngs=list(self.rngs), n=np.array(self.n), mode=self.mode[fill],
                    temps=self.temps[fill], z_temperature=self.z_temperature[fill], x_prev=put(self.x_prev, 0, 0),
                    has_prev=put(self.has_prev, 0, False), delta=put(self.delta, 1, 0),
                    z_fixed=put(self.z_fixed, 1, 0), scope=put(self.scope, 1, True)), where
