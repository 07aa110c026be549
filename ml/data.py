"""Training batches from the dataset cache (render.dataset): streams of pieces, TBPTT windows.

B streams run in parallel; each plays its performances one after another and is cut into
windows of `window` notes. The recurrent states are carried from one window to the next of
the same performance and reset when a stream moves to its next performance. A window never
spans two performances (its tail is padded and masked), so each window needs one roll crop.
"""
from __future__ import annotations

import copy
import json
import multiprocessing as mp
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from render.encoding import ENCODED_DTYPE, beat_starts, onset_groups
from render.features import BEAT_FEATURES, FEATURE_NAMES, piano_roll, transpose_features
from ml.model import HEAD_SCOPE, HEADS, ROLL_PITCH_HI, ROLL_PITCH_LO

CNN_STRIDE = 4
MARGIN_FRAMES = 80  # +-7 beats of windows (56 frames) plus the CNN's receptive field, rounded
MAX_SPAN_FRAMES = 1024  # a window ends early rather than span more (gaps where nobody played)
CTX_MARGIN_BEATS = 64   # the beat context's receptive field (63 beats) each side of a window
N_TARGETS = len(ENCODED_DTYPE.names)


def head_scope_mask(onset_beat: np.ndarray) -> np.ndarray:
    """(M, H) bool: which notes carry each head's target (`ml.model.HEAD_SCOPE`)."""
    grp, first = onset_groups(onset_beat)
    group_first = np.zeros(len(onset_beat), bool)
    group_first[first] = True
    beat_first = np.zeros(len(onset_beat), bool)
    beat_first[first[beat_starts(onset_beat[first])]] = True
    scope = {"note": np.ones(len(onset_beat), bool), "beat": beat_first, "group": group_first}
    return np.stack([scope[HEAD_SCOPE[h]] for h in HEADS], axis=1)


@dataclass
class Piece:
    feat: np.ndarray        # (M, F) int16
    frame: np.ndarray       # (M,) int32
    target: np.ndarray      # (M, 6) int16, ENCODED_DTYPE order
    onset_beat: np.ndarray  # (M,) f8
    spans: np.ndarray       # (N, 3) int32
    meta: dict
    beat: np.ndarray | None = None      # (M,) int32 row of beat_ctx
    beat_ctx: np.ndarray | None = None  # (nb, D) float32 per-beat score summary
    scope: np.ndarray | None = None     # (M, H) bool head scope (`head_scope_mask`)
    roll: np.ndarray | None = None  # (128, frames) uint8, drawn once by `load_piece`

    @property
    def n(self) -> int:
        return len(self.feat)


def load_piece(path: Path) -> Piece:
    with np.load(path) as z:
        spans = z["spans"]
        return Piece(feat=z["feat"], frame=z["frame"], target=z["target"], onset_beat=z["onset_beat"],
                     spans=spans, meta=json.loads(str(z["meta"])), beat=z["beat"],
                     beat_ctx=z["beat_ctx"].astype(np.float32), scope=head_scope_mask(z["onset_beat"]),
                     roll=piano_roll(spans))


