"""Dev-only fixture site for the player (not part of the product).

Serves ``static/`` and a page with ``#player`` whose data attributes point at fixture
endpoints; the page replaces ``window.WebSocket`` with a fake (fake_ws.js) that streams
recorded NOTE chunks, out of order, with a duplicate and a dropped connection, so the
player's stream handling can be exercised without Django, Redis or the model.

The fixture performance is made from a piano score of music21's corpus engraved by the
python ``verovio`` toolkit: note ids are Verovio's (repeated passes, ``abc-rend2`` in its
timemap, become ``abc-2`` as in partitura's unfolding), onsets follow a gently varying tempo.
"""
from __future__ import annotations

import json
import math
import mimetypes
import threading
import uuid
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
CHUNK = 64


def corpus_score() -> Path:
    import music21

    return Path(music21.__file__).parent / "corpus" / "schumann_clara" / "polonaise_op1n1.mxl"


def make_fixture(folder: Path, score: Path | None = None) -> dict:
    """Write score.mei, notemap.json, chunks.json and notes.json into ``folder``."""
    import verovio

    tk = verovio.toolkit()
    tk.setOptions({"xmlIdSeed": 1})
    if not tk.loadFile(str(score or corpus_score())):
        raise RuntimeError("verovio could not load the fixture score")
    mei = tk.getMEI()
    events = tk.renderToTimemap({"includeMeasures": False})
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for ev in events:
        for i in ev.get("on", []):
            starts[i] = ev["qstamp"]
        for i in ev.get("off", []):
            ends[i] = ev["qstamp"]
    qs = sorted({ev["qstamp"] for ev in events})

    def tempo(q: float) -> float:
        return 96.0 + 14.0 * math.sin(q / 6.0)

    sec, t, prev = {}, 0.0, 0.0
    for q in qs:
        t += (q - prev) * 60.0 / tempo(prev)
        sec[q], prev = t, q
    notes = []
    for k, (vid, q) in enumerate(sorted(starts.items(), key=lambda kv: (kv[1], kv[0]))):
        pitch = tk.getMIDIValuesForElement(vid).get("pitch")
        if not pitch:
            continue
        end = ends.get(vid, q + 1.0)
        onset = sec[q] + 0.004 * math.sin(k)
        written, _, rend = vid.partition("-rend")
        notes.append({
            "i": len(notes), "id": f"{written}-{rend or 1}", "pitch": int(pitch), "onset": round(onset, 4),
            "duration": round(max(0.05, sec.get(end, onset + 0.5) - sec[q]), 4),
            "velocity": int(56 + 30 * math.sin(q / 5.0) + 8 * math.sin(k)), "tempo": round(tempo(q), 2),
            "z": [0.0] * 5,
        })
    chunks = [notes[s:s + CHUNK] for s in range(0, len(notes), CHUNK)]
    (folder / "score.mei").write_text(mei)
    written_ids = {n["id"].rsplit("-", 1)[0] for n in notes}
    (folder / "notemap.json").write_text(json.dumps({w: w for w in written_ids}))
    (folder / "chunks.json").write_text(json.dumps(chunks))
    (folder / "notes.json").write_text(json.dumps({"notes": notes}))
    return {"n_notes": len(notes), "n_chunks": len(chunks)}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Player dev fixture</title>
<link rel="stylesheet" href="/static/css/player.css">
<script src="/dev/fake_ws.js"></script>
<script type="module" src="/static/js/player.js"></script>
</head><body style="margin:0 1rem">
<h1>Player dev fixture</h1>
<div id="player" data-score-id="dev" data-mei-url="/dev/score.mei" data-notemap-url="/dev/notemap.json"
     data-render-url="/dev/render" data-takes-url="/dev/takes.json" data-csrf="dev-token"
     data-n-notes="{n_notes}"></div>
</body></html>
"""


class DevSite:
    """Threaded HTTP server on a free loopback port; a context manager with ``.url``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.info = make_fixture(folder)
        (folder / "index.html").write_text(PAGE.replace("{n_notes}", str(self.info["n_notes"])))
        self.takes: list[dict] = []
        self.csrf_seen: list[str] = []
        site = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def translate_path(self, path: str) -> str:
                path = path.split("?", 1)[0]
                if path.startswith("/static/"):
                    return str(REPO / "static" / path[len("/static/"):])
                if path == "/dev/fake_ws.js":
                    return str(HERE / "fake_ws.js")
                if path.startswith("/dev/"):
                    return str(site.folder / path[len("/dev/"):])
                return str(site.folder / "index.html")

            def guess_type(self, path: str) -> str:
                if str(path).endswith((".js", ".mjs")):
                    return "text/javascript"
                return mimetypes.guess_type(str(path))[0] or "application/octet-stream"

            def do_GET(self) -> None:
                if self.path.startswith("/dev/takes.json"):
                    return self.reply(200, site.takes)
                if self.path.startswith("/dev/download/"):
                    return self.reply(200, {"format": self.path.rsplit(".", 1)[-1]})
                return super().do_GET()

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                site.csrf_seen.append(self.headers.get("X-CSRFToken", ""))
                if self.path == "/dev/render":
                    job = str(uuid.uuid4())
                    perf = f"perf-{len(site.takes) + 1}"
                    site.takes.append({
                        "performance_id": perf, "job_id": job, "seed": body.get("seed"),
                        "created": "2026-01-01T12:00:00Z", "state": "done",
                        "n_notes": site.info["n_notes"], "notes_url": "/dev/notes.json",
                        "downloads": {k: f"/dev/download/{perf}.{k}" for k in ("mid", "wav", "ogg", "csv")},
                    })
                    return self.reply(201, {"job_id": job, "ws_url": f"/ws/jobs/{job}/", "performance_id": None,
                                            "cancel_url": f"/api/v1/jobs/{job}/cancel/"})
                if self.path.startswith("/api/v1/jobs/") and self.path.endswith("/cancel/"):
                    return self.reply(200, {"job_id": self.path.split("/")[4], "state": "cancelled"})
                return self.reply(404, {"error": "not found"})

            def reply(self, status: int, data) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> DevSite:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":  # manual use: python -m tests.browser.devsite.server
    import tempfile
    import time

    with DevSite(Path(tempfile.mkdtemp())) as s:
        print(s.url, s.info, flush=True)
        while True:
            time.sleep(3600)
