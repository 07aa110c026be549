"""python -m ml.render: MIDI + CSV out, variations, a performance-MIDI reference, bad input."""
from __future__ import annotations

import csv

import pretty_midi
import pytest

from ml.render import main
from render.loaders import load_score
from tests.data.corpus import make_midi


@pytest.fixture(scope="module")
def score_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    notes = [(60 + (k * 5) % 12, k * 0.5, 0.5, 80) for k in range(48)] + \
            [(40 + (k * 7) % 12, float(k), 1.0, 70) for k in range(24)]
    return make_midi(d / "piece.mid", notes, ts=(4, 4))


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_render_writes_midi_and_csv_for_each_variation(score_path, tmp_path, tiny_checkpoint, capsys):
    out, table = tmp_path / "take.mid", tmp_path / "take.csv"
    rc = main([str(score_path), "-o", str(out), "--csv", str(table), "--seed", "3", "--variations", "2",
               "--checkpoint", tiny_checkpoint])
    assert rc == 0, capsys.readouterr().err
    score = load_score(score_path)
    for mid, tab in ((out, table), (tmp_path / "take-2.mid", tmp_path / "take-2.csv")):
        assert len(pretty_midi.PrettyMIDI(str(mid)).instruments[0].notes) == score.n_notes
        r = rows(tab)
        assert {"score_note_id", "onset_sec", "duration_sec", "velocity"} <= set(r[0])
        assert sorted(x["score_note_id"] for x in r) == sorted(score.notes["id"].tolist())
    assert rows(table) != rows(tmp_path / "take-2.csv")


def test_temperature_zero_with_a_fixed_z_ignores_the_seed(score_path, tmp_path, tiny_checkpoint):
    """Randomness 0 takes the expected notes: with z fixed only the pedal is still drawn."""
    outs = []
    for seed in (1, 2):
        out = tmp_path / f"g{seed}.mid"
        assert main([str(score_path), "-o", str(out), "--csv", str(out.with_suffix(".csv")), "--seed", str(seed),
                     "--z", "0,0,0,0,0", "--temperature", "0", "--checkpoint", tiny_checkpoint]) == 0
        outs.append([{k: v for k, v in r.items() if k not in ("sustain", "soft")}
                     for r in rows(out.with_suffix(".csv"))])
    assert outs[0] == outs[1]


def test_reference_performance_midi_is_aligned_and_reported(score_path, tmp_path, tiny_checkpoint, capsys):
    score = load_score(score_path)
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(0)
    for n in score.notes[:40]:  # the first 40 notes, a little slower than written
        t = 0.2 + n["onset_beat"] * 0.7
        inst.notes.append(pretty_midi.Note(90, int(n["pitch"]), t, t + 0.3))
    pm.instruments.append(inst)
    pm.write(str(tmp_path / "ref.mid"))
    rc = main([str(score_path), "-o", str(tmp_path / "r.mid"), "--reference", str(tmp_path / "ref.mid"),
               "--checkpoint", tiny_checkpoint])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "reference: 40 of 40 performed notes matched" in err


@pytest.mark.parametrize("args, message", [
    (["--reference", "{other}"], "does not fit this score"),
    (["--reference", "{junk}"], "not a MIDI file"),
    (["--temperature", "5"], "temperature must be between 0 and 2"),
])
def test_bad_input_gives_one_line_and_exit_2(score_path, tmp_path, tiny_checkpoint, capsys, args, message):
    other = make_midi(tmp_path / "other.mid", [(30 + (k * 11) % 60, k * 0.25, 0.25, 80) for k in range(80)])
    junk = tmp_path / "junk.mid"
    junk.write_text("not midi")
    args = [a.format(other=other, junk=junk) for a in args]
    rc = main([str(score_path), "-o", str(tmp_path / "x.mid"), "--checkpoint", tiny_checkpoint, *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err
