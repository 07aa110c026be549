"""python -m render: JSON on stdout, one-line errors and exit code 2 for bad input."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pretty_midi
import pytest
import soundfile

from render.__main__ import main
from tests.data.corpus import BAD_INPUTS, REPO_ROOT, TWO_BARS, make_bad_inputs


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_inspect_json(capsys):
    code, out, err = run(capsys, "inspect", TWO_BARS)
    assert code == 0, err
    s = json.loads(out)
    assert (s["format"], s["notes"], s["parts"], s["beats"]) == ("musicxml", 11, 1, 8.0)
    assert s["time_signatures"] == [{"onset_beat": 0.0, "numerator": 4, "denominator": 4}]
    assert s["key_signatures"][0]["fifths"] == 0
    assert s["tempo"]["written_bpm"] == 120.0
    assert [d["text"] for d in s["dynamics"]] == ["p", "f"]
    assert s["warnings"] == [] and s["title"] == "Two Bars"


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_exit_2_one_line(capsys, bad, name):
    code, out, err = run(capsys, "inspect", bad[name])
    assert code == 2 and out == ""
    assert err.startswith(f"error: {name}: ") and err.count("\n") == 1
    assert BAD_INPUTS[name] in err


@pytest.mark.parametrize("cmd", ["deadpan", "humanize"])
def test_render_commands_write_midi_and_csv(capsys, tmp_path, cmd):
    mid, table = tmp_path / "out.mid", tmp_path / "out.csv"
    code, out, err = run(capsys, cmd, TWO_BARS, "-o", mid, "--csv", table)
    assert code == 0, err
    report = json.loads(out)
    assert report["notes"] == 11 and report["outputs"] == {"midi": str(mid), "csv": str(table)}
    notes = pretty_midi.PrettyMIDI(str(mid)).instruments[0].notes
    assert len(notes) == 11
    with open(table) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 11 and {"score_note_id", "tempo_bpm", "deviation_100"} <= set(rows[0])
    if cmd == "deadpan":  # q = 120 as written
        onsets = sorted(float(r["onset_sec"]) for r in rows if r["score_note_id"] != "n1-1")
        assert onsets[-1] - onsets[0] == pytest.approx(3.5)


def test_humanize_seed_and_tempo(capsys, tmp_path):
    outs = []
    for seed in (1, 1, 2):
        table = tmp_path / f"h{len(outs)}.csv"
        assert run(capsys, "humanize", TWO_BARS, "-o", tmp_path / "h.mid", "--csv", table,
                   "--seed", seed, "--tempo", 60)[0] == 0
        outs.append(table.read_text())
    assert outs[0] == outs[1] != outs[2]


def test_deadpan_wav(capsys, tmp_path):
    wav = tmp_path / "d.wav"
    code, out, err = run(capsys, "deadpan", TWO_BARS, "-o", tmp_path / "d.mid", "--wav", wav)
    assert code == 0, err
    assert soundfile.info(str(wav)).duration == pytest.approx(json.loads(out)["duration_sec"] + 1.0,
                                                              abs=0.05)


def test_unwritable_output_exit_2(capsys, tmp_path):
    code, out, err = run(capsys, "deadpan", TWO_BARS, "-o", tmp_path / "no" / "dir" / "x.mid")
    assert code == 2 and err.startswith("error: x.mid: ") and err.count("\n") == 1


def test_roundtrip_bad_input_exit_2(capsys, tmp_path, bad):
    code, _, err = run(capsys, "roundtrip", tmp_path / "missing.match")
    assert code == 2 and "missing.match: no such file" in err
    code, _, err = run(capsys, "roundtrip", bad["page.xml"])
    assert code == 2 and err.startswith("error: page.xml: ") and err.count("\n") == 1
    broken = tmp_path / "broken.match.xz"
    broken.write_bytes(b"not xz")
    code, _, err = run(capsys, "roundtrip", broken)
    assert code == 2 and "not a valid .xz file" in err


def test_real_process_exit_codes(bad):
    """The module entry point itself: no traceback, exit 2, for bad input and bad usage."""
    for argv in (["inspect", str(bad["zip_bomb.mxl"])], ["frobnicate"]):
        proc = subprocess.run([sys.executable, "-m", "render", *argv], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.data
def test_roundtrip_real_match_file(capsys, shared_data):
    path = shared_data / "batik_plays_mozart/match/kv282_2.match.xz"
    code, out, err = run(capsys, "roundtrip", path)
    assert code == 0, err
    r = json.loads(out)
    assert r["file"] == str(path) and r["n_notes"] > 1700
    assert r["onset_err_median_ms"] < 10 and r["onset_err_p95_ms"] < 30
    assert r["velocity_exact_rate"] == 1.0
    assert set(r["clip_rate"]) == {"velocity", "duration_100", "deviation_100", "tempo_log_50", "sustain", "soft"}
    assert r["pedal_down_agreement"] > 0.85 and r["pedal_lifts"] > 50 and "pedal_lift_err_median_ms" in r


@pytest.mark.data
def test_inspect_real_score_midi(capsys, shared_data):
    midi = shared_data / "nasap/Haydn/Keyboard_Sonatas/6-1/midi_score.mid"
    code, out, err = run(capsys, "inspect", midi)
    assert code == 0, err
    assert json.loads(out)["format"] == "midi"
