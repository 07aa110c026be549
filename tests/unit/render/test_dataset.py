"""The dataset builder on one real work, and its refusal of a folder without split.csv."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from render.dataset import main as build_main
from render.dataset import perf_key

WORK = "Bach/Fugue_bwv_857"


@pytest.mark.data
def test_builds_encodes_and_skips_what_is_built(shared_data, tmp_path, capsys):
    rows = [r for r in csv.DictReader(open(shared_data / "split.csv")) if r["work"] == WORK][:2]
    data = tmp_path / "data"
    data.mkdir()
    (data / "nasap").symlink_to(shared_data / "nasap")
    with open(data / "split.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "cache"
    assert build_main(["--data", str(data), "--out", str(out), "--jobs", "1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["built"] == 2 and summary["counts"]["failed"] == 0
    split = rows[0]["split"]
    assert summary["splits"][split]["performances"] == 2 and summary["splits"][split]["works"] == 1
    with np.load(out / split / f"{perf_key(rows[0]['match_file'])}.npz") as z:
        m = len(z["target"])
        assert m == int(rows[0]["matched"]) or abs(m - int(rows[0]["matched"])) < 5
        assert z["feat"].shape[0] == m and z["frame"].shape == (m,) and z["perf"].shape == (m, 3)
        assert z["spans"].shape == (int(rows[0]["score_notes"]), 3)
        assert (np.diff(z["onset_beat"]) >= 0).all()
        meta = json.loads(str(z["meta"]))
        assert meta["work"] == WORK and set(meta["clip_rate"]) == {"velocity", "duration_100", "deviation_100", "tempo_dev_bpm"}
    capsys.readouterr()
    assert build_main(["--data", str(data), "--out", str(out), "--jobs", "1"]) == 0
    assert json.loads((out / "summary.json").read_text())["counts"]["skipped"] == 2
    # a longer tempo reference window: recorded, and a steadier written tempo
    out32 = tmp_path / "cache32"
    assert build_main(["--data", str(data), "--out", str(out32), "--jobs", "1", "--tempo-window", "32"]) == 0
    key = f"{perf_key(rows[0]['match_file'])}.npz"
    with np.load(out / split / key) as z8, np.load(out32 / split / key) as z32:
        assert json.loads(str(z8["meta"]))["tempo_window_beat"] == 8.0
        assert json.loads(str(z32["meta"]))["tempo_window_beat"] == 32.0
        changes = [np.count_nonzero(np.diff(z["written_bpm"])) for z in (z8, z32)]
        assert changes[1] < changes[0], changes


def test_a_folder_without_split_csv_is_refused(tmp_path, capsys):
    assert build_main(["--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no split.csv" in capsys.readouterr().err
