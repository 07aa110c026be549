"""webapp.jobs.notes: renderer chunks -> NOTE dicts -> performance arrays."""
import json

import numpy as np

from webapp.jobs.notes import chunk_to_notes, notes_to_array, performance_duration

CHUNK_DTYPE = [("id", "U32"), ("pitch", "i2"), ("onset_sec", "f8"), ("duration_sec", "f8"),
               ("velocity", "i2"), ("tempo_bpm", "f4"), ("duration_100", "i2"),
               ("deviation_100", "i2"), ("tempo_dev_bpm", "i2"), ("variation", "i2"),
               ("index", "i4"), ("z", "f4", (5,))]


def _chunk():
    c = np.zeros(3, CHUNK_DTYPE)
    c["id"] = ["n1-1", "n2-1", "n1-2"]
    c["pitch"] = [60, 64, 60]
    c["onset_sec"] = [0.5, 0.123456, 2.0]
    c["duration_sec"] = [0.25, 0.5, 0.1]
    c["velocity"] = [0, 80, 140]
    c["tempo_bpm"] = [100.0, 101.5, np.nan]
    c["index"] = [0, 1, 2]
    c["z"] = np.arange(15, dtype=np.float32).reshape(3, 5) / 10
    return c


def test_chunk_to_notes_fields_units_and_clipping():
    notes = chunk_to_notes(_chunk())
    assert [n["i"] for n in notes] == [0, 1, 2]
    assert notes[1] == {"i": 1, "id": "n2-1", "pitch": 64, "onset": 0.1235, "duration": 0.5,
                        "velocity": 80, "tempo": 101.5, "z": [0.5, 0.6, 0.7, 0.8, 0.9], "v": 0}
    assert [n["velocity"] for n in notes] == [1, 80, 127]  # MIDI range
    assert notes[2]["tempo"] == 0.0  # NaN never reaches JSON


def test_notes_to_array_is_sorted_by_onset_and_keeps_every_field():
    notes = chunk_to_notes(_chunk())
    arr = notes_to_array(notes[::-1])
    assert list(arr["id"]) == ["n2-1", "n1-1", "n1-2"]
    assert list(arr["index"]) == [1, 0, 2]
    np.testing.assert_allclose(arr["z"][0], [0.5, 0.6, 0.7, 0.8, 0.9], rtol=1e-6)
    assert performance_duration(notes) == 2.1


def test_midi_and_csv_exports_take_the_array(tmp_path):
    import mido

    from render.export import load_csv, save_csv, save_midi

    arr = notes_to_array(chunk_to_notes(_chunk()))
    midi = mido.MidiFile(str(save_midi(arr, tmp_path / "p.mid")))
    assert sum(m.type == "note_on" and m.velocity > 0 for t in midi.tracks for m in t) == 3
    back = load_csv(save_csv(arr, tmp_path / "p.csv"))
    assert list(back["id"]) == list(arr["id"])


def test_pedal_classes_travel_with_the_notes_and_events_round_trip(tmp_path):
    import pretty_midi

    from render.export import load_csv, save_csv, save_midi
    from webapp.jobs.notes import events_to_pedal, pedal_to_events

    c = np.zeros(3, CHUNK_DTYPE + [("sustain", "i2"), ("soft", "i2")])
    for k in _chunk().dtype.names:
        c[k] = _chunk()[k]
    c["sustain"], c["soft"] = [80, 26, 0], [0, 1, 1]
    notes = chunk_to_notes(c)
    assert [(n["sp"], n["sf"]) for n in notes] == [(80, 0), (26, 1), (0, 1)]
    arr = notes_to_array(notes)
    assert list(arr["sustain"]) == [26, 80, 0]        # sorted by onset
    back = load_csv(save_csv(arr, tmp_path / "p.csv"))
    assert list(back["sustain"]) == [26, 80, 0] and list(back["soft"]) == [1, 0, 1]
    ev = np.array([(0.1, 64, 127), (1.5, 64, 0), (0.0, 67, 127)],
                  [("time_sec", "f8"), ("number", "i2"), ("value", "i2")])
    dicts = pedal_to_events(ev, variation=2)
    assert dicts[0] == {"t": 0.1, "cc": 64, "value": 127, "v": 2}
    again = events_to_pedal(dicts)
    assert list(again["time_sec"]) == [0.0, 0.1, 1.5] and list(again["number"]) == [67, 64, 64]
    pm = pretty_midi.PrettyMIDI(str(save_midi(arr, tmp_path / "p.mid", pedal=again)))
    cc = [(round(x.time, 3), x.number, x.value) for x in pm.instruments[0].control_changes]
    assert (0.1, 64, 127) in cc and (1.5, 64, 0) in cc and (0.0, 67, 127) in cc


def test_chunk_to_notes_rounds_to_short_decimals_and_drops_non_finite_values():
    """The columns are rounded at once (numpy): each value is the double nearest its rounded
    decimal (short in JSON), non-finite ones are 0, and the score position comes with "b"."""
    import json

    c = _chunk()
    c["z"][0] = [np.nan, 1 / 3, -2 / 3, np.inf, 0.123449]
    c["onset_sec"][0] = 1 / 7
    notes = chunk_to_notes(c, beats=np.array([0.0, 1 / 3, 2.5]))
    assert notes[0]["z"] == [0.0, 0.3333, -0.6667, 0.0, 0.1234]
    assert notes[0]["onset"] == 0.1429 and '"onset": 0.1429,' in json.dumps(notes[0])
    assert [n["b"] for n in notes] == [0.0, 0.3333, 2.5]
    assert list(notes[0]) == ["i", "id", "pitch", "onset", "duration", "velocity", "tempo", "z", "v", "b"]


def test_a_chunk_message_from_encoded_text_is_the_message_of_its_values():
    from webapp.jobs.notes import notes_message_text
    from webapp.jsontext import json_text

    notes = [{"i": 0, "id": "n0-1", "onset": 0.1234, "z": [0.5, -1.0], "v": 0}, {"i": 1, "id": "n\u00e9\"1", "v": 1}]
    pedal = [{"t": 0.5, "cc": 64, "value": 127, "v": 0}]
    text = notes_message_text(seq=7, notes_json=json_text(notes), pedal_json=json_text(pedal))
    assert json.loads(text) == {"type": "notes", "seq": 7, "notes": notes, "pedal": pedal}
    assert json.loads(notes_message_text(seq=0, notes_json="[]", pedal_json="[]"))["notes"] == []
