"""Copy the browser's third-party files from node_modules into static/vendor/.

Run after ``npm ci`` (the README's setup does both)::

    npm ci && python scripts/collect_assets.py

It copies, without any build step:

- the Verovio WASM toolkit (``verovio-module.mjs``, the emscripten module with the
  WASM embedded, and ``verovio.mjs``, the toolkit wrapper), renamed to ``.js`` so that
  every static server sends them as JavaScript;
- the Salamander Grand Piano V3 samples (CC BY 3.0, Alexander Holm) of the velocity
  layers listed in ``package.json``, renamed from ``D#4v8.mp3`` to ``Ds4.mp3`` (no ``#``
  in URLs), under ``static/vendor/piano/v<layer>/``, with a ``manifest.json`` listing
  layers and MIDI pitches that the browser sampler reads.

Exit code 2 with a message when node_modules is missing or incomplete.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "node_modules"
VENDOR = ROOT / "static" / "vendor"
NAMES = {"C": 0, "C#": 1, "D": 2, "D#": 3, "E": 4, "F": 5, "F#": 6, "G": 7, "G#": 8,
         "A": 9, "A#": 10, "B": 11}
SAMPLE_RE = re.compile(r"^([A-G]#?)(-?\d)v(\d+)\.mp3$")
SAMPLE_PKG_RE = re.compile(r"^@audio-samples/piano-mp3-velocity(\d+)$")


def fail(message: str) -> None:
    print(f"collect_assets: {message}", file=sys.stderr)
    sys.exit(2)


def copy_if_changed(src: Path, dst: Path) -> bool:
    """Copy ``src`` to ``dst`` unless a file of the same size and age is there."""
    if dst.exists():
        s, d = src.stat(), dst.stat()
        if s.st_size == d.st_size and int(s.st_mtime) <= int(d.st_mtime):
            return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dst)
    return True


def collect_verovio() -> int:
    dist = NODE / "verovio" / "dist"
    pairs = {"verovio-module.mjs": "verovio-module.js", "verovio.mjs": "verovio.js"}
    copied = 0
    for src_name, dst_name in pairs.items():
        src = dist / src_name
        if not src.is_file():
            fail(f"{src} is missing: run `npm ci` first")
        copied += copy_if_changed(src, VENDOR / "verovio" / dst_name)
    lic = NODE / "verovio" / "package.json"
    version = json.loads(lic.read_text())["version"]
    (VENDOR / "verovio" / "VERSION").write_text(f"verovio {version} (LGPL-3.0-or-later)\n")
    return copied


def collect_piano() -> int:
    package = json.loads((ROOT / "package.json").read_text())
    layers = sorted(int(m.group(1)) for name in package.get("dependencies", {})
                    if (m := SAMPLE_PKG_RE.match(name)))
    if not layers:
        fail("package.json lists no @audio-samples/piano-mp3-velocity* package")
    copied = 0
    manifest = {"source": "Salamander Grand Piano V3 by Alexander Holm, CC BY 3.0",
                "format": "mp3", "layers": []}
    for layer in layers:
        audio = NODE / "@audio-samples" / f"piano-mp3-velocity{layer}" / "audio"
        if not audio.is_dir():
            fail(f"{audio} is missing: run `npm ci` first")
        pitches = []
        for src in sorted(audio.iterdir()):
            m = SAMPLE_RE.match(src.name)
            if not m:
                continue
            name, octave = m.group(1), int(m.group(2))
            pitch = 12 * (octave + 1) + NAMES[name]
            dst = VENDOR / "piano" / f"v{layer}" / f"{name.replace('#', 's')}{octave}.mp3"
            copied += copy_if_changed(src, dst)
            pitches.append({"pitch": pitch, "file": f"v{layer}/{dst.name}"})
        pitches.sort(key=lambda p: p["pitch"])
        manifest["layers"].append({"layer": layer, "velocity": min(127, layer * 8 - 4),
                                   "samples": pitches})
    (VENDOR / "piano" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return copied


def main() -> None:
    if not NODE.is_dir():
        fail(f"{NODE} not found: run `npm ci` in {ROOT} first")
    VENDOR.mkdir(parents=True, exist_ok=True)
    (VENDOR / ".gitignore").write_text("# made by scripts/collect_assets.py from node_modules\n*\n")
    n = collect_verovio() + collect_piano()
    print(f"collect_assets: {n} file(s) copied into {VENDOR.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
