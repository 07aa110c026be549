"""Render a score with the trained model from the command line.

    python -m ml.render SCORE -o OUT.mid [--csv OUT.csv] [--seed N] [--delta d1,..,d5]
        [--mode prior|perturb|fixed] [--z z1,..,z5] [--reference FILE.mid|FILE.match] [--variations N]
        [--base-tempo BPM] [--expressiveness E] [--temperature T] [--point] [--no-repeats] [--checkpoint PATH]

--point renders the model's point estimate: z at the prior mean at every note and each head's
most likely class (no sampling anywhere; the same notes at every seed).

The MIDI files carry the model's sustain (CC64) and soft (CC67) pedal. With several variations,
OUT.mid holds the first and OUT-2.mid, OUT-3.mid ... the others
(likewise for the CSV). Bad input: a one-line message and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _floats(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if len(vals) != 5:
        raise argparse.ArgumentTypeError(f"expected 5 numbers (one per latent dimension), got {len(vals)}")
    return vals


def variant_path(path: Path, v: int) -> Path:
    return path if v == 0 else path.with_name(f"{path.stem}-{v + 1}{path.suffix}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.render", description=__doc__.split("\n")[0])
    ap.add_argument("score", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True, help="performance MIDI file to write")
    ap.add_argument("--csv", type=Path, help="per-note CSV to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=("prior", "perturb", "fixed"), default=None)
    ap.add_argument("--delta", type=_floats, help="5 numbers: the paper's Delta (implies --mode perturb)")
    ap.add_argument("--z", type=_floats, help="5 numbers: a fixed interpretation vector (mode fixed)")
    ap.add_argument("--reference", type=Path,
                    help="a performance of this score (or of a passage of it): a performance MIDI file, aligned "
                         "automatically, or a match file; the render continues in its style")
    ap.add_argument("--variations", type=int, default=1)
    ap.add_argument("--base-tempo", type=float, default=None, help="quarter notes per minute")
    ap.add_argument("--expressiveness", type=float, default=1.0)
    ap.add_argument("--temperature", type=float, default=None,
                    help="sampling temperature of the notes (0 = most likely; default the model card's)")
    ap.add_argument("--point", action="store_true",
                    help="the point estimate: z at the prior mean, the expected class of each ordinal head "
                         "(ml.defaults.POINT_TEMPERATURE)")
    ap.add_argument("--no-repeats", action="store_true", help="play the score without its repeats")
    ap.add_argument("--checkpoint", type=Path, default=None)
    ap.add_argument("--device", default=None)
    a = ap.parse_args(argv)
    mode = a.mode or ("perturb" if a.delta else "fixed" if a.z else "prior")
    if a.point:
        if a.mode or a.delta or a.z or a.temperature not in (None, 0.0):
            print("error: --point takes no --mode, --delta, --z or --temperature", file=sys.stderr)
            return 2
        mode, a.delta = "perturb", [0.0] * 5
    from render.errors import RenderError
    from render.loaders import load_score
    from render.export import save_csv, save_midi
    from ml.inference import Renderer, point_temperature, reference_from_file
    if a.point:
        a.temperature = point_temperature()
    try:
        score = load_score(a.score, unfold=not a.no_repeats)
        reference = None
        if a.reference is not None:
            reference, report = reference_from_file(score, a.reference, base_tempo_bpm=a.base_tempo)
            if report is not None:
                print(f"reference: {report.n_matched} of {report.n_performed_notes} performed notes matched, "
                      f"{report.n_missing} score notes missing, {report.n_extra} extra; beats "
                      f"{report.start_beat:g}-{report.end_beat:g} ({report.passage_fraction:.0%} of the score)",
                      file=sys.stderr)
        renderer = Renderer.load(a.checkpoint, a.device)
        t0 = time.time()
        notes = np.concatenate(list(renderer.render(
            score, seed=a.seed, mode=mode, delta=a.delta, z=a.z, reference=reference,
            base_tempo_bpm=a.base_tempo, expressiveness=a.expressiveness, variations=a.variations,
            **({} if a.temperature is None else {"temperature": a.temperature}))))
        dt = time.time() - t0
    except (RenderError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from render.pedal import pedal_for_take
    for v in range(a.variations):
        take = notes[notes["variation"] == v]
        save_midi(take, variant_path(a.out, v), pedal=pedal_for_take(score.notes["onset_beat"], take))
        if a.csv:
            save_csv(take, variant_path(a.csv, v))
    for w in score.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"{score.n_notes} notes x {a.variations} in {dt:.2f} s ({score.n_notes * a.variations / dt:.0f} notes/s) "
          f"-> {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