def beat_crop(beat_ctx: np.ndarray, beats: np.ndarray, transpose: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The beat summaries that notes on ``beats`` (T,) read through the context's receptive
    field: (D, L) float32 rows beats[0] - CTX_MARGIN_BEATS .. beats[-1] + CTX_MARGIN_BEATS (zero
    beyond the piece), and the notes' positions (T,) in it."""
    b0 = int(beats[0]) - CTX_MARGIN_BEATS
    L = int(beats[-1]) + CTX_MARGIN_BEATS + 1 - b0
    out = np.zeros((L, BEAT_FEATURES), np.float32)
    s0, s1 = max(b0, 0), min(b0 + L, len(beat_ctx))
    out[s0 - b0:s1 - b0] = beat_ctx[s0:s1]
    if transpose:  # columns 1-3 are mean / lowest / highest pitch (/ 64 - 1) where the beat has notes
        has = out[:, 0] > 0
        out[has, 1:4] += transpose / 64.0
    return out.T, beats - b0


# Whole works moved from the corpus' train split to our validation (model v2): the corpus' val
# split has 9 works, 4 of them with one pianist, too few to trust whole-piece figures. Chosen
# once, by composer quota and a hash of the name, among train works with 4+ pianists and a score.
EXTRA_VAL_WORKS = (
    "Bach/Prelude_bwv_889", "Bach/Fugue_bwv_883", "Beethoven/Piano_Sonatas_31-2", "Beethoven/Piano_Sonatas_11-1",
    "Beethoven/Piano_Sonatas_27-1", "Chopin/Etudes_op_10_1", "Chopin/Etudes_op_25_8", "Chopin/Etudes_op_10_8",
    "Liszt/Concert_Etude_S145_1", "Schubert/Piano_Sonatas_664-1", "Haydn/Keyboard_Sonatas_50-1", "Mozart/K332-1",
)


def split_files(root: Path, split: str) -> list[Path]:
    """The cache files of our ``split``: 'train' without EXTRA_VAL_WORKS, 'val' with them."""
    root = Path(root)

    def npz(folder):  # files still being written by render.dataset end in .tmp.npz
        return [f for f in sorted((root / folder).glob("*.npz")) if not f.name.endswith(".tmp.npz")]

    def work(f):
        with np.load(f) as z:
            return json.loads(str(z["meta"]))["work"]

    if split == "train":
        return [f for f in npz("train") if work(f) not in EXTRA_VAL_WORKS]
    files = npz(split)
    if split == "val":
        files += [f for f in npz("train") if work(f) in EXTRA_VAL_WORKS]
    return files


def load_split(root: Path, split: str, *, robust_only: bool = False, limit: int = 0,
               max_clip: float = 1.0) -> list[Piece]:
    """Every performance of our split in the cache (`split_files`), sorted by file name.

    ``max_clip`` drops performances whose onset-deviation clip rate is above it: there the
    encoded tempo could not follow the performance (very fast quarter-note tempi, broken
    automatic alignments), and nearly every deviation target sits on a range limit.
    """
    files = split_files(root, split)
    if limit:
        files = files[:limit]
    pieces = [load_piece(f) for f in files]
    if robust_only:
        pieces = [p for p in pieces if p.meta.get("robust") in ("", "1.0", None)]
    pieces = [p for p in pieces if p.meta.get("clip_rate", {}).get("deviation_100", 0.0) <= max_clip]
    return [p for p in pieces if p.n > 1]


def roll_crop(roll: np.ndarray, f0: int, length: int, transpose: int = 0) -> np.ndarray:
    """(96, length) uint8 rows ROLL_PITCH_LO..HI of the piece transposed, frames f0..f0+length."""
    out = np.zeros((ROLL_PITCH_HI - ROLL_PITCH_LO, length), np.uint8)
    lo, hi = ROLL_PITCH_LO - transpose, ROLL_PITCH_HI - transpose  # source rows
    r0, r1 = max(lo, 0), min(hi, roll.shape[0])
    c0, c1 = max(f0, 0), min(f0 + length, roll.shape[1])
    if r1 > r0 and c1 > c0:
        out[r0 - lo:r1 - lo, c0 - f0:c1 - f0] = roll[r0:r1, c0:c1]
    return out


def window_arrays(piece: Piece, s: int, e: int, transpose: int = 0):
    """Model inputs of notes s..e-1 of a piece: feat (T, F), roll (96, L), pos (T,), target (T, 6),
    beats (D, Lb), beat_pos (T,), scope (T, H).

    The crop starts MARGIN_FRAMES before the first note (rounded down to the CNN stride) and
    ends MARGIN_FRAMES after the last, so every window a note reads lies inside it.
    """
    frame = piece.frame[s:e]
    f0 = (int(frame[0]) - MARGIN_FRAMES) // CNN_STRIDE * CNN_STRIDE
    length = int(frame[-1]) + MARGIN_FRAMES - f0
    length = -(-length // CNN_STRIDE) * CNN_STRIDE
    feat = transpose_features(piece.feat[s:e], transpose) if transpose else piece.feat[s:e]
    roll = piece.roll if piece.roll is not None else piano_roll(piece.spans)
    beats, beat_pos = beat_crop(piece.beat_ctx, piece.beat[s:e], transpose)
    return (feat, roll_crop(roll, f0, length, transpose), (frame - f0) // CNN_STRIDE, piece.target[s:e],
            beats, beat_pos, piece.scope[s:e])


def window_end(frame: np.ndarray, s: int, width: int) -> int:
    """End of the window starting at note s: ``width`` notes, fewer if they span too many frames."""
    e = min(s + width, len(frame))
    if frame[e - 1] - frame[s] > MAX_SPAN_FRAMES:
        e = s + max(1, int(np.searchsorted(frame[s:e], frame[s] + MAX_SPAN_FRAMES, side="right")))
    return e


def ou_noise(onset_beat: np.ndarray, rng, *, sigma_bpm: float, tau_beat: float, x0):
    """Zero-reverting (Ornstein-Uhlenbeck) noise over score position, vectorised over streams.

    onset_beat (B, T) beats; x0 (B,) the state carried from the previous window.
    Returns noise (B, T) bpm and the new state (B,).
    """
    B, T = onset_beat.shape
    out = np.empty((B, T))
    x = np.asarray(x0, float).copy()
    prev = onset_beat[:, 0]
    eps = rng.standard_normal((B, T))
    for i in range(T):
        a = np.exp(-np.maximum(onset_beat[:, i] - prev, 0.0) / tau_beat)
        x = a * x + sigma_bpm * np.sqrt(1 - a * a) * eps[:, i]
        out[:, i], prev = x, onset_beat[:, i]
    return out, x


class StreamBatcher:
    """Yields batches of B windows; `plan` and `pos` are plain data so training can resume.

    Parameters
    ----------
    pieces : the performances.
    batch : number of streams B.
    window : notes per TBPTT window (the paper's 30) times windows per batch (see train.py).
    """

    def __init__(self, pieces: list[Piece], batch: int, window: int, *, seed: int = 0,
                 transpose: int = 7, ou_sigma_bpm: float = 1.5, ou_tau_beat: float = 8.0):
        self.pieces, self.B, self.W = pieces, batch, window
        self.seed, self.transpose = seed, transpose
        self.ou_sigma, self.ou_tau = ou_sigma_bpm, ou_tau_beat

    def plan_epoch(self, epoch: int) -> dict:
        """Assign performances to streams (longest first to the least loaded), with transpositions."""
        rng = np.random.default_rng((self.seed, epoch))
        order = rng.permutation(len(self.pieces))
        order = sorted(order, key=lambda i: -self.pieces[i].n + rng.uniform(0, 200))
        load, streams = np.zeros(self.B), [[] for _ in range(self.B)]
        for i in order:
            b = int(np.argmin(load))
            streams[b].append(int(i))
            load[b] += self.pieces[i].n
        for s in streams:
            rng.shuffle(s)
        shifts = rng.integers(-self.transpose, self.transpose + 1, len(self.pieces)).tolist()
        return {"epoch": epoch, "streams": streams, "shift": shifts,
                "cursor": [[0, 0] for _ in range(self.B)]}  # (index into stream, note position)

    def batches(self, plan: dict):
        """Yield (arrays, reset (B,) bool) until every stream is done; mutates plan['cursor']."""
        rng = np.random.default_rng((self.seed, plan["epoch"], sum(c[1] for c in plan["cursor"])))
        ou_state = np.zeros(self.B)
        while True:
            items, reset = [], np.zeros(self.B, bool)
            onsets = np.zeros((self.B, self.W))
            for b in range(self.B):
                k, s = plan["cursor"][b]
                stream = plan["streams"][b]
                if k >= len(stream):
                    items.append(None)
                    continue
                p = self.pieces[stream[k]]
                e = window_end(p.frame, s, self.W)
                items.append(window_arrays(p, s, e, plan["shift"][stream[k]]))
                onsets[b, :e - s] = p.onset_beat[s:e]
                onsets[b, e - s:] = p.onset_beat[e - 1]
                reset[b] = s == 0
                plan["cursor"][b] = [k + 1, 0] if e >= p.n else [k, e]
            if all(it is None for it in items):
                return
            batch = collate(items, self.W)
            if self.ou_sigma > 0:
                ou_state[reset] = 0.0
                noise, ou_state = ou_noise(onsets, rng, sigma_bpm=self.ou_sigma, tau_beat=self.ou_tau,
                                           x0=ou_state)
                # In tempo classes (1/50 octave): ou_sigma_bpm is read as classes since v2. Noise
                # is drawn at each beat's first note and carried over the beat (one tempo per beat).
                t = batch["target"]
                noisy = np.clip(np.round(t[..., 3] + noise), -50, 49)
                src = np.where(batch["scope"][..., 3], np.arange(self.W)[None, :], -1)
                src[:, 0] = np.maximum(src[:, 0], 0)
                src = np.maximum.accumulate(src, axis=1)
                t[..., 3] = np.where(batch["mask"], np.take_along_axis(noisy, src, 1), t[..., 3])
            yield batch, reset


def collate(items, T: int):
    """Pad a list of window tuples (or None for idle streams) into batch arrays."""
    B = len(items)
    L = max((it[1].shape[1] for it in items if it is not None), default=CNN_STRIDE)
    L = -(-L // 64) * 64  # few distinct shapes: cuDNN autotuning and allocator caches stay warm
    Lb = max((it[4].shape[1] for it in items if it is not None), default=1)
    Lb = -(-Lb // 32) * 32
    feat = np.zeros((B, T, len(FEATURE_NAMES)), np.int64)
    roll = np.zeros((B, ROLL_PITCH_HI - ROLL_PITCH_LO, L), np.uint8)
    pos = np.zeros((B, T), np.int64)
    target = np.zeros((B, T, N_TARGETS), np.int64)
    target[..., 1] = 1
    mask = np.zeros((B, T), bool)
    beats = np.zeros((B, BEAT_FEATURES, Lb), np.float32)
    beat_pos = np.zeros((B, T), np.int64)
    scope = np.zeros((B, T, len(HEADS)), bool)
    for b, it in enumerate(items):
        if it is None:
            continue
        f, r, p, t, bt, bp, sc = it
        n = len(f)
        feat[b, :n], pos[b, :n], target[b, :n], mask[b, :n] = f, p, t, True
        roll[b, :, :r.shape[1]] = r
        beats[b, :, :bt.shape[1]] = bt
        beat_pos[b, :n], scope[b, :n] = bp, sc
    return {"feat": feat, "roll": roll, "pos": pos, "target": target, "mask": mask, "beats": beats,
            "beat_pos": beat_pos, "scope": scope}


def prefetch(batcher: StreamBatcher, plan: dict, depth: int = 6):
    """Produce batches in a forked process; yields (batch, reset, cursor after the batch).

    The cursor travels with each batch so that the trainer's checkpoint can resume exactly.
    """
    ctx = mp.get_context("fork")
    q = ctx.Queue(depth)

    def run():
        for batch, reset in batcher.batches(plan):
            q.put((batch, reset, copy.deepcopy(plan["cursor"])))
        q.put(None)

    proc = ctx.Process(target=run, daemon=True)
    proc.start()
    try:
        while (item := q.get()) is not None:
            yield item
    finally:
        proc.kill()
        proc.join()
