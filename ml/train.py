"""Train the CVRNN on the dataset cache.

    python -m ml.train --data .cache/dataset --out runs/main [--max-minutes 100] [--resume]
    python -m ml.train ... --init-from ml/checkpoints/cvrnn.pt   # continue training a shipped model

Negative ELBO (paper eq. 7) with the reparameterisation trick; truncated backpropagation over
30-note windows with the states carried across windows; B pieces per batch as parallel
streams; random transposition -7..+7 per piece and epoch; Ornstein-Uhlenbeck noise on the
tempo curve; Adam; gradient clipping at 5; KL annealing and free bits against posterior
collapse; validation on whole held-out works; checkpoints every few minutes and resume.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from ml.data import StreamBatcher, load_split, prefetch
from ml.model import (HEADS, CVRNN, ModelConfig, elbo_loss, free_loss, grow_model, load_checkpoint, load_model,
                      migrate_state_dict, point_loss, save_checkpoint, targets_to_classes)


@dataclass
class TrainConfig:
    data: str = ".cache/dataset"
    out: str = "runs/main"
    batch: int = 64               # parallel streams (pieces) per batch
    window: int = 120             # notes per batch and stream (several TBPTT windows)
    truncate: int = 30            # TBPTT length, notes (the paper's 30)
    lr: float = 1e-3
    lr_min: float = 1e-4          # cosine decay to this over max_steps, else over max_minutes
    epochs: int = 20
    max_minutes: float = 0.0      # stop (and save) after this long; 0 = no limit
    max_steps: int = 0            # 0 = no limit
    clip: float = 5.0
    free_bits: float = 0.05       # nats per latent dimension (batch mean)
    prior_below_floor: bool = False  # the prior learns while the KL is below the free-bits floor (elbo_loss)
    init_from: str = ""           # start from this checkpoint's weights (fresh optimizer and schedule)
    grow: bool = False            # with init_from: add the inputs the checkpoint lacks (ml.model.grow_model)
    point_weight: float = 0.0     # weight of ml.model.point_loss (z = prior mean); 0 = the ELBO alone
    sample_weight: float = 0.0    # weight of the same NLL with z drawn from the prior (a sampled take's path)
    free_weight: float = 0.0      # weight of ml.model.free_loss (the point estimate run on its own outputs)
    free_take_weight: float = 0.0  # weight of free_loss on a sampled take run free (z drawn at free_take_z)
    free_take_z: float = 1.25     # the take's z temperature (ml.defaults.DEFAULT_Z_TEMPERATURE)
    free_carry: bool = False      # the free path runs on across the windows of a performance, as a render
                                  # does (else each window's starts from the teacher-forced state)
    head_weight: str = ""         # JSON {head: weight} on heads' NLL, e.g. '{"tempo": 3}' (ml.model.elbo_loss)
    kl_anneal_steps: int = 1500
    transpose: int = 7
    ou_sigma_bpm: float = 1.5          # tempo classes (1/50 octave) since v2
    ou_tau_beat: float = 8.0
    val_every: int = 400          # steps
    val_notes: int = 600          # notes per val performance in the periodic check (0 = all)
    save_minutes: float = 5.0
    threads: int = 2
    seed: int = 0
    device: str = "cpu"
    limit_train: int = 0          # use only this many training performances (tests)
    resume: bool = False
    export: str = ""              # also write model-only best/last checkpoints here
    model: str = ""               # JSON overrides of ModelConfig fields, e.g. '{"dense_units": 128}'
    reload_data: bool = False     # re-scan the training folder at each epoch (a cache still being built)
    max_clip: float = 0.1         # leave out performances with more onset deviations clipped than this
    robust_only: bool = False     # leave out nASAP's non-robust automatic alignments


def to_torch(batch: dict, device) -> dict:
    out = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in batch.items()}
    out["x"] = targets_to_classes(out.pop("target"))
    out["roll"] = out["roll"].float()
    return out


def initial_state(model: CVRNN, batch: int, device, free_carry: bool = False) -> tuple:
    """Zero states (model.init_state), with the free path's own CVRNN state when it is carried."""
    state = model.init_state(batch, device)
    return state + (torch.zeros_like(state[0]),) if free_carry else state


def reset_state(state, reset, device):
    """Zero the states of streams that start a new performance."""
    keep = torch.from_numpy(~reset).to(device).float()
    return tuple(s * keep.view(1, -1, 1) for s in state)


