"""Default tempo of a score without a metronome mark or tempo word, predicted from its notes.

A ridge regression on log2 quarter-note bpm over a few texture features (note values, 32nd-note
runs, chord size, register spread, time signature, ornaments), fitted on the TRAIN works of
../shared/data, one row per work: the target of a work is the median over its pianists of each
performance's median local tempo (the score: its longest performance's match score).

    python -m render.tempo --fit  --cache .cache/dataset   # refit on train; print coefficients
    python -m render.tempo --eval --cache .cache/dataset   # errors on the val works

What the fit says: shorter note values go with a slower beat, less than in proportion (onset
density doubles, the beat slows by about 0.7 octave); 32nd-note runs mark slow movements; thick
chords and ornaments slow down, a wide register speeds up. Pianists' quarter tempi span 24..280
bpm, so expect about 0.4 octave (30 %) of error, against 0.6 for the constant 100 bpm; on Bach's
preludes and fugues alone it is no better than the constant (their tempi do not follow texture).
"""
from __future__ import annotations

import argparse
import lzma
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from render.encoding import tempo_ratio
from render.performance import load_aligned_npz
from render.score import DEFAULT_TEMPO_BPM, tempo_from_words

FEATURE_NAMES = ("log2_ioi_mean", "frac_ioi_32nd", "log2_duration_median", "chord_size",
                 "pitch_sd_octaves", "log2_ts_den", "log2_bar_quarters", "compound", "frac_grace")
# Fitted by `python -m render.tempo --fit` (see the module docstring); applied to raw features
# clipped to the range seen in training (FEATURE_LO..FEATURE_HI): no texture extrapolates, and one
# outside that range is pulled towards TYPICAL_LOG2_BPM (see `_log2_bpm`).
INTERCEPT = 7.0958
COEF = np.array([0.4967, -1.2278, 0.0176, -0.3600, 1.5230, -0.0835, -0.0121, 0.0095, -6.2063])
FEATURE_LO = np.array([-3.2214, 0.0000, -3.0000, 1.0073, 0.7099, 1.0000, 0.5850, 0.0000, 0.0000])
FEATURE_HI = np.array([0.1534, 0.9607, 0.0000, 3.8824, 1.5307, 4.0000, 2.5850, 1.0000, 0.0798])
TYPICAL_LOG2_BPM = 6.8262  # median of the train works' tempi
RIDGE_LAMBDA = 30.0
MIN_BPM, MAX_BPM = 30.0, 240.0
_UNIT_QUARTERS = {"whole": 4.0, "half": 2.0, "quarter": 1.0, "eighth": 0.5, "16th": 0.25}


def score_tempo_features(notes: np.ndarray) -> np.ndarray:
    """Texture features of a score, shape (len(FEATURE_NAMES),), all finite.

    Parameters
    ----------
    notes : np.ndarray
        render.score NOTE_DTYPE array (onset_beat, duration_beat in quarter notes); need not be
        sorted. Grace notes count only in ``frac_grace``. Inter-onset intervals (IOI) are taken
        between successive distinct onsets; ``frac_ioi_32nd`` counts those under 0.15 quarters
        (32nds and shorter, not triplet sixteenths); the time signature is the one holding most
        notes; ``pitch_sd_octaves`` is the spread of the pitches (wide, brilliant writing is fast).
    """
    if len(notes) == 0:
        raise ValueError("no notes")
    real = notes[~notes["is_grace"]] if (~notes["is_grace"]).any() else notes
    on = np.sort(real["onset_beat"].astype(float))
    uniq = on[np.concatenate([[True], np.diff(on) > 1e-6])]
    dur = np.maximum(real["duration_beat"].astype(float), 1 / 64)
    ioi = np.diff(uniq)
    if len(ioi) == 0:  # one onset: its longest note stands for the rhythm
        ioi = np.array([float(dur.max())])
    ioi = np.clip(ioi, 1 / 64, 16.0)
    ts, count = np.unique(np.stack([real["ts_num"], real["ts_den"]], 1).astype(int), axis=0,
                          return_counts=True)
    num, den = ts[np.argmax(count)]
    num, den = (num, den) if num > 0 and den > 0 else (4, 4)
    return np.array([
        np.log2(ioi.mean()), np.mean(ioi < 0.15), np.log2(np.median(dur)), len(real) / len(uniq),
        np.std(real["pitch"].astype(float)) / 12.0, np.log2(den), np.log2(4.0 * num / den),
        float(num % 3 == 0 and num > 3 and den >= 8), float(np.mean(notes["is_grace"])),
    ])


def _model() -> dict:
    return dict(intercept=INTERCEPT, coef=COEF, lo=FEATURE_LO, hi=FEATURE_HI, center=TYPICAL_LOG2_BPM)


