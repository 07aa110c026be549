"""webapp.jobs.controls (validation and expansion of render controls) and the reference aligner's
time limit (webapp.references.services, a real child process)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from render.score import NOTE_DTYPE, score_bar_numbers
from webapp.jobs.controls import ControlError, controls_clean, controls_render_kwargs, delta_curve


def _notes(bar_starts):
    notes = np.zeros(len(bar_starts), NOTE_DTYPE)
    notes["bar_onset_beat"] = bar_starts
    notes["onset_beat"] = bar_starts
    return notes


def test_clean_normalises_and_defaults_mode_to_perturb():
    c = controls_clean(controls={"delta": [1, "0.5", 0, 0, -2], "variations": "3",
                                 "base_tempo_bpm": 96.123, "expressiveness": 0, "temperature": "0.25",
                                 "reference_id": "00000000-0000-0000-0000-00000000000A",
                                 "z": None})
    assert c == {"delta": [1.0, 0.5, 0.0, 0.0, -2.0], "mode": "perturb", "variations": 3,
                 "base_tempo_bpm": 96.12, "expressiveness": 0.0, "temperature": 0.25,
                 "reference_id": "00000000-0000-0000-0000-00000000000a"}
    assert controls_clean(controls={}) == {}
    assert controls_clean(controls={"mode": "fixed", "z": [0, 0, 0, 0, 1]})["z"][4] == 1.0
    assert controls_clean(controls={"sections": []}) == {}   # no sections: nothing to steer
    assert controls_clean(controls={"pedal": "none"}) == {"pedal": "none"}
    assert controls_clean(controls={"pedal": "model"}) == {}  # the default is not stored
    ref = {"reference_id": "00000000-0000-0000-0000-00000000000a", "pedal": "reference"}
    assert controls_clean(controls=ref) == ref


@pytest.mark.parametrize("controls, message", [
    ({"delta": [0, 0, 0, 0, float("inf")]}, "delta[4] must be between"),
    ({"delta": [True, 0, 0, 0, 0]}, "delta[0] must be a number"),
    ({"variations": True}, "whole number"),
    ({"temperature": 2.5}, "temperature must be between 0 and 2"),
    ({"mode": "fixed", "delta": [0] * 5}, "cannot be used with mode 'fixed'"),
    ({"sections": [{"from_bar": 1, "to_bar": 2}]}, "exactly from_bar, to_bar and delta"),
    ({"sections": [{"from_bar": 1, "to_bar": 30, "delta": [0] * 5}]}, "between 1 and 20"),
    ({"sections": [{"from_bar": 1, "to_bar": 1, "delta": [0] * 5}] * 33}, "at most 32"),
    ({"pedal": "half"}, "pedal must be one of model, none, reference"),
    ({"pedal": "reference"}, "needs a reference performance"),
])
def test_clean_refuses_with_a_message_naming_the_control(controls, message):
    with pytest.raises(ControlError) as err:
        controls_clean(controls=controls, n_bars=20)
    assert message in str(err.value)


def test_bars_are_counted_in_playing_order_and_sections_become_a_per_note_curve():
    notes = _notes([0, 0, 4, 4, 8, 12, 12, 16])
    assert score_bar_numbers(notes).tolist() == [1, 1, 2, 2, 3, 4, 4, 5]
    controls = {"mode": "perturb", "delta": [1, 0, 0, 0, 0],
                "sections": [{"from_bar": 2, "to_bar": 3, "delta": [0, 2, 0, 0, 0]},
                             {"from_bar": 5, "to_bar": 9, "delta": [0, 0, 0, 0, -1]}]}
    curve = delta_curve(controls=controls, notes=notes)
    assert curve.shape == (8, 5)
    assert curve[:, 0].tolist() == [1, 1, 0, 0, 0, 1, 1, 0]
    assert curve[:, 1].tolist() == [0, 0, 2, 2, 2, 0, 0, 0] and curve[7, 4] == -1
    kw = controls_render_kwargs(controls=controls, notes=notes)
    assert kw["mode"] == "perturb" and kw["delta"] is not None and np.shape(kw["delta"]) == (8, 5)
    assert controls_render_kwargs(controls={"mode": "perturb"}, notes=notes)["delta"] == [0.0] * 5
    assert "sections" not in controls_render_kwargs(controls=controls, notes=notes)


def test_a_slow_alignment_is_stopped_at_the_time_limit(settings, tmp_path):
    """A real child process killed at REFERENCE_ALIGN_TIMEOUT_S (here far below its start-up)."""
    from tests.data.corpus import _many_notes_midi
    from webapp.references.services import ReferenceRefused, _align_in_child
    from webapp.scores.prep import prepare

    midi = tmp_path / "etude.mid"
    midi.write_bytes(_many_notes_midi(64))
    prepare(midi, tmp_path, name="etude.mid", max_notes=1000, max_bytes=10**6)
    settings.REFERENCE_ALIGN_TIMEOUT_S = 0.01
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ReferenceRefused, match="took longer than 0.01 s"):
        _align_in_child(midi, Path(tmp_path / "parsed.npz"), out)
    assert not (out / "reference.npz").exists()
    settings.REFERENCE_ALIGN_TIMEOUT_S = 120
    report = _align_in_child(midi, tmp_path / "parsed.npz", out)
    assert report["n_matched"] == 64 and report["from_bar"] == 1 and report["to_bar"] == 4