@torch.no_grad()
def evaluate(model: CVRNN, pieces, cfg: TrainConfig, device, notes_per_piece: int = 0) -> dict:
    """Mean negative ELBO terms per note over whole held-out performances (no augmentation), and
    the NLL along the point estimate's path (z = prior mean, `ml.model.point_loss`)."""
    model.eval()
    if notes_per_piece:
        from ml.data import Piece
        k = notes_per_piece
        pieces = [Piece(p.feat[:k], p.frame[:k], p.target[:k], p.onset_beat[:k], p.spans, p.meta, p.beat[:k],
                        p.beat_ctx, p.scope[:k], p.roll) for p in pieces]
    batcher = StreamBatcher(pieces, min(cfg.batch, len(pieces)), cfg.window, transpose=0, ou_sigma_bpm=0)
    plan = batcher.plan_epoch(0)
    state = initial_state(model, batcher.B, device, cfg.free_carry)
    tot, n_tot = {}, 0
    for batch, reset in batcher.batches(plan):
        b = to_torch(batch, device)
        state = reset_state(state, reset, device)
        logits, qp, state, point, sample, free, take = model(
            b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"], b["x"], b["mask"], state, point=True,
            sample=True, free=True, free_take=cfg.free_take_z)
        _, stats = elbo_loss(logits, b["x"], b["mask"], qp, head_mask=b["scope"])
        p_nll, p_stats = point_loss(point, b["x"], b["mask"], b["scope"])  # the point estimate's path
        s_nll, s_stats = point_loss(sample, b["x"], b["mask"], b["scope"], prefix="sample")  # a take's path
        f_nll, f_stats = free_loss(free, b["x"], b["mask"], b["scope"])  # the point estimate run free
        t_nll, t_stats = free_loss(take, b["x"], b["mask"], b["scope"], prefix="take")  # a take run free
        stats.update(**p_stats, **s_stats, **f_stats, **t_stats, point_nll=float(p_nll), sample_nll=float(s_nll),
                     free_nll=float(f_nll), take_nll=float(t_nll))
        n = int(b["mask"].sum())
        for k, v in stats.items():
            if k != "kl_dim":
                tot[k] = tot.get(k, 0.0) + v * n
        kd = np.array(stats["kl_dim"]) * n
        tot["kl_dim"] = tot.get("kl_dim", 0) + kd
        n_tot += n
    model.train()
    out = {k: (v / max(n_tot, 1)) for k, v in tot.items()}
    out["kl_dim"] = [round(float(v), 4) for v in out["kl_dim"]]
    out["loss"] = out["nll"] + out["kl"]
    out["notes"] = n_tot
    return out


