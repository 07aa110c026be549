"""Export a rendered performance: MIDI, a per-note CSV, and audio through FluidSynth.

``notes`` everywhere is a structured array with at least ``pitch, onset_sec (s),
duration_sec (s), velocity`` (e.g. `render.encoding.RENDERED_DTYPE`, or the model's chunks
with ``variation`` and ``z``); MIDI and CSV need nothing else, the CSV keeps what is there.

Audio: the performance is synthesised by the FluidSynth command-line program with a piano
soundfont (env ``SOUNDFONT``, else the first Debian soundfont found, see `SOUNDFONTS`),
then normalised in numpy: gain to an RMS of ``TARGET_RMS_DBFS`` (-18 dBFS over the
non-silent part, about -16 LUFS for piano), limited so that the peak stays at or below
``PEAK_DBFS`` (-1.5 dBFS, so that an OGG stays under -1 dBFS once decoded), with a 10 ms fade-in
and a 300 ms fade-out; written as 16-bit WAV or Ogg Vorbis (soundfile).
"""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SOUNDFONTS = ("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3",
              "/usr/share/sounds/sf3/MuseScore_General.sf3",
              "/usr/share/sounds/sf2/FluidR3_GM.sf2",
              "/usr/share/sounds/sf3/default-GM.sf3")
TARGET_RMS_DBFS = -18.0
PEAK_DBFS = -1.5  # 0.5 dB below the -1 dBFS ceiling: Vorbis (OGG) decoding overshoots peaks
TAIL_SEC = 1.0          # release and reverb after the last note-off
FADE_IN_SEC, FADE_OUT_SEC = 0.01, 0.3
MIDI_RESOLUTION = 960   # ticks per quarter at 120 bpm: ~0.5 ms

CSV_FIELDS = ("score_note_id", "onset_sec", "duration_sec", "velocity")
CSV_EXTRA = ("pitch", "tempo_bpm", "duration_100", "deviation_100", "tempo_log_50", "sustain", "soft", "variation")
CSV_TYPES = {"pitch": "i2", "tempo_bpm": "f4", "duration_100": "i2", "deviation_100": "i2",
             "tempo_log_50": "i2", "sustain": "i2", "soft": "i2", "variation": "i2"}


class AudioError(RuntimeError):
    """Audio could not be made (FluidSynth or the soundfont missing, synthesis failed)."""


# --- MIDI ------------------------------------------------------------------------------------

def to_pretty_midi(notes: np.ndarray, *, pedal=None):
    """A pretty_midi.PrettyMIDI with one piano (program 0) playing ``notes``.

    Parameters
    ----------
    notes : structured array with pitch, onset_sec, duration_sec, velocity; shape (N,).
    pedal : optional array of (time_sec, number, value) control changes (e.g. sustain CC 64,
        soft CC 67; `render.performance.PEDAL_DTYPE`).
    """
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(resolution=MIDI_RESOLUTION, initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0, name="Piano")
    on = np.maximum(np.asarray(notes["onset_sec"], float), 0.0)
    off = on + np.maximum(np.asarray(notes["duration_sec"], float), 0.005)
    vel = np.clip(np.rint(notes["velocity"]), 1, 127).astype(int)
    pitch = np.clip(notes["pitch"], 0, 127).astype(int)
    piano.notes = [pretty_midi.Note(int(v), int(p), float(a), float(b))
                   for v, p, a, b in zip(vel, pitch, on, off)]
    if pedal is not None:
        rows = pedal.tolist() if hasattr(pedal, "dtype") else list(pedal)
        piano.control_changes = [
            pretty_midi.ControlChange(int(num), int(np.clip(val, 0, 127)), float(max(t, 0.0)))
            for t, num, val in rows]
    pm.instruments.append(piano)
    return pm


TICKS_PER_SEC = MIDI_RESOLUTION * 2   # the files' one tempo: 120 bpm


