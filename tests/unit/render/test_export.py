"""render.export: MIDI and CSV round trips, audio through FluidSynth."""
from __future__ import annotations

import numpy as np
import pretty_midi
import pytest
import soundfile

from render.encoding import RENDERED_DTYPE
from render.export import (PEAK_DBFS, TAIL_SEC, TARGET_RMS_DBFS, AudioError, find_soundfont,
                           load_csv, normalise, render_audio, save_csv, save_midi, to_pretty_midi,
                           write_audio)


def perf(n=12, *, extra=()):
    """A small performance: rising eighths at 0.25 s, velocities over the whole range."""
    dtype = RENDERED_DTYPE.descr + list(extra)
    p = np.zeros(n, dtype)
    p["id"] = [f"n{i}-1" for i in range(n)]
    p["pitch"] = 60 + np.arange(n)
    p["onset_sec"] = 0.25 * np.arange(n) + 0.1
    p["duration_sec"] = 0.3
    p["velocity"] = np.linspace(0, 140, n).astype(int)  # 0 and >127 get clipped
    p["tempo_bpm"] = 120 - np.arange(n)
    p["duration_100"] = 60
    p["deviation_100"] = np.arange(n) - 6
    p["tempo_log_50"] = -np.arange(n)
    p["sustain"] = np.arange(n) * 7 % 81
    p["soft"] = np.arange(n) % 2
    return p


def test_midi_round_trip_with_pedal(tmp_path):
    p = perf()
    pedal = np.array([(0.1, 64, 127), (1.5, 64, 0), (0.5, 67, 100)],
                     [("time_sec", "f8"), ("number", "i2"), ("value", "i2")])
    path = save_midi(p, tmp_path / "p.mid", pedal=pedal)
    pm = pretty_midi.PrettyMIDI(str(path))
    assert len(pm.instruments) == 1 and pm.instruments[0].program == 0
    notes = sorted(pm.instruments[0].notes, key=lambda x: x.start)
    np.testing.assert_allclose([x.start for x in notes], p["onset_sec"], atol=1e-3)
    np.testing.assert_allclose([x.end - x.start for x in notes], p["duration_sec"], atol=1e-3)
    assert [x.pitch for x in notes] == list(p["pitch"])
    vel = [x.velocity for x in notes]
    assert vel[0] == 1 and vel[-1] == 127 and vel[1:-1] == list(p["velocity"][1:-1])
    cc = sorted((round(c.time, 3), c.number, c.value) for c in pm.instruments[0].control_changes)
    assert cc == [(0.1, 64, 127), (0.5, 67, 100), (1.5, 64, 0)]


def test_midi_file_holds_what_pretty_midis_writer_writes(tmp_path):
    """Our numpy writer against pretty_midi's: a dense take with chords, overlaps, re-struck
    keys, pedal and a note 50 minutes in (a 4-byte delta time) reads back the same."""
    import mido

    rng = np.random.default_rng(3)
    n = 3000
    p = np.zeros(n, RENDERED_DTYPE)
    p["pitch"] = rng.integers(21, 109, n)
    p["onset_sec"] = np.sort(rng.uniform(0, 600, n))
    p["onset_sec"][-1] = 3000.0
    p["duration_sec"] = rng.uniform(0, 2, n)
    p["velocity"] = rng.integers(1, 128, n)
    p["pitch"][10:12] = 60
    p["onset_sec"][11] = p["onset_sec"][10] + p["duration_sec"][10]  # struck again where released
    pedal = np.array([(t, 64, v) for t, v in zip(np.sort(rng.uniform(0, 600, 200)), rng.integers(0, 128, 200))],
                     [("time_sec", "f8"), ("number", "i2"), ("value", "i2")])
    ours = pretty_midi.PrettyMIDI(str(save_midi(p, tmp_path / "ours.mid", pedal=pedal)))
    ref_path = tmp_path / "ref.mid"
    to_pretty_midi(p, pedal=pedal).write(str(ref_path))
    ref = pretty_midi.PrettyMIDI(str(ref_path))

    def notes(pm):
        return sorted((round(x.start, 4), round(x.end, 4), x.pitch, x.velocity) for x in pm.instruments[0].notes)

    def ccs(pm):
        return sorted((round(c.time, 4), c.number, c.value) for c in pm.instruments[0].control_changes)

    assert len(notes(ours)) == n and notes(ours) == notes(ref) and ccs(ours) == ccs(ref)
    assert ours.instruments[0].program == 0 and not ours.instruments[0].is_drum
    mido.MidiFile(str(tmp_path / "ours.mid"))  # a well-formed file for mido too


