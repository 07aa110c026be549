"""Renders in progress, decoded together: several scores (jobs of different users, each with its
own controls and takes) advance chunk by chunk in one batched pass of the decoder.

    streams = [renderer.start(score_a, seed=1), renderer.start(score_b, seed=2, variations=3)]
    while any(not s.done for s in streams):
        chunks = renderer.step(streams)    # one chunk per unfinished stream (None once it ended)

A stream's notes do not depend on the other streams of its passes: each draws its noise from
its own generator (ml.fastdecode.Rows), and a row's arithmetic is free of its neighbours (the
compiled decoder sums every product in one order per row, ml.cdecode; the numpy one lays every
pass out on the BLAS row tile, `ml.fastdecode.row_alignment`).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from ml.fastdecode import MODE_CODES, Rows
from ml.model import HEADS
from render.score import Score


@dataclass(eq=False)
class RenderStream:
    """One score's render in progress (`Renderer.start` makes it; `Renderer.step` advances it).

    h is the recurrent state (layers, V, H): numpy on a CPU (ml.fastdecode), torch elsewhere.
    """

    score: Score
    variations: int
    chunk_notes: int            # notes in the next chunk (at most): doubles after each chunk ...
    max_chunk_notes: int        # ... up to this (the first chunk small: sound starts sooner)
    mode: str
    temps: np.ndarray           # (H,) per head (ml.defaults)
    z_temperature: float
    gain: np.ndarray            # (4,) expressiveness x gain on velocity, duration, deviation, tempo
    written: np.ndarray         # (N,) written tempo per note, bpm
    pedal_fixed: np.ndarray     # (N, 2) sustain / soft classes that replace the model's (>= 0)
    scope: np.ndarray           # (N, H) bool: where False the head repeats the previous class
    delta: object               # (V, Z) or (N, V, Z) for perturb, else None
    z_fixed: object             # (V, Z) or (N, V, Z) for fixed, else None
    blocks: Iterator            # (start, c) blocks of score features (Renderer.score_blocks)
    h: object
    rng: np.random.Generator    # the CPU decoder's noise
    gen: torch.Generator        # the torch decoder's noise
    states: list = field(default_factory=list)   # per take: render.encoding.decode's state
    x_prev: np.ndarray | None = None             # (V, H) the last decoded note's classes
    block_start: int = 0
    c: torch.Tensor | None = None                # (n, c_dim) the current block's features
    c_gen: np.ndarray | None = None              # the CPU decoder's precomputed terms of c
    c_state: np.ndarray | None = None
    offset: int = 0                              # notes of the current block already decoded
    done: bool = False

    def next_span(self, fast) -> int:
        """Notes in this stream's next chunk (0 once the score has ended); loads the next block
        of features when the current one is used up."""
        while self.c is None or self.offset >= len(self.c):
            nxt = next(self.blocks, None)
            if nxt is None:
                self.done = True
                return 0
            self.block_start, self.c = nxt
            self.offset = 0
            if fast is not None:
                self.c_gen, self.c_state = fast.precompute(self.c.cpu().numpy())
        return min(self.chunk_notes, len(self.c) - self.offset)

    def advance(self, n: int) -> None:
        """n notes decoded: the next chunk may be twice as long (up to max_chunk_notes)."""
        self.offset += n
        self.chunk_notes = min(2 * self.chunk_notes, self.max_chunk_notes)

    def span_args(self, n: int):
        """Note indices, per-note delta / z_fixed and scope of the next n notes."""
        idx = np.arange(self.block_start + self.offset, self.block_start + self.offset + n)
        sl = slice(idx[0], idx[-1] + 1)

        def per_note(a):
            return None if a is None else a[sl] if a.ndim == 3 else a

        return idx, per_note(self.delta), per_note(self.z_fixed), self.scope[sl]


def decode_pass(renderer, streams: list[RenderStream]) -> list[np.ndarray | None]:
    """The next chunk of each stream (RENDERED_CHUNK_DTYPE rows), decoded in one pass on a CPU
    (one pass per stream with the torch decoder); None for a stream that has ended."""
    spans = [0 if s.done else s.next_span(renderer.fast) for s in streams]
    live = [s for s, n in zip(streams, spans) if n > 0]
    results = {}
    if renderer.fast is not None and live:
        results = _decode_cpu(renderer.fast, live, [n for n in spans if n > 0])
    out = []
    for s, n in zip(streams, spans):
        if n == 0:
            out.append(None)
            continue
        idx, d, zf, scope = s.span_args(n)
        if s in results:
            x, z = results[s]
        else:
            xp = None if s.x_prev is None else torch.from_numpy(s.x_prev).to(renderer.device)
            x, z, s.h = renderer.decode_steps(s.c[s.offset:s.offset + n], s.h, s.gen, mode=s.mode, delta=d,
                                              z_fixed=zf, temperature=s.temps, scope=scope, x_prev=xp,
                                              z_temperature=s.z_temperature)
            x, z = x.cpu().numpy(), z.cpu().numpy()
        s.x_prev = x[-1]
        s.advance(n)
        out.append(renderer._to_notes(s.score, idx, s.written[idx], x, z, s.states, s.gain,
                                      s.pedal_fixed[idx]))
    return out


def _decode_cpu(fast, streams: list[RenderStream], spans: list[int]) -> dict:
    """One pass of the CPU decoder (ml.cdecode or ml.fastdecode) over every take of ``streams``;
    updates each stream's h and returns {stream: (classes (n, V, H), z (n, V, Z))}."""
    n_max, nh, Z = max(spans), len(HEADS), fast.cfg.z_dim
    sizes = [s.variations for s in streams]
    bounds = np.cumsum([0] + sizes)
    B = int(bounds[-1])
    c_gen = np.zeros((n_max, B, streams[0].c_gen.shape[1]), np.float32)
    c_state = np.zeros((n_max, B, streams[0].c_state.shape[1]), np.float32)
    any_perturb = any(s.mode == "perturb" for s in streams)
    any_fixed = any(s.mode == "fixed" for s in streams)
    delta = np.zeros((n_max, B, Z), np.float32) if any_perturb else None
    z_fixed = np.zeros((n_max, B, Z), np.float32) if any_fixed else None
    scope = np.ones((n_max, B, nh), bool)
    x_prev = np.zeros((B, nh), np.int64)
    has_prev = np.zeros(B, bool)
    for s, n, a, b in zip(streams, spans, bounds[:-1], bounds[1:]):
        _, d, zf, sc = s.span_args(n)
        c_gen[:n, a:b] = s.c_gen[s.offset:s.offset + n, None]
        c_state[:n, a:b] = s.c_state[s.offset:s.offset + n, None]
        if d is not None:
            delta[:n, a:b] = d if d.ndim == 3 else d[None]
        if zf is not None:
            z_fixed[:n, a:b] = zf if zf.ndim == 3 else zf[None]
        scope[:n, a:b] = sc[:, None]
        if s.x_prev is not None:
            x_prev[a:b], has_prev[a:b] = s.x_prev, True
    rows = Rows(groups=list(zip(bounds[:-1].tolist(), bounds[1:].tolist())), rngs=[s.rng for s in streams],
                n=np.array(spans), mode=np.repeat([MODE_CODES[s.mode] for s in streams], sizes),
                temps=np.repeat(np.stack([s.temps for s in streams]).astype(np.float32), sizes, 0),
                z_temperature=np.repeat(np.array([[s.z_temperature] for s in streams], np.float32), sizes, 0),
                x_prev=x_prev, has_prev=has_prev, delta=delta, z_fixed=z_fixed, scope=scope)
    h = np.concatenate([s.h for s in streams], 1)
    xs, zs, h = fast.decode_rows(c_gen, c_state, h, rows)
    out = {}
    for s, n, a, b in zip(streams, spans, bounds[:-1], bounds[1:]):
        s.h = h[:, a:b]
        out[s] = (xs[:n, a:b], zs[:n, a:b])
    return out
