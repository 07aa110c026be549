"""ml.bench runs end to end (a tiny model, a two-bar score) and prints its figures, the first
chunk as the web worker chunks (16 notes, doubling)."""
from __future__ import annotations

import json
from pathlib import Path

from ml import bench

SCORE = Path(__file__).resolve().parents[2] / "data" / "scores" / "two_bars.musicxml"


def test_bench_prints_every_figure_with_the_serving_chunks(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "bench.json"
    bench.main(["--score", str(SCORE), "--checkpoint", tiny_checkpoint, "--variations", "2", "--jobs", "2",
                "--chunk-notes", "4", "--max-chunk-notes", "8", "--repeat", "2", "--json", str(out)])
    res = json.loads(out.read_text())
    assert res["chunk_notes"] == "4 doubling to 8"
    assert res["notes"] > 8   # more than one chunk
    for key in ("render_notes_per_s", "render_first_chunk_ms", "plain_loop_notes_per_s", "batched_notes_per_s",
                "with_pedal_events_ratio", "jobs_together_speedup", "train_notes_per_s", "numpy_render_notes_per_s",
                "render_vs_numpy", "batched_vs_numpy"):
        assert res[key] > 0, key
    assert res["decoder"] == "CDecoder"
    assert "render_first_chunk_ms" in capsys.readouterr().out
