"""The CVRNN decode step in numpy, for CPU rendering.

One decode step is ~70 small matrix operations at batch 1-16; PyTorch's per-operation dispatch
(~10-20 us) dominates them on a CPU, numpy's (~1-2 us) does not. The weights are copied once
from a trained `CVRNN`; the arithmetic is that of `CVRNN.step` (its only mirror), with inverse-CDF
sampling of the heads from one vector of uniforms per note.
"""
from __future__ import annotations

import numpy as np
from threadpoolctl import ThreadpoolController

from ml.model import HEADS, CVRNN


def _np(t):
    return t.detach().cpu().numpy().astype(np.float32)


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
        self.prior_out = (_np(model.prior_out.weight).T, _np(model.prior_out.bias))
        self.psi = _Dense(model.psi, cfg.z_dim)
        self.phi = _Dense(model.phi, cfg.x_emb * len(HEADS))
        self.x_embs = [_np(e.weight) for e in model.x_embs]
        g0, g2, g4 = model.gen_in, model.gen_hidden, model.gen_out
        self.g0_c = (_np(g0.weight)[:, :c_dim].T, _np(g0.bias))
        self.g0_psi = np.ascontiguousarray(_np(g0.weight)[:, c_dim:].T)
        self.g2 = (_np(g2.weight).T, _np(g2.bias))
        self.g4 = (_np(g4.weight).T, _np(g4.bias))
        W, b = _np(model.state_in.weight), _np(model.state_in.bias)
        self.s_c = (W[:, :c_dim].T, b)
        self.s_phi = np.ascontiguousarray(W[:, c_dim:c_dim + u].T)
        self.s_psi = np.ascontiguousarray(W[:, c_dim + u:].T)
        self.cells = [(_np(c.weight_ih).T, _np(c.bias_ih), _np(c.weight_hh).T, _np(c.bias_hh))
                      for c in model.cells]
        self.sizes = list(HEADS.values())
        self.bounds = np.cumsum([0] + self.sizes)
        self.last = np.array(self.sizes) - 1
        self.classes = [np.arange(k, dtype=np.float32) for k in self.sizes]

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
        # One BLAS thread: these products are tiny, and a second thread only adds hand-offs.
        with _blas_controller().limit(limits=1, user_api="blas"):
            return self._decode(c_gen, c_state, h, rng, mode, delta, z_fixed, temperature, scope, x_prev,
                                z_temperature)

    def _decode(self, c_gen, c_state, h, rng, mode, delta, z_fixed, temperature, scope, x_prev, z_temperature):
        n, V = len(c_gen), h.shape[1]
        Z, nh = self.cfg.z_dim, len(self.sizes)
        xs = np.empty((n, V, nh), np.int64)
        zs = np.empty((n, V, Z), np.float32)
        lo, hi = self.bounds[:-1], self.bounds[1:]
        temps = np.broadcast_to(np.asarray(temperature, np.float32), (nh,))
        greedy = temps == 0.0
        expected = temps < 0.0   # ml.model.EXPECTED: the rounded mean class
        chosen = greedy | expected
        inv_t = np.repeat(np.where(chosen, 1.0, 1.0 / np.maximum(temps, 1e-6)), self.sizes).astype(np.float32)
        scaled = not np.allclose(inv_t, 1.0)
        for i in range(n):
            mo = self.prior(h[-1]) @ self.prior_out[0] + self.prior_out[1]
            mu, lv = mo[:, :Z], mo[:, Z:]
            eps = rng.standard_normal((V, Z), dtype=np.float32)
            u = rng.random((V, nh), dtype=np.float32)
            if mode == "prior":
                z = mu + (z_temperature * eps) * np.exp(0.5 * lv)
            elif mode == "perturb":
                z = mu + (delta if delta.ndim == 2 else delta[i]) * np.exp(lv)
            else:
                z = z_fixed if z_fixed.ndim == 2 else z_fixed[i]
            ps = self.psi(z)
            hid = _lrelu(c_gen[i] + ps @ self.g0_psi)
            logits = _lrelu(hid @ self.g2[0] + self.g2[1]) @ self.g4[0] + self.g4[1]   # (V, sum(HEADS))
            if not chosen.all():
                if scaled:
                    logits_t = logits * inv_t
                else:
                    logits_t = logits
                # Inverse-CDF sampling of all heads at once: one exp and one running sum over
                # the concatenated logits; each head's CDF is a difference of that sum.
                e = np.exp(logits_t - np.repeat(np.maximum.reduceat(logits_t, lo, axis=1), self.sizes, axis=1))
                cum = np.cumsum(e, -1)
                before = np.concatenate([np.zeros((V, 1), np.float32), cum[:, hi[:-1] - 1]], 1)   # (V, H)
                thresh = before + u * (cum[:, hi - 1] - before)
                below = cum < np.repeat(thresh, self.sizes, axis=1)
                xs[i] = np.minimum(np.add.reduceat(below, lo, axis=1), self.last)
            for k in np.flatnonzero(greedy):  # the most likely class of these heads
                xs[i, :, k] = logits[:, lo[k]:hi[k]].argmax(-1)
            for k in np.flatnonzero(expected):  # the expected class of these
                part = logits[:, lo[k]:hi[k]]
                e = np.exp(part - part.max(-1, keepdims=True))
                xs[i, :, k] = np.rint((e @ self.classes[k]) / e.sum(-1))
            if scope is not None and x_prev is not None:
                keep = ~scope[i]
                xs[i][:, keep] = x_prev[:, keep]
            x_prev = xs[i]
            emb = np.concatenate([tab[xs[i, :, k]] for k, tab in enumerate(self.x_embs)], -1)
            inp = c_state[i] + self.phi(emb) @ self.s_phi + ps @ self.s_psi
            h = self.step_state(h, inp)
            zs[i] = z
        return xs, zs, h
