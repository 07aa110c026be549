"""The dataset builder on one real work (model v2 arrays), its caches, and its refusal of a
folder without split.csv."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from render.dataset import build_performance, load_aligned_cached, perf_key, xml_markings
from render.dataset import main as build_main
from render.encoding import ENCODED_DTYPE, RANGES, TEMPO_STEPS_PER_OCTAVE, decode
from render.features import BEAT_FEATURES, FEATURE_CLASSES, FEATURE_NAMES
from render.marks import MARK_DTYPE
from render.performance import PEDAL_DTYPE

WORK = "Bach/Fugue_bwv_857"


@pytest.fixture(scope="module")
def built(shared_data, tmp_path_factory):
    """Two performances of one work built with the command line, into a fresh cache."""
    tmp = tmp_path_factory.mktemp("dataset")
    rows = [r for r in csv.DictReader(open(shared_data / "split.csv")) if r["work"] == WORK][:2]
    data = tmp / "data"
    data.mkdir()
    (data / "nasap").symlink_to(shared_data / "nasap")
    with open(data / "split.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp / "cache"
    code = build_main(["--data", str(data), "--out", str(out), "--jobs", "1"])
    return {"code": code, "rows": rows, "data": data, "out": out}


@pytest.mark.data
def test_builds_and_skips_what_is_built(built, capsys):
    out, rows, data = built["out"], built["rows"], built["data"]
    assert built["code"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["built"] == 2 and summary["counts"]["failed"] == 0, summary["problems"]
    split = rows[0]["split"]
    assert summary["splits"][split]["performances"] == 2 and summary["splits"][split]["works"] == 1
    assert set(summary["splits"][split]["clip_rate"]) == set(ENCODED_DTYPE.names)
    # the parsed match files and the work's markings are kept for rebuilds
    assert len(list((out / "aligned").glob("*.npz"))) == 2 and len(list((out / "markings").glob("*.npz"))) == 1
    capsys.readouterr()
    assert build_main(["--data", str(data), "--out", str(out), "--jobs", "1"]) == 0
    assert json.loads((out / "summary.json").read_text())["counts"]["skipped"] == 2
    with pytest.raises(SystemExit):       # v1's option is gone
        build_main(["--data", str(data), "--out", str(out), "--tempo-window", "32"])


@pytest.mark.data
def test_built_arrays_are_consistent(built):
    row = built["rows"][0]
    with np.load(built["out"] / row["split"] / f"{perf_key(row['match_file'])}.npz") as z:
        a = {k: z[k] for k in z.files}
    assert set(a) == {"feat", "frame", "spans", "beat", "beat_ctx", "target", "onset_beat", "reference_bpm",
                      "marked_bpm", "score_id", "perf", "pedal", "meta"}
    meta = json.loads(str(a["meta"]))
    m = len(a["target"])
    assert m == meta["n_notes"] and abs(m - int(row["matched"])) < 5
    assert a["feat"].shape == (m, len(FEATURE_NAMES)) and a["feat"].dtype == np.int16
    for i, (name, k) in enumerate(FEATURE_CLASSES.items()):
        assert 0 <= a["feat"][:, i].min() and a["feat"][:, i].max() < k, name
    assert a["frame"].shape == (m,) and a["frame"].dtype == np.int32 and (np.diff(a["frame"]) >= 0).all()
    assert a["spans"].shape == (int(row["score_notes"]), 3) == (meta["n_score_notes"], 3)
    n_beats = len(a["beat_ctx"])
    assert a["beat_ctx"].shape == (n_beats, BEAT_FEATURES) and a["beat_ctx"].dtype == np.float16
    assert np.isfinite(a["beat_ctx"]).all()
    assert a["beat"].shape == (m,) and a["beat"].dtype == np.int32
    assert a["beat"].min() >= 0 and a["beat"].max() < n_beats and (np.diff(a["beat"]) >= 0).all()
    np.testing.assert_array_equal(a["beat"], np.floor(a["onset_beat"] - np.floor(a["onset_beat"][0]) + 1e-6))
    assert a["target"].shape == (m, 6) and a["target"].dtype == np.int16
    for j, name in enumerate(ENCODED_DTYPE.names):
        lo, hi = RANGES[name]
        assert lo <= a["target"][:, j].min() and a["target"][:, j].max() <= hi, name
    assert (np.diff(a["onset_beat"]) >= 0).all() and a["score_id"].shape == (m,)
    assert len(set(a["score_id"].tolist())) == m
    assert a["perf"].shape == (m, 3) and (a["perf"][:, 2] == a["target"][:, 0]).all()   # velocity
    assert a["pedal"].dtype == PEDAL_DTYPE and len(a["pedal"]) > 0
    assert a["target"][:, 4].max() > 0                          # the sustain pedal is in the target
    # reference = g * W, W the marking (one scalar g per performance)
    g = meta["tempo_ratio_g"]
    assert 0.2 < g < 5 and np.isfinite(a["marked_bpm"]).all() and (a["marked_bpm"] > 0).all()
    np.testing.assert_allclose(a["reference_bpm"], g * a["marked_bpm"], rtol=1e-5)
    # one tempo class per beat of the features' beat index
    tempo = a["target"][:, 3]
    assert all(len(set(tempo[a["beat"] == b].tolist())) == 1 for b in np.unique(a["beat"]))
    # the target decodes back to the human performance
    enc = np.zeros(m, ENCODED_DTYPE)
    for j, name in enumerate(ENCODED_DTYPE.names):
        enc[name] = a["target"][:, j]
    onset, _, bpm, _ = decode(a["onset_beat"], a["reference_bpm"].astype(float), enc)
    err = np.abs(onset + meta["start_sec"] - a["perf"][:, 0])
    assert np.median(err) < 0.01 and np.percentile(err, 95) < 0.03
    first = np.r_[True, np.diff(a["beat"]) > 0]
    np.testing.assert_allclose(bpm[first], a["reference_bpm"][first] * 2.0 ** (tempo[first] / TEMPO_STEPS_PER_OCTAVE),
                               rtol=1e-5)
    assert meta["work"] == WORK and meta["markings"] is True and set(meta["clip_rate"]) == set(ENCODED_DTYPE.names)
    assert meta["clip_rate"]["tempo_log_50"] < 0.02 and 0 <= meta["metronome_present"] <= 1


@pytest.mark.data
def test_build_performance_from_the_caches(built, shared_data):
    """build_performance itself, on the kept parse and markings: the same arrays as the built file."""
    row, out = built["rows"][0], built["out"]
    mk = next((out / "markings").glob("*.npz"))
    info = xml_markings(out / "no-such.musicxml", mk)             # read from the cache, not parsed
    assert set(info) == {"ids", "velocity", "tempo_bpm", "marks"} and info["marks"].dtype == MARK_DTYPE
    assert len(info["ids"]) == len(info["marks"]) == len(info["tempo_bpm"]) > 0
    arrays = build_performance(row, shared_data, out, info)
    with np.load(out / row["split"] / f"{perf_key(row['match_file'])}.npz") as z:
        for k in z.files:
            if k != "meta":
                assert np.array_equal(arrays[k], z[k], equal_nan=arrays[k].dtype.kind == "f"), k
    # without markings the features lose them, the notes and the encoding stay
    bare = build_performance(row, shared_data, out, None)
    assert np.array_equal(bare["target"][:, [0, 1, 2, 4, 5]], arrays["target"][:, [0, 1, 2, 4, 5]])
    assert json.loads(str(bare["meta"]))["markings"] is False and (bare["marked_bpm"] == 100).all()
    for k in ("fermata", "slur", "artic"):
        assert (bare["feat"][:, FEATURE_NAMES.index(k)] == 0).all()
    assert (bare["feat"][:, FEATURE_NAMES.index("to_section_end")] == 10).all()


@pytest.mark.data
def test_load_aligned_cached_parses_once(unpacked, tmp_path):
    match = unpacked("nasap/Bach/Fugue/bwv_857/Bult-ItoS02M.match.xz")
    cache = tmp_path / "aligned" / "p.npz"
    first = load_aligned_cached(match, cache)
    assert cache.is_file()
    again = load_aligned_cached(tmp_path / "gone.match", cache)     # the match file is not read again
    assert np.array_equal(again.notes, first.notes) and np.array_equal(again.match_index, first.match_index)
    assert np.array_equal(again.pedal, first.pedal) and again.source == first.source


def test_a_folder_without_split_csv_is_refused(tmp_path, capsys):
    assert build_main(["--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no split.csv" in capsys.readouterr().err


def test_markings_kept_by_an_older_mark_dtype_are_read_again(tmp_path):
    """A markings cache written before a mark was added (no ``pedal`` field) is not trusted."""
    from tests.data.corpus import TWO_BARS

    cache = tmp_path / "markings" / "two_bars.npz"
    fresh = xml_markings(TWO_BARS, cache)
    old_dtype = np.dtype([d for d in MARK_DTYPE.descr if d[0] != "pedal"])
    stale = np.zeros(len(fresh["marks"]), old_dtype)
    np.savez_compressed(cache, ids=fresh["ids"], velocity=fresh["velocity"], tempo_bpm=fresh["tempo_bpm"],
                        marks=stale)
    again = xml_markings(TWO_BARS, cache)
    assert again["marks"].dtype == MARK_DTYPE and np.array_equal(again["marks"], fresh["marks"])
    with np.load(cache) as z:
        assert z["marks"].dtype == MARK_DTYPE  # and the cache rewritten