def train(cfg: TrainConfig) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    train_pieces = load_split(Path(cfg.data), "train", limit=cfg.limit_train, max_clip=cfg.max_clip,
                                  robust_only=cfg.robust_only)
    val_pieces = load_split(Path(cfg.data), "val")
    if not train_pieces:
        raise SystemExit(f"no training data under {cfg.data}/train (run python -m render.dataset first)")
    n_train = sum(p.n for p in train_pieces)
    print(f"train: {len(train_pieces)} performances, {n_train} notes; val: {len(val_pieces)} performances",
          file=sys.stderr)
    overrides = json.loads(cfg.model) if cfg.model else {}
    if "cnn_channels" in overrides:
        overrides["cnn_channels"] = tuple(overrides["cnn_channels"])
    if cfg.init_from:  # continue from another run's weights: its config wins over --model
        model = grow_model(cfg.init_from, device) if cfg.grow else load_model(cfg.init_from, device)[0]
        model.train()
        print(f"weights from {cfg.init_from}", file=sys.stderr)
    else:
        model = CVRNN(ModelConfig(**overrides)).to(device)
    model.score.cnn.to(memory_format=torch.channels_last)
    head_weight = json.loads(cfg.head_weight) if cfg.head_weight else None
    if head_weight and set(head_weight) - set(HEADS):
        raise SystemExit(f"--head-weight: unknown heads {sorted(set(head_weight) - set(HEADS))}")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    batcher = StreamBatcher(train_pieces, cfg.batch, cfg.window, seed=cfg.seed, transpose=cfg.transpose,
                            ou_sigma_bpm=cfg.ou_sigma_bpm, ou_tau_beat=cfg.ou_tau_beat)
    step, epoch, plan, best, elapsed0 = 0, 0, None, math.inf, 0.0
    state = initial_state(model, cfg.batch, device, cfg.free_carry)
    last = out / "last.pt"
    if cfg.resume and last.exists():
        ck = load_checkpoint(last, device)
        model.load_state_dict(migrate_state_dict(ck["model"]))
        opt.load_state_dict(ck["optimizer"])
        step, epoch, plan, best = ck["step"], ck["epoch"], ck["plan"], ck["best"]
        elapsed0 = ck.get("elapsed", 0.0)
        state = tuple(s.to(device) for s in ck["state"])[:2]  # the free path's state, if any, afresh
        state = state + (state[0].clone(),) if cfg.free_carry else state
        if plan and (ck.get("n_train_pieces") != len(train_pieces)
                     or max((max(st, default=-1) for st in plan["streams"]), default=-1) >= len(train_pieces)):
            plan = None  # the training folder changed since: start the epoch afresh
        print(f"resumed at epoch {epoch} step {step}", file=sys.stderr)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f} M parameters", file=sys.stderr)
    log = open(out / "log.jsonl", "a")
    t_start, t_save, notes_seen, t_rate = time.time(), time.time(), 0, time.time()

    def save(path):
        save_checkpoint(path, model, optimizer=opt.state_dict(), step=step, epoch=epoch, plan=plan,
                        n_train_pieces=len(train_pieces),
                        best=best, state=[s.cpu() for s in state], train_config=asdict(cfg),
                        elapsed=elapsed0 + time.time() - t_start)

    def export(name):
        if cfg.export:
            Path(cfg.export).mkdir(parents=True, exist_ok=True)
            save_checkpoint(Path(cfg.export) / name, model, step=step, epoch=epoch,
                            train_config=asdict(cfg), val=best)
            for f in ("log.jsonl",):
                (Path(cfg.export) / f).write_bytes((out / f).read_bytes())

    def out_of_time():
        return (cfg.max_minutes and (elapsed0 + time.time() - t_start) / 60 >= cfg.max_minutes) or \
               (cfg.max_steps and step >= cfg.max_steps)

    done = False
    while epoch < cfg.epochs and not done:
        if plan is None:
            if cfg.reload_data:
                fresh = load_split(Path(cfg.data), "train", limit=cfg.limit_train, max_clip=cfg.max_clip,
                                  robust_only=cfg.robust_only)
                if len(fresh) != len(train_pieces):
                    train_pieces[:] = fresh
                    n_train = sum(p.n for p in train_pieces)
                    print(f"\nepoch {epoch}: {len(train_pieces)} performances, {n_train} notes", file=sys.stderr)
            plan = batcher.plan_epoch(epoch)
            state = initial_state(model, cfg.batch, device, cfg.free_carry)
        for batch, reset, cursor in prefetch(batcher, plan):
            plan["cursor"] = cursor
            b = to_torch(batch, device)
            state = reset_state(state, reset, device)
            logits, qp, state, *extra = model(b["feat"], b["roll"], b["pos"], b["beats"], b["beat_pos"], b["x"],
                                              b["mask"], state, truncate=cfg.truncate, point=cfg.point_weight > 0,
                                              sample=cfg.sample_weight > 0, free=cfg.free_weight > 0,
                                              free_take=cfg.free_take_z if cfg.free_take_weight > 0 else 0.0)
            state = tuple(s.detach() for s in state)
            kl_w = min(1.0, (step + 1) / max(cfg.kl_anneal_steps, 1))
            loss, stats = elbo_loss(logits, b["x"], b["mask"], qp, kl_weight=kl_w, free_bits=cfg.free_bits,
                                    head_mask=b["scope"], prior_below_floor=cfg.prior_below_floor,
                                    head_weight=head_weight)
            if cfg.point_weight > 0:
                p_nll, p_stats = point_loss(extra.pop(0), b["x"], b["mask"], b["scope"], head_weight)
                loss = loss + cfg.point_weight * p_nll
                stats.update(p_stats, point_nll=sum(p_stats.values()))
            if cfg.sample_weight > 0:
                s_nll, s_stats = point_loss(extra.pop(0), b["x"], b["mask"], b["scope"], head_weight, "sample")
                loss = loss + cfg.sample_weight * s_nll
                stats.update(s_stats, sample_nll=sum(s_stats.values()))
            if cfg.free_weight > 0:
                f_nll, f_stats = free_loss(extra.pop(0), b["x"], b["mask"], b["scope"], head_weight)
                loss = loss + cfg.free_weight * f_nll
                stats.update(f_stats, free_nll=sum(f_stats.values()))
            if cfg.free_take_weight > 0:
                t_nll, t_stats = free_loss(extra.pop(0), b["x"], b["mask"], b["scope"], head_weight, "take")
                loss = loss + cfg.free_take_weight * t_nll
                stats.update(t_stats, take_nll=sum(t_stats.values()))
            if cfg.max_steps or cfg.max_minutes:
                frac = min(step / cfg.max_steps, 1.0) if cfg.max_steps else \
                    min((elapsed0 + time.time() - t_start) / (cfg.max_minutes * 60), 1.0)
                for g in opt.param_groups:
                    g["lr"] = cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * frac))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
            opt.step()
            step += 1
            notes_seen += int(b["mask"].sum())
            if step % 20 == 0:
                rate = notes_seen / (time.time() - t_rate)
                notes_seen, t_rate = 0, time.time()
                done_notes = sum(sum(train_pieces[i].n for i in s[:c[0]]) + c[1]
                                 for s, c in zip(plan["streams"], plan["cursor"]))
                print(f"\repoch {epoch} {100 * done_notes / n_train:5.1f}% step {step} loss {float(loss):.3f} "
                      f"nll {stats['nll']:.3f} (vel {stats['nll_velocity']:.2f} dur {stats['nll_duration']:.2f} "
                      f"dev {stats['nll_deviation']:.2f} tempo {stats['nll_tempo']:.2f} "
                      f"sus {stats['nll_sustain']:.2f} soft {stats['nll_soft']:.2f}) kl {stats['kl']:.3f} "
                      f"{stats['kl_dim']}" + (f" point {stats['point_nll']:.3f}" if "point_nll" in stats else "")
                      + (f" sample {stats['sample_nll']:.3f}" if "sample_nll" in stats else "")
                      + (f" free {stats['free_nll']:.3f}" if "free_nll" in stats else "")
                      + (f" take {stats['take_nll']:.3f}" if "take_nll" in stats else "")
                      + f" {rate:.0f} notes/s", end="", file=sys.stderr)
                log.write(json.dumps({"step": step, "epoch": epoch, "loss": float(loss), **stats,
                                      "notes_per_s": rate, "kl_weight": kl_w}) + "\n")
                log.flush()
            if cfg.val_every and step % cfg.val_every == 0 and val_pieces:
                v = evaluate(model, val_pieces, cfg, device, cfg.val_notes)
                print(f"\nval step {step}: {json.dumps(v)}", file=sys.stderr)
                log.write(json.dumps({"step": step, "val": v}) + "\n")
                if v["loss"] < best:
                    best = v["loss"]
                    save(out / "best.pt")
                    export("best.pt")
            if time.time() - t_save > cfg.save_minutes * 60:
                save(last)
                t_save = time.time()
            if out_of_time():
                done = True
                break
        if not done:
            epoch, plan = epoch + 1, None
    final = evaluate(model, val_pieces, cfg, device, cfg.val_notes) if val_pieces else {}
    if final and final["loss"] < best:
        best = final["loss"]
        save(out / "best.pt")
        export("best.pt")
    save(last)
    export("last.pt")
    if not (out / "best.pt").exists():
        save(out / "best.pt")
        export("best.pt")
    summary = {"steps": step, "epochs_done": epoch, "minutes": (elapsed0 + time.time() - t_start) / 60,
               "final_val": final, "best_val_loss": best, "params": n_params}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\n{json.dumps(summary)}", file=sys.stderr)
    return summary


def parse_args(argv=None) -> TrainConfig:
    ap = argparse.ArgumentParser(prog="python -m ml.train", description=__doc__.split("\n")[0])
    for f in fields(TrainConfig):
        if f.type in ("bool", bool):
            ap.add_argument(f"--{f.name.replace('_', '-')}", action="store_true", default=f.default)
        else:
            typ = {"int": int, "float": float, "str": str}.get(f.type, type(f.default))
            ap.add_argument(f"--{f.name.replace('_', '-')}", type=typ, default=f.default)
    return TrainConfig(**vars(ap.parse_args(argv)))


if __name__ == "__main__":
    train(parse_args())