def _log2_bpm(x: np.ndarray, model: dict) -> np.ndarray:
    """Predicted log2 bpm of feature rows ``x`` (..., F), before the bpm clip. A texture outside
    the training range (a bare melody, one note) is pulled towards the typical tempo: the
    deviation is divided by 1 + the summed excess of its features, in units of their ranges."""
    lo, hi = model["lo"], model["hi"]
    xc = np.clip(x, lo, hi)
    excess = np.sum(np.abs(x - xc) / np.maximum(hi - lo, 1e-9), axis=-1)
    y = model["intercept"] + xc @ model["coef"]
    return model["center"] + (y - model["center"]) / (1.0 + excess)


def predict_tempo_bpm(notes: np.ndarray, model: dict | None = None) -> float:
    """Quarter-note bpm a pianist would likely take for ``notes`` (NOTE_DTYPE), clipped to
    MIN_BPM..MAX_BPM. ``model`` (as `fit` returns) defaults to the module's fitted constants."""
    return float(predict_from_features(score_tempo_features(notes), model))


def predict_from_features(x: np.ndarray, model: dict | None = None) -> np.ndarray:
    """`predict_tempo_bpm` from feature rows ``x`` (..., F) of `score_tempo_features`."""
    return np.clip(2.0 ** _log2_bpm(x, model or _model()), MIN_BPM, MAX_BPM)


def fit(x: np.ndarray, y: np.ndarray, lam: float = RIDGE_LAMBDA) -> dict:
    """Ridge regression of ``y`` (W,) log2 bpm on ``x`` (W, F) features, one row per work.

    Features are standardised for the penalty (the intercept is not penalised). Returns
    dict(intercept, coef, lo, hi, center): coefficients for raw features, their range in ``x``
    and the median of ``y`` (see `_log2_bpm`).
    """
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    z, ym = (x - mu) / sd, y.mean()
    w = np.linalg.solve(z.T @ z + lam * np.eye(x.shape[1]), z.T @ (y - ym))
    return dict(intercept=float(ym - (mu / sd) @ w), coef=w / sd, lo=x.min(0), hi=x.max(0),
                center=float(np.median(y)))