def test_csv_columns_and_round_trip(tmp_path):
    p = perf(extra=[("variation", "i2"), ("index", "i4"), ("z", "f4", (5,))])
    p["variation"] = 3
    p["z"] = np.random.default_rng(0).normal(size=(len(p), 5))
    path = save_csv(p, tmp_path / "p.csv")
    header = path.read_text().splitlines()[0].split(",")
    # every field of the rendering (RENDERED_DTYPE: v2's tempo_log_50, sustain and soft included)
    assert header[:4] == ["score_note_id", "onset_sec", "duration_sec", "velocity"]
    assert header[-5:] == ["z0", "z1", "z2", "z3", "z4"] and len(header) == len(set(header))
    assert set(header[4:-5]) == {"pitch", "tempo_bpm", "duration_100", "deviation_100", "tempo_log_50",
                                 "sustain", "soft", "variation"}, header
    q = load_csv(path)
    assert list(q["id"]) == list(p["id"])
    np.testing.assert_allclose(q["onset_sec"], p["onset_sec"], atol=1e-6)
    np.testing.assert_allclose(q["duration_sec"], p["duration_sec"], atol=1e-6)
    assert list(q["velocity"]) == list(np.clip(p["velocity"], 1, 127))
    for f in ("pitch", "duration_100", "deviation_100", "tempo_log_50", "sustain", "soft", "variation"):
        assert np.array_equal(q[f], p[f]), f
    np.testing.assert_allclose(q["tempo_bpm"], p["tempo_bpm"], atol=1e-3)
    np.testing.assert_allclose(q["z"], p["z"], atol=1e-5)


def test_csv_of_minimal_notes(tmp_path):
    p = np.zeros(2, [("pitch", "i2"), ("onset_sec", "f8"), ("duration_sec", "f8"),
                     ("velocity", "i2")])
    p["velocity"] = 50
    q = load_csv(save_csv(p, tmp_path / "m.csv"))
    assert q.dtype.names == ("id", "onset_sec", "duration_sec", "velocity", "pitch")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,d\n1,2,3,4\n")
    with pytest.raises(ValueError, match="not a per-note CSV"):
        load_csv(bad)


def test_normalise_targets_and_fades():
    sr = 1000
    t = np.arange(3 * sr) / sr
    x = np.stack([np.sin(2 * np.pi * 50 * t)] * 2, axis=1) * 0.01
    y = normalise(x, sr)
    rms = np.sqrt(np.mean(y[sr:2 * sr] ** 2))
    assert 20 * np.log10(rms) == pytest.approx(TARGET_RMS_DBFS, abs=0.1)  # quiet input brought up
    assert abs(y[0, 0]) < 1e-6 and abs(y[-1, 0]) < 1e-6  # fades
    spiky = x.copy()
    spiky[500] = 1.0  # one click: the peak limit wins over the RMS target
    assert np.abs(normalise(spiky, sr)).max() == pytest.approx(10 ** (PEAK_DBFS / 20), rel=1e-4)
    assert np.all(normalise(np.zeros((100, 2)), sr) == 0)


@pytest.mark.parametrize("fmt, source", [("wav", "notes"), ("ogg", "midi file")])
def test_render_audio_length_and_not_silent(tmp_path, fmt, source):
    p = perf()
    p["velocity"] = 70
    src = p if source == "notes" else save_midi(p, tmp_path / "p.mid")
    out = render_audio(src, tmp_path / f"p.{fmt}", sample_rate=22050)
    info = soundfile.info(str(out))
    assert (info.format, info.subtype) == (("WAV", "PCM_16") if fmt == "wav" else ("OGG", "VORBIS"))
    audio, sr = soundfile.read(str(out))
    assert sr == 22050 and audio.ndim == 2 and audio.shape[1] == 2
    end = float(np.max(p["onset_sec"] + p["duration_sec"]))
    assert len(audio) / sr == pytest.approx(end + TAIL_SEC, abs=0.01)
    frame = sr // 10
    rms = np.sqrt(np.mean(audio[: len(audio) // frame * frame].reshape(-1, frame, 2) ** 2,
                          axis=(1, 2)))
    assert rms[1:int(end * 10)].min() > 0.01  # sound all through the notes
    assert np.abs(audio).max() <= 10 ** (PEAK_DBFS / 20) + 0.05
    assert rms[-1] < rms[1:int(end * 10)].mean()  # fades out


def test_long_ogg_is_written_whole(tmp_path):
    """One long write crashes libvorbis (stack overflow); write_audio writes in blocks."""
    sr = 44100
    audio = (np.random.default_rng(0).normal(size=(sr * 100, 2)) * 0.1).astype(np.float32)
    info = soundfile.info(str(write_audio(tmp_path / "long.ogg", audio, sr, "ogg")))
    assert info.frames == len(audio)


def test_missing_soundfont_is_a_clear_error(tmp_path):
    with pytest.raises(AudioError, match="no soundfont"):
        find_soundfont(tmp_path / "none.sf2")
    with pytest.raises(ValueError, match="wav or ogg"):
        render_audio(perf(2), tmp_path / "x.mp3")