def _vlq_events(delta: np.ndarray, data: np.ndarray) -> np.ndarray:
    """MIDI track events as bytes: each a variable-length delta time (ticks) and 3 data bytes.
    delta (E,) int, data (E, 3) uint8 -> (bytes,) uint8, all at once (no loop over events)."""
    nb = 1 + (delta >= 1 << 7) + (delta >= 1 << 14) + (delta >= 1 << 21)
    size = nb + 3
    start = np.cumsum(size) - size
    out = np.zeros(int(size.sum()), np.uint8)
    for k in range(4):
        has = nb > k
        shift = 7 * (nb[has] - 1 - k)
        out[start[has] + k] = ((delta[has] >> shift) & 0x7F) | np.where(k < nb[has] - 1, 0x80, 0)
    for j in range(3):
        out[start + nb + j] = data[:, j]
    return out


def midi_file_bytes(notes: np.ndarray, *, pedal=None) -> bytes:
    """A standard MIDI file (format 1, 960 ticks per quarter at 120 bpm, ~0.5 ms) of one piano
    (program 0, channel 0) playing ``notes``, with the control changes in ``pedal``.

    Parameters
    ----------
    notes : structured array with pitch, onset_sec (s), duration_sec (s), velocity; shape (N,).
    pedal : optional (time_sec, number, value) control changes (`render.performance.PEDAL_DTYPE`).

    At one tick, control changes come first, then note-offs, then note-ons: a key struck again
    where it is released sounds again. Written in numpy: pretty_midi's writer took ~90 ms for a
    2,300-note take, on the path between a render's last note and its "done".
    """
    on = np.maximum(np.asarray(notes["onset_sec"], float), 0.0)
    off = on + np.maximum(np.asarray(notes["duration_sec"], float), 0.005)
    vel = np.clip(np.rint(notes["velocity"]), 1, 127).astype(np.int64)
    pitch = np.clip(notes["pitch"], 0, 127).astype(np.int64)
    if pedal is not None and len(pedal):
        rows = np.asarray(pedal.tolist() if hasattr(pedal, "dtype") else list(pedal), float).reshape(-1, 3)
    else:
        rows = np.zeros((0, 3))
    n, m = len(on), len(rows)
    tick = np.rint(np.concatenate([np.maximum(rows[:, 0], 0.0), off, on]) * TICKS_PER_SEC).astype(np.int64)
    kind = np.concatenate([np.zeros(m, np.int64), np.ones(n, np.int64), np.full(n, 2, np.int64)])
    data = np.concatenate([
        np.stack([np.full(m, 0xB0), np.clip(rows[:, 1], 0, 127), np.clip(rows[:, 2], 0, 127)], -1),
        np.stack([np.full(n, 0x90), pitch, np.zeros(n, np.int64)], -1),    # note-off: note-on velocity 0
        np.stack([np.full(n, 0x90), pitch, vel], -1)]).astype(np.uint8)
    order = np.lexsort((kind, tick))
    tick = tick[order]
    events = _vlq_events(np.diff(tick, prepend=0), data[order])
    name = b"Piano"
    track = (b"\x00\xff\x03" + bytes([len(name)]) + name + b"\x00\xc0\x00"
             + events.tobytes() + b"\x00\xff\x2f\x00")
    tempo = (b"\x00\xff\x51\x03" + (60_000_000 // 120).to_bytes(3, "big")
             + b"\x00\xff\x58\x04\x04\x02\x18\x08" + b"\x00\xff\x2f\x00")

    def chunk(kind: bytes, body: bytes) -> bytes:
        return kind + len(body).to_bytes(4, "big") + body

    header = (1).to_bytes(2, "big") + (2).to_bytes(2, "big") + MIDI_RESOLUTION.to_bytes(2, "big")
    return chunk(b"MThd", header) + chunk(b"MTrk", tempo) + chunk(b"MTrk", track)


def save_midi(notes: np.ndarray, path, *, pedal=None) -> Path:
    """Write ``notes`` (and optional pedal events) as a one-track piano MIDI file
    (`midi_file_bytes`)."""
    path = Path(path)
    path.write_bytes(midi_file_bytes(notes, pedal=pedal))
    return path


# --- CSV -------------------------------------------------------------------------------------

def save_csv(notes: np.ndarray, path) -> Path:
    """Write one row per note: score_note_id, onset_sec, duration_sec, velocity, then the
    fields among pitch, tempo_bpm, duration_100, deviation_100, tempo_log_50, sustain, soft, variation and
    z0..z4 that ``notes`` has."""
    names = notes.dtype.names
    extra = [f for f in CSV_EXTRA if f in names]
    nz = notes.dtype["z"].shape[0] if "z" in names and notes.dtype["z"].shape else 0
    header = [*CSV_FIELDS, *extra, *(f"z{k}" for k in range(nz))]
    cols = [notes["id"].astype(str) if "id" in names else np.full(len(notes), ""),
            _fmt(notes["onset_sec"], "%.6f"), _fmt(notes["duration_sec"], "%.6f"),
            np.clip(np.rint(notes["velocity"]), 1, 127).astype(int).astype(str)]
    for f in extra:
        cols.append(_fmt(notes[f], "%.3f") if CSV_TYPES[f].startswith("f")
                    else notes[f].astype(int).astype(str))
    for k in range(nz):
        cols.append(_fmt(notes["z"][:, k], "%.5f"))
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(zip(*cols))
    return path


def load_csv(path) -> np.ndarray:
    """Read a CSV written by `save_csv` back into a structured array (``id`` for
    score_note_id; ``z`` (5,) when z0..z4 are there)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if list(header[:4]) != list(CSV_FIELDS):
        raise ValueError(f"{Path(path).name}: not a per-note CSV (header {header[:4]})")
    cols = {h: [r[i] for r in body] for i, h in enumerate(header)}
    zs = [h for h in header if h.startswith("z") and h[1:].isdigit()]
    dtype = [("id", "U32"), ("onset_sec", "f8"), ("duration_sec", "f8"), ("velocity", "i2")]
    dtype += [(f, CSV_TYPES[f]) for f in CSV_EXTRA if f in cols]
    if zs:
        dtype.append(("z", "f4", (len(zs),)))
    out = np.zeros(len(body), dtype)
    out["id"] = cols["score_note_id"]
    for name, *_ in dtype[1:]:
        if name == "z":
            out["z"] = np.array([cols[z] for z in zs], float).T.reshape(len(body), len(zs))
        else:
            out[name] = np.array(cols[name], float)
    return out


def _fmt(values, spec):
    return np.char.mod(spec, np.asarray(values, float))


# --- audio -----------------------------------------------------------------------------------

def find_soundfont(soundfont=None) -> Path:
    """The soundfont to use: the argument, env SOUNDFONT, else the first of `SOUNDFONTS`."""
    cands = [soundfont] if soundfont else [os.environ.get("SOUNDFONT"), *SOUNDFONTS]
    for c in cands:
        if c and Path(c).is_file():
            return Path(c)
    raise AudioError(f"no soundfont found (tried {', '.join(str(c) for c in cands if c)}); set "
                     "SOUNDFONT or install the Debian package musescore-general-soundfont-small")


def render_audio(midi_or_notes, path, *, fmt: str | None = None, soundfont=None,
                 sample_rate: int = 44100, timeout_s: float | None = None) -> Path:
    """Synthesise a performance to WAV or OGG.

    Parameters
    ----------
    midi_or_notes : a MIDI file path, a pretty_midi.PrettyMIDI, or a notes array.
    path : output file.
    fmt : ``"wav"`` or ``"ogg"``; default from the extension of ``path`` (else wav).
    soundfont : path of an .sf2/.sf3 file; default `find_soundfont`.
    sample_rate : Hz.
    timeout_s : limit for FluidSynth; default 60 s plus the music's length.

    Returns
    -------
    Path of the written file: stereo, ``sample_rate`` Hz, last note-off + `TAIL_SEC` long.
    """
    import pretty_midi

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "wav").lower()
    if fmt not in ("wav", "ogg"):
        raise ValueError(f"audio format must be wav or ogg, not {fmt!r}")
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise AudioError("the fluidsynth program is not installed (Debian package fluidsynth)")
    sf = find_soundfont(soundfont)
    if isinstance(midi_or_notes, pretty_midi.PrettyMIDI):
        pm = midi_or_notes
    elif isinstance(midi_or_notes, (str, Path)):
        pm = pretty_midi.PrettyMIDI(str(midi_or_notes))
    else:
        pm = to_pretty_midi(midi_or_notes)
    end = pm.get_end_time()
    length = int(round((end + TAIL_SEC) * sample_rate))
    with tempfile.TemporaryDirectory(prefix="render-audio-") as tmp:
        mid, raw = Path(tmp) / "in.mid", Path(tmp) / "out.raw"
        pm.write(str(mid))
        cmd = [exe, "-n", "-i", "-q", "-o", "synth.dynamic-sample-loading=1", "-g", "0.5",
               "-R", "1", "-C", "0", "-r", str(sample_rate), "-O", "float", "-T", "raw",
               "-F", str(raw), str(sf), str(mid)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=timeout_s or 60.0 + 2.0 * end)
        except subprocess.TimeoutExpired as exc:
            raise AudioError(f"FluidSynth took longer than {exc.timeout:.0f} s") from exc
        if proc.returncode != 0 or not raw.exists():
            msg = " ".join((proc.stderr or proc.stdout or "").split())[:200]
            raise AudioError(f"FluidSynth failed (exit {proc.returncode}): {msg}")
        audio = np.fromfile(raw, dtype="<f4")
    audio = audio[: len(audio) // 2 * 2].reshape(-1, 2)
    audio = np.pad(audio[:length], ((0, max(0, length - len(audio))), (0, 0)))
    audio = normalise(audio, sample_rate)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_audio(path, audio, sample_rate, fmt)


def write_audio(path, audio: np.ndarray, sample_rate: int, fmt: str) -> Path:
    """Write (T, C) float audio as 16-bit WAV or Ogg Vorbis, in blocks: libvorbis overflows
    its stack on long single writes (libsndfile issue 1095; a crash past ~95 s at 44.1 kHz)."""
    import soundfile

    kind = ("WAV", "PCM_16") if fmt == "wav" else ("OGG", "VORBIS")
    with soundfile.SoundFile(str(path), "w", sample_rate, audio.shape[1], format=kind[0],
                             subtype=kind[1]) as f:
        for i in range(0, len(audio), 32768):
            f.write(audio[i:i + 32768])
    return Path(path)


def normalise(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS to `TARGET_RMS_DBFS`, peak at most `PEAK_DBFS`, fades in and out; (T, C) float32."""
    audio = np.asarray(audio, np.float32)
    frame = max(1, sample_rate // 20)  # 50 ms frames; ignore the silent ones
    n = len(audio) // frame * frame
    if n:
        energy = np.mean(audio[:n].reshape(-1, frame, audio.shape[1]) ** 2, axis=(1, 2))
        loud = energy[energy > 1e-7]
        rms = float(np.sqrt(loud.mean())) if len(loud) else 0.0
    else:
        rms = 0.0
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if rms > 0 and peak > 0:
        gain = min(10 ** (TARGET_RMS_DBFS / 20) / rms, 10 ** (PEAK_DBFS / 20) / peak)
        audio = audio * gain
    fi, fo = int(FADE_IN_SEC * sample_rate), int(FADE_OUT_SEC * sample_rate)
    if len(audio) > fi + fo:
        audio[:fi] *= np.linspace(0.0, 1.0, fi, dtype=np.float32)[:, None]
        audio[len(audio) - fo:] *= np.linspace(1.0, 0.0, fo, dtype=np.float32)[:, None]
    return audio
