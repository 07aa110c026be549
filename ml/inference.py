"""Streaming rendering with a trained CVRNN: a score in, chunks of performed notes out.

    renderer = Renderer.load()                       # once per process (MODEL_CHECKPOINT, DEVICE)
    for chunk in renderer.render(score, seed=1):     # RENDERED_CHUNK_DTYPE arrays, in score order
        ...

Modes (DESIGN section 4): ``prior`` samples z from the learned prior; ``perturb`` uses the
paper's mu + Delta * exp(gamma) (gamma the prior's log-variance, as the paper writes it);
``fixed`` uses a given z (default 0); a ``reference`` (an encoded human performance of the
score, any passage) primes the state, after which any mode continues from the primed prior.
Several variations render in one batched pass. Score features are computed block by block
(CNN over a crop of the roll, MLP, score GRU), so the first notes need not wait for the piece.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ml.data import CNN_STRIDE, MARGIN_FRAMES, head_scope_mask, roll_crop
from ml.defaults import (DEFAULT_TEMPERATURE, DEFAULT_Z_TEMPERATURE, HEAD_TEMPERATURE, PEDAL_HEADS,
                         POINT_TEMPERATURE, REFERENCE_RANDOMNESS)
from ml.cdecode import cpu_decoder
from ml.model import DECIDE, EXPECTED, HEADS, CVRNN, load_model, targets_to_classes
from ml.streams import RenderStream, decode_pass
from render.encoding import ENCODED_DTYPE, RENDERED_DTYPE, TEMPO_STEPS_PER_OCTAVE, decode
from render.features import FEATURE_NAMES, beat_context, beat_index, piano_roll, roll_notes, score_features
from render.score import DEFAULT_TEMPO_BPM, Score

RENDERED_CHUNK_DTYPE = np.dtype(RENDERED_DTYPE.descr + [("variation", "i2"), ("index", "i4"), ("z", "f4", (5,))])


def point_temperature() -> np.ndarray:
    """(H,) per-head "temperatures" of the point estimate (`ml.defaults.POINT_TEMPERATURE`)."""
    return np.array([POINT_TEMPERATURE[h] for h in HEADS], np.float32)


def head_temperatures(temperature: float) -> np.ndarray:
    """(H,) per-head sampling temperatures for the user's randomness ``temperature`` (0..2).

    The ordinal heads: their expected class (`EXPECTED`) at 0, else `ml.defaults.HEAD_TEMPERATURE`
    scaled by temperature / REFERENCE_RANDOMNESS; the pedal heads at their HEAD_TEMPERATURE
    whatever the randomness; a head whose HEAD_TEMPERATURE is EXPECTED keeps it.
    """
    base = np.array([HEAD_TEMPERATURE[h] for h in HEADS], np.float32)
    pedal = np.array([h in PEDAL_HEADS for h in HEADS])
    t = float(temperature)
    notes = np.float32(EXPECTED) if t == 0.0 else base * np.float32(t / REFERENCE_RANDOMNESS)
    return np.where((base < 0) | pedal, base, notes).astype(np.float32)


MODES = ("prior", "perturb", "fixed")
GAIN_HEADS = ("velocity", "duration", "deviation", "tempo")  # the heads `Renderer.start`'s gains scale
PEDAL_MODES = ("model", "none", "reference")  # whose sustain and soft pedal a render plays
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "checkpoints" / "cvrnn.pt"
LEAD_IN_SEC = 0.3


@dataclass
class Reference:
    """An encoded performance of (part of) a score: ``index`` (M,) score-note indices in
    increasing order and ``encoded`` (M,) ENCODED_DTYPE values of those notes.

    ``score`` is the score the indices point into. Left None, it is the score being rendered;
    set, the reference primes the state on its own score and any other score can continue in
    its style (a preset applied to another piece).
    """

    index: np.ndarray
    encoded: np.ndarray
    score: Score | None = None

    tempo_ratio: float = 1.0  # g: the performance's overall speed relative to the score's marking

    def __post_init__(self):
        if len(self.index) != len(self.encoded) or len(self.index) == 0:
            raise ValueError("a reference needs one encoded value per index, and at least one note")
        if np.any(np.diff(self.index) <= 0):
            raise ValueError("reference indices must be strictly increasing")
        if self.encoded.dtype != ENCODED_DTYPE:
            raise ValueError(f"reference.encoded must have dtype ENCODED_DTYPE, got {self.encoded.dtype}")
        if self.score is not None and self.index.max() >= self.score.n_notes:
            raise ValueError("the reference has notes beyond the end of its score")


def save_reference(path: str | Path, ref: Reference) -> None:
    """Write a Reference (with its score's notes and tempo marks, when it has a score) as .npz."""
    arrays = dict(index=np.asarray(ref.index, np.int64), encoded=ref.encoded, tempo_ratio=np.float64(ref.tempo_ratio))
    if ref.score is not None:
        arrays.update(notes=ref.score.notes, tempo_marks=ref.score.tempo_marks,
                      dynamics_marks=ref.score.dynamics_marks, marks=ref.score.marks)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def load_reference(path: str | Path) -> Reference:
    """Read a Reference written by :func:`save_reference`.

    Raises
    ------
    ValueError
        When the file is not a saved reference.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            score = None
            if "notes" in z:
                score = Score(notes=z["notes"], tempo_marks=z["tempo_marks"], dynamics_marks=z["dynamics_marks"],
                              marks=z["marks"] if "marks" in z else None)
            encoded = z["encoded"]
            ratio = float(z["tempo_ratio"]) if "tempo_ratio" in z else 1.0
            if "tempo_dev_bpm" in (encoded.dtype.names or ()):
                encoded, ratio = _migrate_v1(encoded, z["index"], score)
            return Reference(index=z["index"], encoded=encoded, score=score, tempo_ratio=ratio)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a saved reference performance ({exc})") from exc


def _migrate_v1(encoded: np.ndarray, index: np.ndarray, score: Score | None) -> tuple[np.ndarray, float]:
    """A reference saved by model v1 (tempo as bpm from the written tempo, no pedal) in v2's
    form: g the median ratio of its tempo to the written one, the classes the log ratio to g * W.
    Returns (encoded ENCODED_DTYPE, g)."""
    out = np.zeros(len(encoded), ENCODED_DTYPE)
    for k in ("velocity", "duration_100", "deviation_100"):
        out[k] = encoded[k]
    w = written_tempi(score, None)[index] if score is not None else np.full(len(encoded), DEFAULT_TEMPO_BPM)
    ratio = np.maximum(w + encoded["tempo_dev_bpm"], 10.0) / w
    g = float(np.median(ratio))
    out["tempo_log_50"] = np.clip(np.round(TEMPO_STEPS_PER_OCTAVE * np.log2(ratio / g)), -50, 49)
    return out, g


def written_tempi(score: Score, base_tempo_bpm: float | None) -> np.ndarray:
    """Written tempo per note (bpm). A user base tempo rescales the marks so the first is it."""
    w = score.notes["tempo_bpm"].astype(float)
    known = np.isfinite(w) & (w > 0)
    if not known.any():  # no metronome mark nor tempo word: a tempo predicted from the score
        from render.tempo import predict_tempo_bpm
        return np.full(len(w), float(base_tempo_bpm or predict_tempo_bpm(score.notes)))
    first = w[np.argmax(known)]
    # Marks are already "in force" per note; only notes before the first mark lack one.
    w = np.where(known, w, first)
    if base_tempo_bpm:
        w = w * float(base_tempo_bpm) / first
    return w


class Renderer:
    """A trained model, loaded once, that renders scores as streams of note chunks."""

    def __init__(self, model: CVRNN, device: torch.device, meta: dict | None = None):
        self.model, self.device, self.meta = model.eval(), device, meta or {}
        self.cfg = model.cfg
        # On a CPU the decode loop runs compiled (ml.cdecode; numpy, ml.fastdecode, without a C
        # compiler or with DECODER=numpy): many times faster there than torch's per-step calls.
        self.fast = cpu_decoder(model) if device.type == "cpu" else None

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, device: str | None = None) -> Renderer:
        """Load a checkpoint (default: env MODEL_CHECKPOINT, else the shipped one) on env DEVICE."""
        path = Path(checkpoint or os.environ.get("MODEL_CHECKPOINT") or DEFAULT_CHECKPOINT)
        if not path.is_file():
            raise FileNotFoundError(f"model checkpoint not found: {path}")
        dev = torch.device(device or os.environ.get("DEVICE") or "cpu")
        model, ckpt = load_model(path, device=dev)
        return cls(model, dev, {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "state")})

    # -- score features -------------------------------------------------------------------
    @torch.inference_mode()
    def score_blocks(self, score: Score, written: np.ndarray, block: int = 256, max_block: int = 4096):
        """Yield (start, c) with c (n, c_dim) for consecutive blocks of notes: the first of
        ``block`` notes, each next one 4 times longer up to ``max_block``.

        The non-causal beat context runs once over the whole score first (a few ms: the first
        block waits for it), the CNN, MLP and score GRU block by block. The first block is short
        for the first chunk's sake; the later ones long because each block's roll crop carries
        +-MARGIN_FRAMES that the CNN computes again (256-note blocks: 65 % more frames than the
        piece has, 63 ms against 43 for the Maple Leaf Rag in one block)."""
        feat, frame = score_features(score.notes, written, score.marks)
        roll = piano_roll(roll_notes(score.notes))
        enc, hs = self.model.score, None
        score_gru = getattr(self.fast, "score_gru", None)  # the compiled one on a CPU
        ctx_np = beat_context(score.notes, written, score.marks, feat[:, FEATURE_NAMES.index("harmony")])
        beats = torch.from_numpy(ctx_np.T.copy()).to(self.device)[None]
        ctx = enc.context(beats)                                          # (1, ctx_out, n_beats)
        bidx = torch.from_numpy(beat_index(score.notes["onset_beat"])).to(self.device)
        s, size = 0, block
        while s < len(feat):
            e = min(s + size, len(feat))
            f0 = (int(frame[s]) - MARGIN_FRAMES) // CNN_STRIDE * CNN_STRIDE
            length = -(-(int(frame[e - 1]) + MARGIN_FRAMES - f0) // CNN_STRIDE) * CNN_STRIDE
            crop = torch.from_numpy(roll_crop(roll, f0, length)).float().to(self.device)[None]
            pos = torch.from_numpy((frame[s:e] - f0) // CNN_STRIDE).long().to(self.device)[None]
            ft = torch.from_numpy(feat[s:e].astype(np.int64)).to(self.device)[None]
            c, hs = enc(ft, crop, pos, None, bidx[s:e][None], hs, ctx=ctx, gru=score_gru)
            yield s, c[0]
            s, size = e, min(4 * size, max(block, max_block))

    # -- the recurrent core -----------------------------------------------------------------
    @torch.inference_mode()
    def prime(self, c: torch.Tensor, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Run the inference network over a human performance (teacher forcing, z = posterior mean).

        c (M, c_dim) score features of the reference notes, x (M, H) long classes;
        h (layers, V, H) or None. Returns the primed state (layers, V, H).
        """
        m = self.model
        V = 1 if h is None else h.shape[1]
        if h is None:
            h = m.init_state(1, self.device)[0]
        return m.prime(c[None].expand(V, -1, -1), x[None].expand(V, -1, -1), h)

    @torch.inference_mode()
    def decode_steps(self, c: torch.Tensor, h: torch.Tensor, gen: torch.Generator, *, mode: str = "prior",
                     delta: torch.Tensor | None = None, z_fixed: torch.Tensor | None = None,
                     temperature=1.0, scope: np.ndarray | None = None, x_prev: torch.Tensor | None = None,
                     z_temperature: float = 1.0):
        """Generate notes for features c (n, c_dim) from state h (layers, V, H) with `CVRNN.step`.

        delta: (V, Z) or (n, V, Z) for ``perturb``; z_fixed: (V, Z) or (n, V, Z) for ``fixed``;
        temperature: one number or (H,) per head (0 = the most likely class); scope (n, H) bool:
        where False the head repeats the previous note's class (the tempo within a beat, the
        pedal within a chord), x_prev (V, H) the note before the first; z_temperature scales the
        prior's spread in mode ``prior`` (z = mu + z_temperature * eps * sigma).
        Returns classes (n, V, H) long, z (n, V, Z), new h.
        """
        m = self.model
        n_notes, V = c.shape[0], h.shape[1]
        c_gen, c_state = m.precompute(c)
        temps = np.broadcast_to(np.asarray(temperature, np.float32), (len(HEADS),))
        keep = None if scope is None else torch.from_numpy(~np.asarray(scope, bool)).to(c.device)
        xs, zs = [], []
        for i in range(n_notes):
            eps = (z_temperature * torch.randn((V, self.cfg.z_dim), generator=gen, device=c.device)
                   if mode == "prior" else None)
            d = None if delta is None else delta if delta.dim() == 2 else delta[i]
            zf = None if z_fixed is None else z_fixed if z_fixed.dim() == 2 else z_fixed[i]
            z = m.draw_z(h[-1], mode, eps=eps, delta=d, z_fixed=zf)
            u = torch.rand((V, len(HEADS)), generator=gen, device=c.device)
            x_prev, h = m.step(h, c_gen[i], c_state[i], z, u, temps,
                               keep=None if keep is None else keep[i], x_prev=x_prev)
            xs.append(x_prev), zs.append(z)
        return torch.stack(xs), torch.stack(zs), h

    # -- the public entry points ------------------------------------------------------------
    def render(self, score: Score, **kwargs) -> Iterator[np.ndarray]:
        """Render ``score``; yields RENDERED_CHUNK_DTYPE arrays of up to ``chunk_notes`` notes per
        variation (all variations of the same notes together), in score order. The arguments
        are those of `start`, which checks them before the first chunk (ValueError)."""
        stream = self.start(score, **kwargs)

        def chunks():
            while (chunk := self.step([stream])[0]) is not None:
                yield chunk

        return chunks()

    def step(self, streams: list[RenderStream]) -> list[np.ndarray | None]:
        """The next chunk of each stream, decoded in one batched pass (ml.streams): several
        renders (scores, controls, takes) advance together; None for a stream that has ended."""
        return decode_pass(self, streams)

    @torch.inference_mode()
    def start(self, score: Score, *, seed: int = 0, mode: str = "prior", delta=None, z=None,
              reference: Reference | None = None, base_tempo_bpm: float | None = None,
              expressiveness: float = 1.0, temperature: float = DEFAULT_TEMPERATURE,
              variations: int = 1, chunk_notes: int = 64, z_temperature: float = DEFAULT_Z_TEMPERATURE,
              pedal: str = "model", max_chunk_notes: int | None = None,
              gains: dict | None = None) -> RenderStream:
        """Begin rendering ``score``: check the arguments, prime on a reference; `step` then
        yields its chunks (alone, or in one pass with other renders).

        delta: 5 numbers, or an (N, 5) per-note curve, for ``perturb``; z: 5 numbers or (N, 5) for
        ``fixed`` (default zeros). expressiveness scales the deviations from a deadpan rendering
        (0 deadpan timing and flat dynamics, 1 the model, >1 exaggerated), times each head's
        gain (`gains`, {head: gain} for velocity, duration, deviation, tempo; default 1: an
        evaluation knob, `ml.evaluate --gains`; gains > 1 on v2.9 cost accuracy, ml/MODEL_CARD.md).
        temperature is the
        note-level randomness (`head_temperatures`): 0, the default, takes the expected class of
        velocity, duration, onset deviation and tempo; more samples them, ever more freely; or
        one temperature per head (0 the most likely class, `EXPECTED` the expected one, `DECIDE`
        for the sustain head).
        base_tempo_bpm sets the first marked tempo (the others keep their ratios); without it a
        ``reference`` sets the speed (its pianist's overall ratio to the marking). z_temperature
        scales the spread of z around the prior mean in mode ``prior`` (`DEFAULT_Z_TEMPERATURE`).
        pedal: ``model`` (the model's sustain and soft pedal), ``none`` (no pedal) or
        ``reference`` (the reference pianist's pedal on the notes it played, the model's
        elsewhere; needs a reference of this score's own notes, else the model's throughout).
        chunk_notes is the first chunk's size; later chunks double up to max_chunk_notes
        (default chunk_notes: every chunk the same size). The notes do not depend on either.
        Raises ValueError on a bad argument.
        """
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
        if not 1 <= variations <= 64:
            raise ValueError("variations must be between 1 and 64")
        if not 0.0 <= expressiveness <= 3.0:
            raise ValueError("expressiveness must be between 0 and 3")
        gains = gains or {}
        if set(gains) - set(GAIN_HEADS) or not all(0.0 <= float(g) <= 3.0 for g in gains.values()):
            raise ValueError(f"gains: {{head: 0..3}} for heads among {', '.join(GAIN_HEADS)}")
        gain = expressiveness * np.array([float(gains.get(k, 1.0)) for k in GAIN_HEADS])
        if np.ndim(temperature) == 0:
            if not 0.0 <= temperature <= 2.0:
                raise ValueError("temperature must be between 0 and 2")
            temps = head_temperatures(temperature)
        else:  # one temperature per head (evaluation sweeps)
            temps = np.asarray(temperature, np.float32)
            special = temps.shape == (len(HEADS),) and (
                (temps == EXPECTED) | ((temps == DECIDE) & (np.array(list(HEADS)) == "sustain")))
            if temps.shape != (len(HEADS),) or np.any((temps < 0) & ~special) or np.any(temps > 2):
                raise ValueError(f"per-head temperatures must be {len(HEADS)} numbers between 0 and 2 "
                                 f"(or {EXPECTED:g}: the expected class; for the sustain head {DECIDE:g}: "
                                 f"decide whether the pedal comes up, then draw the pattern)")
        if base_tempo_bpm is not None and not 20 <= base_tempo_bpm <= 400:
            raise ValueError("base tempo must be between 20 and 400 bpm")
        if chunk_notes < 1:
            raise ValueError("chunk_notes must be positive")
        max_chunk_notes = chunk_notes if max_chunk_notes is None else max_chunk_notes
        if max_chunk_notes < chunk_notes:
            raise ValueError("max_chunk_notes must be at least chunk_notes")
        if not 0.0 <= z_temperature <= 2.0:
            raise ValueError("z_temperature must be between 0 and 2")
        if pedal not in PEDAL_MODES:
            raise ValueError(f"pedal must be one of {', '.join(PEDAL_MODES)} (got {pedal!r})")
        if pedal == "reference" and reference is None:
            raise ValueError("pedal 'reference' needs a reference performance")
        N, V, Z = score.n_notes, variations, self.cfg.z_dim
        pedal_fixed = np.full((N, 2), -1 if pedal != "none" else 0, np.int64)  # -1: the model's
        delta_t = self._per_note(delta, N, V, "delta") if mode == "perturb" else None
        z_t = self._per_note(z if z is not None else np.zeros(Z), N, V, "z") if mode == "fixed" else None
        gen = torch.Generator(device=self.device).manual_seed(int(seed))
        written = written_tempi(score, base_tempo_bpm)
        if reference is not None and base_tempo_bpm is None:
            written = written * float(reference.tempo_ratio)
        h = self.model.init_state(V, self.device)[0]
        blocks = self.score_blocks(score, written)
        if reference is not None:
            x_ref = targets_to_classes(torch.from_numpy(np.stack(
                [reference.encoded[k].astype(np.int64) for k in ENCODED_DTYPE.names], -1)).to(self.device))
            own = reference.score is None or _same_notes(reference.score, score)
            if own and reference.index.max() >= N:
                raise ValueError("the reference has notes beyond the end of the score")
            if own:
                blocks = list(blocks)  # the reference may lie anywhere in the piece
                c_all = torch.cat([c for _, c in blocks])
            else:  # another piece: prime on the reference's own score, then continue on this one
                rs = reference.score
                ref_blocks = self.score_blocks(rs, written_tempi(rs, None) * reference.tempo_ratio)
                c_all = torch.cat([c for _, c in ref_blocks])
            h = self.prime(c_all[torch.from_numpy(reference.index).to(self.device)], x_ref, h)
            if pedal == "reference" and own:
                pedal_fixed[reference.index, 0] = reference.encoded["sustain"]
                pedal_fixed[reference.index, 1] = reference.encoded["soft"]
        if self.fast is not None:
            h = h.cpu().numpy()
            delta_t = None if delta_t is None else delta_t.cpu().numpy()
            z_t = None if z_t is None else z_t.cpu().numpy()
        return RenderStream(score=score, variations=V, chunk_notes=int(chunk_notes),
                            max_chunk_notes=int(max_chunk_notes), mode=mode, temps=temps,
                            z_temperature=float(z_temperature), gain=gain,
                            written=written, pedal_fixed=pedal_fixed,
                            scope=head_scope_mask(score.notes["onset_beat"]), delta=delta_t, z_fixed=z_t,
                            blocks=iter(blocks), h=h, rng=np.random.default_rng(int(seed)), gen=gen,
                            states=[None] * V)

    def _per_note(self, value, N, V, name):
        a = np.asarray(value, np.float32)
        if a.shape == (self.cfg.z_dim,):
            return torch.from_numpy(a).to(self.device).expand(V, -1)
        if a.shape == (N, self.cfg.z_dim):
            return torch.from_numpy(a).to(self.device)[:, None, :].expand(-1, V, -1)
        raise ValueError(f"{name} must be {self.cfg.z_dim} numbers or one row of {self.cfg.z_dim} per note "
                         f"({N} x {self.cfg.z_dim}); got shape {a.shape}")

    def _to_notes(self, score, idx, written, x, z, states, gain, pedal_fixed):
        """Classes (n, V, H) -> RENDERED_CHUNK_DTYPE rows, variation-major within the chunk;
        gain (4,) scales the deviations of velocity, duration, onset deviation and tempo;
        pedal_fixed (n, 2) sustain and soft classes that replace the model's where >= 0."""
        g_vel, g_dur, g_dev, g_tempo = gain
        notes = score.notes[idx]
        out = []
        for v in range(x.shape[1]):
            enc = np.zeros(len(idx), ENCODED_DTYPE)
            vel = x[:, v, 0].astype(float)
            centre = np.where(notes["velocity_written"] > 0, notes["velocity_written"], 64.0)
            enc["velocity"] = np.clip(np.round(centre + g_vel * (vel - centre)), 1, 127)
            dur = x[:, v, 1] + 1.0
            written_100 = notes["duration_beat"] * 100.0
            log_written = np.log(np.maximum(written_100, 1))
            scaled = np.exp(log_written + g_dur * (np.log(dur) - log_written))
            enc["duration_100"] = np.clip(np.round(np.where(written_100 > 0, scaled, dur)), 1, 800)
            enc["deviation_100"] = np.round((x[:, v, 2] - 50) * g_dev)
            enc["tempo_log_50"] = np.round((x[:, v, 3] - 50) * g_tempo)
            enc["sustain"] = np.where(pedal_fixed[:, 0] >= 0, pedal_fixed[:, 0], x[:, v, 4])
            enc["soft"] = np.where(pedal_fixed[:, 1] >= 0, pedal_fixed[:, 1], x[:, v, 5])
            onset, duration, tempo, states[v] = decode(notes["onset_beat"], written, enc, states[v])
            r = np.zeros(len(idx), RENDERED_CHUNK_DTYPE)
            r["id"], r["pitch"], r["index"], r["variation"] = notes["id"], notes["pitch"], idx, v
            r["onset_sec"] = np.maximum(onset + LEAD_IN_SEC, 0.0)
            r["duration_sec"], r["tempo_bpm"] = np.maximum(duration, 0.01), tempo
            for k in ENCODED_DTYPE.names:
                r[k] = enc[k]
            r["z"] = z[:, v]
            out.append(r)
        return np.concatenate(out)


def reference_from_file(score: Score, path: str | Path, *, base_tempo_bpm: float | None = None):
    """A Reference from a performance of ``score``: a match file, or a performance MIDI file
    aligned to the score automatically (render.align). Returns (Reference, AlignmentReport or
    None for match files).

    Raises
    ------
    PerformanceError, AlignmentError
        When the file cannot be read or does not fit the score.
    """
    path = Path(path)
    if path.suffix.lower() == ".match":
        from render.performance import load_aligned
        return reference_from_aligned(score, load_aligned(path), base_tempo_bpm=base_tempo_bpm), None
    from render.align import align_midi
    aligned, report = align_midi(score, path)
    return reference_from_aligned(score, aligned, base_tempo_bpm=base_tempo_bpm), report


def _same_notes(a: Score, b: Score) -> bool:
    return a is b or (a.n_notes == b.n_notes and np.array_equal(a.notes["id"], b.notes["id"])
                      and np.array_equal(a.notes["onset_beat"], b.notes["onset_beat"]))


def reference_from_aligned(score: Score, perf, *, base_tempo_bpm: float | None = None) -> Reference:
    """Encode an aligned performance (render.performance.AlignedPerformance) against ``score``.

    Performed notes are linked to the score's notes by id (``n12-2``), or by the id without the
    repeat suffix when the score is not unfolded. The encoding uses the score's written tempo
    (as the render will), so the primed tempo deviations mean the same thing.

    Raises
    ------
    AlignmentError
        When fewer than 8 performed notes link to the score.
    """
    from render.encoding import encode, tempo_ratio
    from render.errors import AlignmentError
    from render.marks import strip_pass

    ids = {nid: i for i, nid in enumerate(score.notes["id"].tolist())}
    base = {}
    for i, b in enumerate(score.base_ids().tolist()):
        base.setdefault(b, i)
    src = perf.score.notes
    rows, idx = [], []
    for k in np.flatnonzero(perf.matched):
        nid = str(src["id"][k])
        j = ids.get(nid, base.get(strip_pass(nid)))
        if j is not None:
            rows.append(k)
            idx.append(j)
    idx, rows = np.asarray(idx), np.asarray(rows)
    if len(idx) < 8:
        raise AlignmentError(f"only {len(idx)} performed notes match the score's notes", path=perf.source or None)
    order = np.argsort(idx, kind="stable")
    idx, rows = idx[order], rows[order]
    keep = np.concatenate([[True], np.diff(idx) > 0])
    idx, rows = idx[keep], rows[keep]
    played = perf.notes[perf.match_index[rows]]
    written = written_tempi(score, base_tempo_bpm)[idx]
    g = tempo_ratio(score.notes["onset_beat"][idx], played["onset_sec"], written, score.notes["is_grace"][idx])
    enc, _, _ = encode(score.notes["onset_beat"][idx], g * written, played["onset_sec"], played["duration_sec"],
                       played["velocity"], score.notes["is_grace"][idx], pedal=perf.pedal)
    return Reference(index=idx, encoded=enc, score=score, tempo_ratio=g)
