"""The paper's Table 2 protocol (section 4.3) for one checkpoint, batched over start points.

Per performance: ``n_starts`` seeded start points s; the state is primed from zero by the
inference network on the PRIME (20) human notes before s (z = posterior mean, c_n from the score
encoder over the whole matched-note sequence, as in training); the next 40 notes are decoded
(the first 10 give the 10-note figures) with z = 0, z sampled from the primed prior, and z = the
prior mean (x sampled from the heads; also greedy x for the prior mean, and the point estimate: the prior
mean with the ordinal heads at their expected class, as ``ml.render --point`` and the renderer's
randomness 0 decode them).
Baseline "prime-mean": the mean of the 20 priming notes. Pooled r, within-performance r and MAE
per parameter (ml.metrics). The command line is ml.evaluate.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from ml import metrics as M
from ml.data import window_arrays
from ml.defaults import POINT_TEMPERATURE
from ml.model import HEADS, classes_to_targets, targets_to_classes

PRIME, HORIZONS = 20, (10, 40)
METHODS_A = M.METHODS_A


@torch.inference_mode()
def piece_features(model, piece, block: int = 512) -> torch.Tensor:
    """c (M, c_dim) over a performance's matched notes, score GRU state carried across blocks;
    the beat context over the whole score once."""
    enc, hs, out = model.score, None, []
    ctx = enc.context(torch.from_numpy(piece.beat_ctx.T.copy())[None])
    for s in range(0, piece.n, block):
        feat, roll, pos, *_ = window_arrays(piece, s, min(s + block, piece.n))
        bp = torch.from_numpy(piece.beat[s:min(s + block, piece.n)].astype(np.int64))[None]
        c, hs = enc(torch.from_numpy(feat.astype(np.int64))[None], torch.from_numpy(roll).float()[None],
                    torch.from_numpy(pos.astype(np.int64))[None], None, bp, hs, ctx=ctx)
        out.append(c[0])
    return torch.cat(out)


@torch.inference_mode()
def prime_batch(model, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Teacher-forced inference network from the zero state, z = posterior mean (`CVRNN.prime`).

    c (V, T, c_dim), x (V, T, H) long classes -> h (layers, V, H). Same steps as Renderer.prime.
    """
    return model.prime(c, x, model.init_state(x.shape[0])[0])


@torch.inference_mode()
def decode_batch(model, c: torch.Tensor, h: torch.Tensor, gen: torch.Generator, *, z_mode: str,
                 greedy: bool = False, temps: np.ndarray | None = None, scope: torch.Tensor | None = None,
                 x_prev: torch.Tensor | None = None,
                 ) -> torch.Tensor:
    """Free-running generation for V streams with their own features (`CVRNN.step`).

    c (V, T, c_dim), h (layers, V, H); z_mode 'zero' | 'prior' (sample) | 'prior_mean';
    greedy takes each head's most likely class instead of sampling it; temps (heads,) overrides
    both (`CVRNN.step`: > 0 sample, 0 most likely, EXPECTED the expected class); scope (V, T, heads) bool
    and x_prev (V, heads) as in Renderer.decode_steps. Returns classes (V, T, heads).
    The random draws follow Renderer.decode_steps (z noise, then one uniform per head).
    """
    if z_mode not in ("zero", "prior", "prior_mean"):
        raise ValueError(f"unknown z_mode {z_mode!r}")
    V, T = c.shape[:2]
    c_gen, c_state = model.precompute(c)
    if temps is None:
        temps = np.full(len(HEADS), 0.0 if greedy else 1.0, np.float32)
    out = []
    for t in range(T):
        eps = torch.randn((V, model.cfg.z_dim), generator=gen) if z_mode == "prior" else None
        z = model.draw_z(h[-1], z_mode, eps=eps)
        u = torch.rand((V, len(HEADS)), generator=gen)
        x_prev, h = model.step(h, c_gen[:, t], c_state[:, t], z, u, temps,
                               keep=None if scope is None else ~scope[:, t], x_prev=x_prev)
        out.append(x_prev)
    return torch.stack(out, 1)


def table2_performance(model, piece, starts: np.ndarray, seed: int) -> dict:
    """Predictions (S, 40, 4) of every method and the human values for one performance
    (the four parameters of the paper's Table 2; the pedal heads are decoded, not scored)."""
    horizon = max(HORIZONS)
    target = piece.target.astype(np.int64)
    human = M.gather_windows(target, starts, horizon).astype(float)[..., :4]
    preds = {"prime_mean": M.prime_mean(target[:, :4], starts, PRIME, horizon)}
    c = piece_features(model, piece)
    x = targets_to_classes(torch.from_numpy(target))
    prime_idx = torch.from_numpy(starts[:, None] - PRIME + np.arange(PRIME)[None])
    next_idx = torch.from_numpy(starts[:, None] + np.arange(horizon)[None])
    h = prime_batch(model, c[prime_idx], x[prime_idx])
    gen = torch.Generator().manual_seed(seed)
    scope = torch.from_numpy(piece.scope)[next_idx]
    x_prev = x[torch.from_numpy(starts - 1)]
    point = np.array([POINT_TEMPERATURE[k] for k in HEADS], np.float32)
    for name, z_mode, temps in (("model_z0", "zero", None), ("model_prior", "prior", None),
                                ("model_prior_mean", "prior_mean", None),
                                ("model_prior_mean_greedy", "prior_mean", np.zeros(len(HEADS), np.float32)),
                                ("model_point", "prior_mean", point)):
        cls = decode_batch(model, c[next_idx], h, gen, z_mode=z_mode, temps=temps, scope=scope, x_prev=x_prev)
        preds[name] = classes_to_targets(cls).numpy().astype(float)[..., :4]
    return {"human": human, **preds}


def table2(model, pieces: list, n_starts: int, seed: int) -> dict:
    """The Table 2 protocol over a split: {method: {param: {'10': metrics, '40': metrics}}}."""
    per = defaultdict(list)
    for i, piece in enumerate(pieces):
        starts = M.start_points(piece.n, n_starts, PRIME, max(HORIZONS), (seed, i))
        if len(starts) == 0:
            continue
        for k, v in table2_performance(model, piece, starts, seed + i).items():
            per[k].append(v)
    out = {}
    for method in METHODS_A:
        out[method] = {}
        for j, name in enumerate(M.PARAMS):
            out[method][name] = {str(hz): M.pooled_within([p[:, :hz, j] for p in per[method]],
                                                          [p[:, :hz, j] for p in per["human"]])
                                 for hz in HORIZONS}
    return out