def leave_one_out(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Predicted log2 bpm of each work by a model fitted on all the other works, shape (W,)."""
    keep = ~np.eye(len(y), dtype=bool)
    return np.array([_log2_bpm(x[i], fit(x[keep[i]], y[keep[i]], lam)) for i in range(len(y))])


def performance_tempo_bpm(perf) -> float:
    """A performance's median local tempo (quarters/min) over its matched notes."""
    m = perf.match_index >= 0
    n, sec = perf.score.notes[m], perf.notes["onset_sec"][perf.match_index[m]]
    ref = np.full(len(n), 100.0)  # tempo_ratio clips its ratio to 0.1..10: a reference of 1 caps at 10
    return 100.0 * tempo_ratio(n["onset_beat"], sec, ref, n["is_grace"])


def written_tempi(xml_path: Path) -> tuple[float | None, float | None]:
    """(first tempo word's bpm, first metronome mark in quarters/min) of a MusicXML file (.xz or
    plain), read by a text scan; None where the file has none."""
    opener = lzma.open if str(xml_path).endswith(".xz") else open
    with opener(xml_path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    word = next((b for w in re.findall(r"<words[^>]*>([^<]*)</words>", text)
                 if (b := tempo_from_words(w)) is not None), None)
    metro = None
    for body in re.findall(r"<metronome[^>]*>(.*?)</metronome>", text, re.S):
        unit = re.search(r"<beat-unit>(\w+)</beat-unit>", body)
        bpm = re.search(r"<per-minute>([\d.]+)", body)
        if unit and bpm and unit.group(1) in _UNIT_QUARTERS:
            dots = 1.5 if "<beat-unit-dot" in body else 1.0
            metro = float(bpm.group(1)) * _UNIT_QUARTERS[unit.group(1)] * dots
            break
    return word, metro


def load_works(cache: Path, data: Path, split: str) -> list[dict]:
    """The works of ``split`` whose parsed match files are in ``cache``/aligned: per work its
    features (``x``, from the longest performance's score), its performances' median tempi
    (``perf_bpm``), ``target`` (their median), ``word``/``metro`` (written tempi or None)."""
    from render.dataset import perf_key, read_split

    by_work = defaultdict(list)
    for r in read_split(data):
        if r["split"] == split:
            by_work[r["work"]].append(r)
    works = []
    for work, rows in sorted(by_work.items()):
        bpm, best = [], None
        for r in rows:
            path = cache / "aligned" / f"{perf_key(r['match_file'])}.npz"
            if not path.is_file():
                continue
            perf = load_aligned_npz(path)
            bpm.append(performance_tempo_bpm(perf))
            if best is None or perf.score.n_notes > len(best[0]):
                best = (perf.score.notes, r)
        if not bpm:
            continue
        xml = data / best[1]["score_file"]
        word, metro = written_tempi(xml) if best[1]["score_file"] and xml.is_file() else (None, None)
        works.append(dict(work=work, x=score_tempo_features(best[0]), perf_bpm=np.array(bpm),
                          target=float(np.median(bpm)), word=word, metro=metro))
    return works


def errors(pred: np.ndarray, works: list[dict]) -> dict:
    """Absolute errors of per-work predictions ``pred`` (W,) bpm: against each work's median
    (works weighted equally) and against each performance's median tempo."""
    t = np.array([w["target"] for w in works])
    e = np.abs(pred - t)
    pp = np.concatenate([np.full(len(w["perf_bpm"]), p) for p, w in zip(pred, works)])
    tp = np.concatenate([w["perf_bpm"] for w in works])
    return dict(works=len(works), median_bpm=float(np.median(e)), mae_bpm=float(e.mean()),
                mape=float(100 * np.mean(e / t)), octaves=float(np.mean(np.abs(np.log2(pred / t)))),
                performances=len(tp), perf_mae_bpm=float(np.abs(pp - tp).mean()),
                perf_mape=float(100 * np.mean(np.abs(pp - tp) / tp)))


def _report(name: str, pred, works: list[dict]) -> None:
    """Print one row of error figures (works with a None prediction are left out)."""
    keep = [i for i, p in enumerate(pred) if p is not None]
    if not keep:
        return print(f"  {name:<36} (no work)")
    e = errors(np.array([pred[i] for i in keep], float), [works[i] for i in keep])
    print(f"  {name:<36} works {e['works']:>3}  median |err| {e['median_bpm']:5.1f}  MAE "
          f"{e['mae_bpm']:5.1f} bpm {e['mape']:5.1f}% ({e['octaves']:.2f} oct) | perfs "
          f"{e['performances']:>4}  MAE {e['perf_mae_bpm']:5.1f} bpm {e['perf_mape']:5.1f}%")


def _compare(works: list[dict], pred: np.ndarray, label: str, const: float | None = None) -> None:
    """Print the predictor against the constant default and the written tempi, each on the
    works where the baseline exists."""
    _report(label, pred, works)
    _report(f"constant {DEFAULT_TEMPO_BPM:g} bpm", [DEFAULT_TEMPO_BPM] * len(works), works)
    if const is not None:
        _report(f"constant {const:.0f} bpm (train median)", [const] * len(works), works)
    for key, name in (("word", "tempo word"), ("metro", "metronome mark")):
        sub = [w[key] is not None for w in works]
        _report(name, [w[key] for w in works], works)
        _report(f"  {label} on the same works", [p if s else None for p, s in zip(pred, sub)], works)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m render.tempo", description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--fit", action="store_true", help="refit on train, print the coefficients")
    mode.add_argument("--eval", action="store_true", help="errors of the module's coefficients on val")
    ap.add_argument("--cache", type=Path, default=Path(".cache/dataset"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = ap.parse_args(argv)
    try:
        val = load_works(args.cache, args.data, "val")
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not val:
        print(f"error: no val performance in {args.cache / 'aligned'}", file=sys.stderr)
        return 2
    xv = np.stack([w["x"] for w in val])
    if args.eval:
        print("val, module coefficients (vs the median of each work's pianists; perfs: vs each one):")
        _compare(val, predict_from_features(xv), "predicted")
        return 0
    train = load_works(args.cache, args.data, "train")
    x, y = np.stack([w["x"] for w in train]), np.log2([w["target"] for w in train])
    loo = {lam: leave_one_out(x, y, lam) for lam in (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)}
    err = {k: float(np.mean(np.abs(v - y))) for k, v in loo.items()}
    lam = max(k for k in err if err[k] <= 1.01 * min(err.values()))  # the most regular within 1 %
    m, const = fit(x, y, lam), float(2 ** np.median(y))
    print(f"train: {len(train)} works, {sum(len(w['perf_bpm']) for w in train)} performances; lambda "
          f"{lam:g} by leave-one-work-out (mean |log2 err| by lambda: "
          + ", ".join(f"{k:g}: {v:.3f}" for k, v in err.items()) + ")")
    arr = lambda a: "np.array([" + ", ".join(f"{c:.4f}" for c in a) + "])"  # noqa: E731
    print(f"INTERCEPT = {m['intercept']:.4f}\nCOEF = {arr(m['coef'])}\nFEATURE_LO = {arr(m['lo'])}\n"
          f"FEATURE_HI = {arr(m['hi'])}\nTYPICAL_LOG2_BPM = {m['center']:.4f}\n"
          f"RIDGE_LAMBDA = {lam:g}")
    for name, c, lo, hi in zip(FEATURE_NAMES, m["coef"], m["lo"], m["hi"]):
        print(f"  {name:<22} {c:+.4f}  (range {lo:.3f} .. {hi:.3f})")
    print("train, leave-one-work-out:")
    _compare(train, np.clip(2.0 ** loo[lam], MIN_BPM, MAX_BPM), "predicted (LOWO)", const)
    print("val, refitted coefficients:")
    _compare(val, predict_from_features(xv, m), "predicted", const)
    return 0


if __name__ == "__main__":
    sys.exit(main())
