"""Speed of rendering and training, against a plain per-note eager loop measured in the same run.

    python -m ml.bench [--score FILE] [--checkpoint PATH] [--threads 1] [--chunk-notes 16]
                       [--max-chunk-notes 512] [--repeat 3] [--json OUT]

Prints (renders: the best of ``--repeat`` runs): end-to-end render throughput (score features
included) and first-chunk latency of `Renderer.render`, chunked as the web worker chunks (16
notes first, doubling to 512); the same model decoded by a plain per-note eager PyTorch loop
(module calls, softmax + multinomial, no precomputation) on the same score; 16 variations
batched; training notes/s on synthetic windows; peak resident memory after the renders (a
rendering worker's footprint) and after training. ``jobs_*``: several users' renders of the
score (different seeds and modes, chunks of 16) one after another vs advanced together in
shared passes (`Renderer.step`, a worker's render session).
``decoder``: the CPU decoder the renders used (ml.cdecode, compiled, unless DECODER=numpy or no
compiler); ``numpy_*``: the same render and takes with the numpy decoder (ml.fastdecode), the
baseline of the compiled loop. Ratios are against the plain loop; ``with_pedal_events_ratio``
compares the same render (and the batched takes) with the pedal events made per chunk, as the web
worker does, against without (issue 11: within 10 %).
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ml.fastdecode import NumpyDecoder
from ml.inference import Renderer, written_tempi
from ml.model import HEADS

DEFAULT_SCORES = [
    Path(__file__).resolve().parents[2] / "shared/data/nasap/Chopin/Ballades/1/xml_score.musicxml.xz",
]


def find_score(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    for p in DEFAULT_SCORES:
        if p.exists():
            return p
    import music21
    return Path(str(music21.corpus.getWork("joplin/maple_leaf_rag")))


def load_any(path: Path):
    from render.loaders import load_score
    if path.suffix == ".xz":
        import lzma
        import tempfile
        tmp = Path(tempfile.mkdtemp()) / path.stem
        tmp.write_bytes(lzma.open(path).read())
        path = tmp
    return load_score(path)


@torch.inference_mode()
def plain_loop(renderer: Renderer, score, seed: int = 0) -> float:
    """The same model, one note at a time with whole-module calls; returns seconds."""
    m = renderer.model
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    c = torch.cat([c for _, c in renderer.score_blocks(score, written_tempi(score, None))])
    h = m.init_state(1)[0]
    sizes = list(HEADS.values())
    for n in range(len(c)):
        mu, lv = m.prior_params(h[-1])
        z = mu + torch.randn(mu.shape, generator=gen) * torch.exp(0.5 * lv)
        ps = m.psi(z)
        hidden = F.leaky_relu(m.gen_in(torch.cat([c[n:n + 1], ps], -1)), 0.1)
        logits = m.gen_out(F.leaky_relu(m.gen_hidden(hidden), 0.1))
        x = torch.stack([torch.multinomial(F.softmax(p, -1), 1, generator=gen)[:, 0]
                         for p in logits.split(sizes, -1)], -1)
        inp = m.state_in(torch.cat([c[n:n + 1], m.embed_x(x), ps], -1))
        h = m.step_state(h, inp)
    return time.perf_counter() - t0


def time_render(renderer, score, pedal_stream: bool = False, **kw) -> tuple[float, float, int]:
    """(total seconds, first-chunk seconds, notes) of one `render` call, consumed fully;
    ``pedal_stream``: also turn each chunk into its pedal events per take, as the web worker does
    (render.pedal.PedalStream)."""
    from render.pedal import PedalStream
    beats = score.notes["onset_beat"]
    streams: dict = {}
    t0 = time.perf_counter()
    first, n = None, 0
    for chunk in renderer.render(score, **kw):
        if pedal_stream:
            for v in np.unique(chunk["variation"]):
                rows = chunk[chunk["variation"] == v]
                streams.setdefault(int(v), PedalStream()).feed(
                    beats[rows["index"]], rows["onset_sec"], rows["duration_sec"], rows["sustain"], rows["soft"])
        if first is None:
            first = time.perf_counter() - t0
        n += len(chunk)
    for st in streams.values():
        st.close()
    return time.perf_counter() - t0, first, n


def best_pair(renderer, score, repeat: int, **kw) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
    """The render timed without and with the pedal events (``time_render``), alternately
    ``repeat`` times: the best of each (the least seconds and first chunk; a busy machine only
    slows a run), both facing the same noise."""
    runs = [[time_render(renderer, score, pedal_stream=p, **kw) for p in (False, True)] for _ in range(repeat)]
    return tuple((min(r[p][0] for r in runs), min(r[p][1] for r in runs), runs[0][p][2]) for p in (0, 1))


def time_jobs(renderer, score, n_jobs: int, together: bool) -> tuple[float, int]:
    """(seconds, notes) of ``n_jobs`` renders of ``score`` with different seeds and modes, as
    different users' jobs: one after another, or advanced together in shared passes
    (`Renderer.step`, as a web worker's render session does)."""
    kws = [dict(seed=10 + j, chunk_notes=16, **({"mode": "perturb", "delta": np.full(5, 0.5)} if j % 2 else {}))
           for j in range(n_jobs)]
    t0 = time.perf_counter()
    n = 0
    if together:
        streams = [renderer.start(score, **kw) for kw in kws]
        while not all(s.done for s in streams):
            n += sum(len(c) for c in renderer.step(streams) if c is not None)
    else:
        for kw in kws:
            n += sum(len(c) for c in renderer.render(score, **kw))
    return time.perf_counter() - t0, n


def train_rate(renderer, steps: int = 3, batch: int = 64, window: int = 120) -> float:
    """Training notes/s of this architecture on random windows (forward, backward, Adam)."""
    from ml.model import CVRNN, elbo_loss
    torch.manual_seed(0)
    m = CVRNN(renderer.model.cfg).train()
    opt = torch.optim.Adam(m.parameters())
    from render.features import BEAT_FEATURES, FEATURE_CLASSES
    m.score.cnn.to(memory_format=torch.channels_last)  # as ml.train does
    feat = torch.stack([torch.randint(0, k, (batch, window)) for k in FEATURE_CLASSES.values()], -1)
    beats = torch.randn(batch, BEAT_FEATURES, 192)
    beat_pos = torch.sort(torch.randint(64, 128, (batch, window)), -1).values
    roll = (torch.rand(batch, 96, 512) < 0.05).float()
    pos = torch.sort(torch.randint(20, 108, (batch, window)), -1).values
    x = torch.stack([torch.randint(0, k, (batch, window)) for k in HEADS.values()], -1)
    mask = torch.ones(batch, window, dtype=torch.bool)
    t0 = time.perf_counter()
    for _ in range(steps):
        logits, qp, _ = m(feat, roll, pos, beats, beat_pos, x, mask, m.init_state(batch), truncate=30)
        loss, _ = elbo_loss(logits, x, mask, qp)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch * window / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--score")
    ap.add_argument("--checkpoint")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variations", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=8, help="renders of different users, together vs in turn")
    ap.add_argument("--chunk-notes", type=int, default=16,
                    help="the first chunk's notes (the web worker's RENDER_CHUNK_NOTES default)")
    ap.add_argument("--max-chunk-notes", type=int, default=512,
                    help="later chunks double up to this (RENDER_MAX_CHUNK_NOTES)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="renders timed this many times, the best kept (the plain loop and training once)")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    path = find_score(a.score)
    t0 = time.perf_counter()
    score = load_any(path)
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    renderer = Renderer.load(a.checkpoint)
    load_s = time.perf_counter() - t0
    # chunks as the web worker makes them: a small first one (the sound starts after it), then doubling
    ch = dict(chunk_notes=a.chunk_notes, max_chunk_notes=max(a.chunk_notes, a.max_chunk_notes))
    time_render(renderer, score, seed=0, **ch)  # warm-up (allocator, lazy init)
    # one render and the batched takes, each also with the pedal events made per chunk (the
    # pedal's cost on the serving path), best of --repeat
    (total, first, n), (ptotal, _, pn) = best_pair(renderer, score, a.repeat, seed=1, **ch)
    plain = plain_loop(renderer, score)
    (vt, vfirst, vn), (pvt, _, pvn) = best_pair(renderer, score, a.repeat, seed=2, variations=a.variations, **ch)
    # several users' jobs: one after another, then together in shared passes (chunks of 16)
    seq_t, seq_n = time_jobs(renderer, score, a.jobs, together=False)
    tog_t, tog_n = time_jobs(renderer, score, a.jobs, together=True)
    # the numpy decoder on the same render and takes: the compiled loop's baseline
    fast = renderer.fast
    if fast is not None:
        renderer.fast = NumpyDecoder(renderer.model)
        time_render(renderer, score, seed=0, **ch)
        np_total, _, np_n = min(time_render(renderer, score, seed=1, **ch) for _ in range(a.repeat))
        np_vt, _, np_vn = min(time_render(renderer, score, seed=2, variations=a.variations, **ch)
                              for _ in range(a.repeat))
        renderer.fast = fast
    # what a rendering worker holds: parsing, the model and renders (training comes after)
    render_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tr = train_rate(renderer)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = {
        "score": str(path), "notes": score.n_notes, "parse_s": round(parse_s, 2), "load_model_s": round(load_s, 2),
        "threads": a.threads, "repeat": a.repeat,
        "chunk_notes": f"{ch['chunk_notes']} doubling to {ch['max_chunk_notes']}",
        "render_notes_per_s": round(n / total, 1), "render_first_chunk_ms": round(1000 * first, 1),
        "plain_loop_notes_per_s": round(score.n_notes / plain, 1),
        "speedup_vs_plain": round((n / total) / (score.n_notes / plain), 2),
        "variations": a.variations, "batched_notes_per_s": round(vn / vt, 1),
        "batched_first_chunk_ms": round(1000 * vfirst, 1),
        "batched_speedup_vs_plain": round((vn / vt) / (score.n_notes / plain), 2),
        "with_pedal_events_notes_per_s": round(pn / ptotal, 1),
        "with_pedal_events_ratio": round((pn / ptotal) / (n / total), 3),
        "batched_with_pedal_events_notes_per_s": round(pvn / pvt, 1),
        "batched_with_pedal_events_ratio": round((pvn / pvt) / (vn / vt), 3),
        "decoder": type(fast).__name__ if fast is not None else "torch",
        **({"numpy_render_notes_per_s": round(np_n / np_total, 1),
            "render_vs_numpy": round((n / total) / (np_n / np_total), 2),
            "numpy_batched_notes_per_s": round(np_vn / np_vt, 1),
            "batched_vs_numpy": round((vn / vt) / (np_vn / np_vt), 2)} if fast is not None else {}),
        "jobs": a.jobs, "jobs_in_turn_notes_per_s": round(seq_n / seq_t, 1),
        "jobs_together_notes_per_s": round(tog_n / tog_t, 1),
        "jobs_together_speedup": round((tog_n / tog_t) / (seq_n / seq_t), 2),
        "render_peak_rss_mb": round(render_peak_mb, 1),
        "train_notes_per_s": round(tr, 1), "peak_rss_mb": round(peak_mb, 1),
    }
    w = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{w}}  {v}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
