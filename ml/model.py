"""The CVRNN of Maezawa, Yamamoto & Fujishima (ISMIR 2019), section 3, and its score encoder.

Shapes: B batch (streams or variations), T notes in a window, L piano-roll frames of a crop,
F categorical score features, Z = 5 latent dimensions.

Modelling assumptions kept from the paper (section 3.3.1), which it calls critical:
- the prior p(z_n | h_{n-1}) does not see the score feature c_n;
- x_n depends on h only through z_n (generation sees c_n and psi(z_n), never h);
- the inference network q(z_n | x_n, h_{n-1}) does not see c_n.
"""
from __future__ import annotations

import functools

from dataclasses import asdict, dataclass, field, replace
from pathlib import PurePath

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from render.features import BEAT_FEATURES, FEATURE_CLASSES, FEATURE_NAMES

# Output heads: classes of velocity (0..127), duration_100 - 1 (0..799), deviation + 50,
# tempo_log_50 + 50 (the beat's tempo, 1/50 octave around the reference), sustain pedal pattern
# (0..80, render.pedal), soft pedal (0..1).
HEADS = {"velocity": 128, "duration": 800, "deviation": 100, "tempo": 100, "sustain": 81, "soft": 2}
# Which notes carry each head's target: every note, the first note of a beat, the first of a chord.
HEAD_SCOPE = {"velocity": "note", "duration": "note", "deviation": "note", "tempo": "beat",
              "sustain": "group", "soft": "group"}
ROLL_PITCH_LO, ROLL_PITCH_HI = 16, 112  # the roll rows the CNN sees (piano range +- transposition)


@dataclass
class ModelConfig:
    z_dim: int = 5
    cnn_channels: tuple = (20, 40, 60, 80)
    cnn_proj: int = 32            # CNN map projected to this many channels before pooling
    roll_windows: tuple = ((-14, -6), (-6, -2), (-2, 2), (2, 6), (6, 14))  # in CNN frames (1/2 beat)
    feature_emb: dict = field(default_factory=lambda: {
        "pitch": 16, "ioi_96": 16, "duration_96": 16, "key": 4, "ts_num": 4, "ts_den": 3,
        "tempo_30": 4, "velocity_10": 4, "bar_pos_12": 12, "staff": 2, "is_grace": 2,
        "metric": 3, "chord_rank": 3, "to_rest": 3, "to_fermata": 3, "to_section_end": 3, "to_end": 3,
        "since_section": 3, "piece_pos": 3, "hairpin": 2, "dyn_accent": 2, "tempo_change": 2,
        "fermata": 2, "slur": 2, "artic": 2, "accent": 2, "pedal": 2, "harmony": 3})
    beat_features: int = BEAT_FEATURES  # the first columns of render.features.beat_context it reads
    ctx_channels: int = 48        # non-causal score context over beats (v2, DESIGN 4.1)
    ctx_dilations: tuple = (1, 2, 4, 8, 16, 32)  # kernel 3: sees +-63 beats
    ctx_out: int = 32
    mlp_hidden: int = 1024
    mlp_out: int = 128
    score_gru: int = 64
    score_gru_layers: int = 3
    dense_units: int = 250
    x_emb: int = 32
    state_in: int = 64
    state_dim: int = 64
    state_layers: int = 3
    wide: bool = True             # c_n also carries the feature embeddings themselves (see ScoreEncoder)

    @property
    def c_dim(self) -> int:
        return (self.mlp_out + self.score_gru + self.ctx_out
                + (sum(self.feature_emb.values()) if self.wide else 0))

    @property
    def cnn_stride(self) -> int:
        return 4  # time pooling of the CNN: 32nd-note frames -> half beats


class DenseMLP(nn.Module):
    """Three densely connected layers: each sees the input and every earlier layer's output."""

    def __init__(self, d_in: int, units: int, n_layers: int = 3):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(d_in + i * units, units) for i in range(n_layers))
        self.d_out = units

    def forward(self, x):  # (..., d_in) -> (..., units)
        feats = [x]
        for layer in self.layers:
            feats.append(F.leaky_relu(layer(torch.cat(feats, -1)), 0.1))
        return feats[-1]


class BeatContext(nn.Module):
    """Non-causal score context (model v2): dilated 1-D convolutions over the per-beat summary of
    the score (render.features.beat_context), so each note sees the cadence, fermata or section
    end coming (+-63 beats). A function of the score alone: computed once before decoding."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        ch = cfg.ctx_channels
        self.inp = nn.Conv1d(cfg.beat_features, ch, 1)
        self.n_in = cfg.beat_features
        self.convs = nn.ModuleList(nn.Conv1d(ch, ch, 3, padding=d, dilation=d) for d in cfg.ctx_dilations)
        self.out = nn.Conv1d(ch, cfg.ctx_out, 1)
        self.receptive = sum(cfg.ctx_dilations)  # beats seen on each side

    def forward(self, beats):  # (B, D >= beat_features, nb) -> (B, ctx_out, nb)
        y = F.leaky_relu(self.inp(beats[:, :self.n_in]), 0.1)
        for conv in self.convs:
            y = y + F.leaky_relu(conv(y), 0.1)
        return torch.tanh(self.out(y))

    @staticmethod
    def gather(ctx, beat_pos):
        """ctx (B, C, nb), beat_pos (B, T) long -> (B, T, C)."""
        B, C, _ = ctx.shape
        return torch.gather(ctx, 2, beat_pos.unsqueeze(1).expand(B, C, -1)).transpose(1, 2)


class ScoreEncoder(nn.Module):
    """c_n = [MLP(CNN(roll) window, feature embeddings), GRU stack over notes] (paper 3.2).

    Deviation (for cost, DESIGN section 4): the CNN runs once over a crop of the piece's roll,
    pools time by 4 (half beats), and each note reads five pooled windows of the projected map
    spanning +-7 beats around it, instead of one 224x128 crop per note.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        chans, layers, c_in = cfg.cnn_channels, [], 1
        pools = [(2, 2), (2, 2), (2, 1), (2, 1)]
        for c_out, pool in zip(chans, pools):
            layers += [nn.Conv2d(c_in, c_out, 4, padding="same"), nn.MaxPool2d(pool),
                       nn.BatchNorm2d(c_out), nn.LeakyReLU(0.1)]
            c_in = c_out
        self.cnn = nn.Sequential(*layers)
        n_pitch = (ROLL_PITCH_HI - ROLL_PITCH_LO) // 16
        self.proj = nn.Conv1d(chans[-1] * n_pitch, cfg.cnn_proj, 1)
        self.embs = nn.ModuleDict({k: nn.Embedding(FEATURE_CLASSES[k], d) for k, d in cfg.feature_emb.items()})
        # the feature columns this model reads (a checkpoint from before a feature was added reads
        # the ones it was trained with)
        self.feat_cols = [FEATURE_NAMES.index(k) for k in cfg.feature_emb]
        self.context = BeatContext(cfg)
        d_in = sum(cfg.feature_emb.values()) + cfg.cnn_proj * len(cfg.roll_windows) + cfg.ctx_out
        self.mlp = nn.Sequential(nn.Linear(d_in, cfg.mlp_hidden), nn.LeakyReLU(0.1),
                                 nn.Linear(cfg.mlp_hidden, cfg.mlp_out), nn.Tanh())
        self.gru_in = nn.Linear(cfg.mlp_out, cfg.score_gru)
        self.gru = nn.GRU(cfg.score_gru, cfg.score_gru, cfg.score_gru_layers, batch_first=True)

    def roll_map(self, roll):
        """(B, 96, L) float piano-roll crops -> (B, P, ceil(L/4)) projected CNN map, P = cnn_proj."""
        y = self.cnn(roll.unsqueeze(1).contiguous(memory_format=torch.channels_last))  # (B, 80, 6, L/4)
        return self.proj(y.flatten(1, 2))

    def window_features(self, rmap, pos):
        """Mean of the map over each window around each note.

        rmap (B, P, L4); pos (B, T) long note positions in map frames -> (B, T, P * n_windows).
        """
        B, P, L4 = rmap.shape
        csum = F.pad(rmap.cumsum(-1), (1, 0))  # (B, P, L4 + 1): window sums by two lookups
        out = []
        for a, b in self.cfg.roll_windows:
            lo = (pos + a).clamp(0, L4)
            hi = (pos + b).clamp(0, L4)
            s_hi = torch.gather(csum, 2, hi.unsqueeze(1).expand(B, P, -1))
            s_lo = torch.gather(csum, 2, lo.unsqueeze(1).expand(B, P, -1))
            out.append(((s_hi - s_lo) / float(b - a)).transpose(1, 2))
        return torch.cat(out, -1)

    def frame_features(self, feat, rmap, pos, ctx):
        """Per note: feat (B, T, F) long, rmap (B, P, L4), pos (B, T), ctx (B, T, ctx_out) ->
        (MLP output (B, T, mlp_out), feature embeddings (B, T, sum of embedding sizes))."""
        emb = torch.cat([e(feat[..., c]) for e, c in zip(self.embs.values(), self.feat_cols)], -1)
        return self.mlp(torch.cat([emb, self.window_features(rmap, pos), ctx], -1)), emb

    def forward(self, feat, roll, pos, beats, beat_pos, h0=None, ctx=None, gru=None):
        """feat (B, T, F) long, roll (B, 96, L), pos (B, T), beats (B, D, nb) beat summaries,
        beat_pos (B, T) long each note's row of ``beats`` -> c (B, T, c_dim), GRU state.
        ``ctx`` (B, ctx_out, nb): the context already computed over ``beats`` (streaming);
        ``gru``: what runs ``self.gru`` (rendering on a CPU: ml.cdecode's compiled one).

        Deviation (``wide``): c_n = [MLP, GRU, feature embeddings]. With the embeddings beside
        the MLP output the generation network reads the written duration and dynamics directly;
        without them, training on this machine's budget left velocity and duration at their
        unigram entropy (c varied too little across notes early in training).
        """
        if ctx is None:
            ctx = self.context(beats)
        cn = BeatContext.gather(ctx, beat_pos)                                 # (B, T, ctx_out)
        m, emb = self.frame_features(feat, self.roll_map(roll), pos, cn)
        g, h = (gru or self.gru)(self.gru_in(m), h0)
        return torch.cat([m, g, cn, emb] if self.cfg.wide else [m, g, cn], -1), h


class CVRNN(nn.Module):
    """Conditional variational RNN over score notes (paper 3.3)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        u, zd = cfg.dense_units, cfg.z_dim
        self.score = ScoreEncoder(cfg)
        self.prior = DenseMLP(cfg.state_dim, u)
        self.prior_out = nn.Linear(u, 2 * zd)
        self.x_embs = nn.ModuleList(nn.Embedding(n, cfg.x_emb) for n in HEADS.values())
        self.phi = DenseMLP(cfg.x_emb * len(HEADS), u)
        self.psi = DenseMLP(zd, u)
        self.post = DenseMLP(cfg.state_dim + u, u)
        self.post_out = nn.Linear(u, 2 * zd)
        # generation g(c_n, psi(z_n)): a 3-layer MLP with one softmax head per output
        self.gen_in = nn.Linear(cfg.c_dim + u, u)
        self.gen_hidden = nn.Linear(u, u)
        self.gen_out = nn.Linear(u, sum(HEADS.values()))
        self.state_in = nn.Linear(cfg.c_dim + 2 * u, cfg.state_in)
        self.cells = nn.ModuleList(nn.GRUCell(cfg.state_in if i == 0 else cfg.state_dim, cfg.state_dim)
                                   for i in range(cfg.state_layers))

    def init_state(self, batch: int, device=None):
        """Zero states: (CVRNN state (layers, B, H), score GRU state (layers, B, G))."""
        cfg = self.cfg
        return (torch.zeros(cfg.state_layers, batch, cfg.state_dim, device=device),
                torch.zeros(cfg.score_gru_layers, batch, cfg.score_gru, device=device))

    def embed_x(self, x):
        """x (..., H) long class indices -> phi(x) (..., dense_units)."""
        return self.phi(torch.cat([e(x[..., i]) for i, e in enumerate(self.x_embs)], -1))

    def prior_params(self, h_top):
        """h_{n-1} (..., H) -> mu, logvar (..., Z) of p(z_n | h_{n-1})."""
        return self.prior_out(self.prior(h_top)).chunk(2, -1)

    def step_state(self, h, inp):
        """One 3-layer GRU update: h (layers, B, H), inp (B, state_in) -> new h."""
        out, x = [], inp
        for i, cell in enumerate(self.cells):
            x = cell(x, h[i])
            out.append(x)
        return torch.stack(out)

    # -- one step, shared by rendering (ml.inference), evaluation (ml.table2) and priming;
    # ml/fastdecode.py mirrors it in numpy and is tested against it.
    def precompute(self, c):
        """The terms of a step that depend on c_n only, for all notes at once:
        c (..., c_dim) -> (c_gen (..., U) into the generator, c_state (..., S) into the state)."""
        cu = self.cfg.c_dim
        return (F.linear(c, self.gen_in.weight[:, :cu], self.gen_in.bias),
                F.linear(c, self.state_in.weight[:, :cu], self.state_in.bias))

    def generate(self, c_gen, ps):
        """Logits of every head: c_gen (..., U) from `precompute`, ps = psi(z) (..., U) ->
        (..., sum(HEADS)). x_n sees h only through z_n (the paper's bottleneck)."""
        hid = F.leaky_relu(c_gen + F.linear(ps, self.gen_in.weight[:, self.cfg.c_dim:]), 0.1)
        return self.gen_out(F.leaky_relu(self.gen_hidden(hid), 0.1))

    def update(self, h, c_state, x, ps):
        """The state after note n: h (layers, V, H), c_state (V, S), x (V, heads) long, ps (V, U)."""
        cu, u = self.cfg.c_dim, self.cfg.dense_units
        W = self.state_in.weight
        return self.step_state(h, c_state + F.linear(self.embed_x(x), W[:, cu:cu + u]) + F.linear(ps, W[:, cu + u:]))

    def draw_z(self, h_top, mode: str, eps=None, delta=None, z_fixed=None):
        """z_n for a rendering mode: 'prior' (mu + eps * sigma, eps (V, Z) standard normal draws),
        'perturb' (the paper's mu + delta * exp(logvar)), 'prior_mean', 'zero', 'fixed' (z_fixed)."""
        if mode == "fixed":
            return z_fixed
        if mode == "zero":
            return torch.zeros(h_top.shape[:-1] + (self.cfg.z_dim,), device=h_top.device)
        mu, lv = self.prior_params(h_top)
        if mode == "prior":
            return mu + eps * torch.exp(0.5 * lv)
        if mode == "perturb":
            return mu + delta * torch.exp(lv)
        if mode == "prior_mean":
            return mu
        raise ValueError(f"unknown z mode {mode!r}")

    def step(self, h, c_gen, c_state, z, u, temperature, keep=None, x_prev=None):
        """Generate one note and update the state.

        h (layers, V, H); c_gen, c_state (V, .) from `precompute`; z (V, Z); u (V, heads) uniform
        draws; temperature (heads,) (0 = the most likely class); keep (heads,) or (V, heads) bool:
        heads that repeat x_prev (V, heads) instead (the tempo within a beat, the pedal within a
        chord). Returns x (V, heads) long and the new h.
        """
        ps = self.psi(z)
        x = sample_heads(self.generate(c_gen, ps), u, temperature)
        if keep is not None and x_prev is not None:
            x = torch.where(keep, x_prev, x)
        return x, self.update(h, c_state, x, ps)

    @torch.inference_mode()
    def prime(self, c, x, h):
        """Teacher-forced inference network over a human performance, z = the posterior mean:
        c (V, T, c_dim), x (V, T, heads) long, h (layers, V, H) -> h after the T notes."""
        _, c_state = self.precompute(c)
        phi = self.embed_x(x)
        for t in range(x.shape[1]):
            mq, _ = self.post_out(self.post(torch.cat([h[-1], phi[:, t]], -1))).chunk(2, -1)
            h = self.update(h, c_state[:, t], x[:, t], self.psi(mq))
        return h

    def free_run(self, c, h, mask, truncate: int = 0, z_temperature: float = 0.0):
        """Logits along the point estimate's own path, as rendering runs it: z_n = mu_p(h_{n-1})
        (with ``z_temperature`` > 0, a sampled take's: mu_p + t * eps * sigma_p, as mode 'prior' draws it,
        sigma_p detached: trained on it alone, the prior's spread collapsed and the takes stopped varying),
        x_n each ordinal head's expected class (the pedal heads' likeliest), and h fed that x_n,
        not the human's. c (B, T, c_dim), h (layers, B, H) the state at the window's start,
        mask (B, T) bool -> logits (B, T, sum(HEADS)) and the state after the window. Training on it
        (`free_loss`) shows the prior and the generator the states that their own renderings reach
        (teacher forcing never does)."""
        c_gen, c_state = self.precompute(c)
        temps = [EXPECTED if k in ORDINAL_HEADS else 0.0 for k in HEADS]
        out = []
        for n, (cg, cs, keep) in enumerate(zip(c_gen.unbind(1), c_state.unbind(1), mask.unbind(1))):
            if truncate and n and n % truncate == 0:
                h = h.detach()
            if z_temperature > 0:  # the spread held fixed: this path must not buy accuracy with less variety
                mu, lv = self.prior_params(h[-1])
                eps = z_temperature * torch.randn_like(mu)
                ps = self.psi(mu + eps * torch.exp(0.5 * lv).detach())
            else:
                ps = self.psi(self.draw_z(h[-1], "prior_mean"))
            logits = self.generate(cg, ps)                       # (B, sum(HEADS))
            x = sample_heads(logits.detach(), None, temps)       # (B, heads): no gradient through x
            h = torch.where(keep.view(1, -1, 1), self.update(h, cs, x, ps), h)
            out.append(logits)
        return torch.stack(out, 1), h

    def forward(self, feat, roll, pos, beats, beat_pos, x, mask, state, truncate: int = 0, point: bool = False,
                sample: bool = False, free: bool = False, free_take: float = 0.0):
        """Teacher-forced pass over a window, sampling z from the posterior (reparameterised).

        feat (B, T, F) long; roll (B, 96, L); pos (B, T) long; beats (B, D, nb) float beat
        summaries and beat_pos (B, T) long (see ScoreEncoder); x (B, T, H) long targets;
        mask (B, T) bool valid notes; state from `init_state` or the previous window;
        truncate: detach the CVRNN state every this many notes (truncated backpropagation).
        Returns logits (B, T, sum(HEADS)), (mu_q, logvar_q, mu_p, logvar_p) each (B, T, Z),
        and the new state (detach it before the next window); with ``point``, also the logits
        generated from z = the prior mean (the point estimate's path, `point_loss`); with ``sample``,
        then the logits generated from one draw of the prior (a sampled take's path, `point_loss`);
        with ``free``, then the logits of `free_run` from the window's starting state, or, when
        ``state`` has a third member, from the free path's own state carried from the previous
        window (as a whole render runs; the new state then carries the free path's end); with
        ``free_take`` > 0, then the logits of a sampled take run free from the same state, z drawn
        at that temperature (`free_run`).
        """
        h, hs = state[:2]
        h0 = state[2] if len(state) == 3 else h  # a free path carried across windows, or from here
        c, hs_new = self.score(feat, roll, pos, beats, beat_pos, hs)
        phi = self.embed_x(x)                                    # (B, T, U)
        W = self.state_in.weight
        cu = c.shape[-1] + phi.shape[-1]
        pre = F.linear(torch.cat([c, phi], -1), W[:, :cu], self.state_in.bias)  # (B, T, S)
        W_psi = W[:, cu:]
        h_prev, psis, mqs, lqs = [], [], [], []
        # unbind once: indexing [:, n] in the loop makes autograd zero-fill a full-size gradient
        # for every note (most of a training step's memset time)
        phi_n, pre_n, keep_n = phi.unbind(1), pre.unbind(1), mask.unbind(1)
        for n in range(x.shape[1]):
            if truncate and n and n % truncate == 0:
                h = h.detach()
            h_prev.append(h[-1])
            mq, lq = self.post_out(self.post(torch.cat([h[-1], phi_n[n]], -1))).chunk(2, -1)
            z = mq + torch.randn_like(mq) * torch.exp(0.5 * lq)
            ps = self.psi(z)
            h_new = self.step_state(h, pre_n[n] + F.linear(ps, W_psi))
            keep = keep_n[n].view(1, -1, 1)
            h = torch.where(keep, h_new, h)
            psis.append(ps), mqs.append(mq), lqs.append(lq)
        h_prev = torch.stack(h_prev, 1)
        mp, lp = self.prior_params(h_prev)
        c_gen = self.precompute(c)[0]
        logits = self.generate(c_gen, torch.stack(psis, 1))
        # Padded steps must not move the score GRU state either: windows end at piece ends.
        out = logits, (torch.stack(mqs, 1), torch.stack(lqs, 1), mp, lp), (h, hs_new)
        if point:
            out += (self.generate(c_gen, self.psi(mp)),)
        if sample:  # (B, T, sum(HEADS)); z from p(z_n | h_{n-1}) as a take draws it
            out += (self.generate(c_gen, self.psi(mp + torch.randn_like(mp) * torch.exp(0.5 * lp))),)
        if free:
            free_logits, h_free = self.free_run(c, h0, mask, truncate)
            out += (free_logits,)
            if len(state) == 3:
                out = (out[0], out[1], out[2] + (h_free,)) + out[3:]
        if free_take > 0:
            out += (self.free_run(c, h0, mask, truncate, z_temperature=free_take)[0],)
        return out


# Heads whose classes are ordered values (a mean class means something); not the pedal patterns.
ORDINAL_HEADS = ("velocity", "duration", "deviation", "tempo")
EXPECTED = -1.0  # a head "temperature" that decodes the expected class (`sample_heads`)
# A sustain-head "temperature": first decide whether the pedal comes up in the chord's interval
# (any segment up: a change, a lift, or no pedal), up when the model gives that at least
# LIFT_THRESHOLD, then draw the pattern among those that agree (`sample_heads`). Drawn at
# temperature 1, each chord's change is a coin flip at its own probability; deciding it lifts
# where the model thinks a change likely and leaves the rest down (ml/MODEL_CARD.md, "Pedal").
DECIDE = -2.0
LIFT_THRESHOLD = 0.25


@functools.lru_cache(maxsize=1)
def sustain_comes_up() -> np.ndarray:
    """(81,) bool, read-only: the sustain patterns with a segment up (render.pedal); made once,
    as the decoders ask for it at every step."""
    up = (head_digits("sustain")[0] == 0).any(1)
    up.setflags(write=False)
    return up


def head_digits(name: str) -> tuple[np.ndarray, np.ndarray]:
    """What a head's class is made of, for its expected class: (K, D) the value of each of its D
    ordered digits per class, and (D,) the weights that make a class of digits.

    An ordinal head is one digit, its class. A sustain pattern is 4 segments of depth 0..2
    (render.pedal): its expected class is the expected depth of each segment, so the pedal goes
    down where the model thinks it more likely down than up, however that mass is split over
    the 81 patterns (the single most likely pattern is mostly "up")."""
    k = HEADS[name]
    if name == "sustain":
        from render.pedal import LEVELS, SEGMENTS, sustain_levels
        return (sustain_levels(np.arange(k)).astype(np.float32),
                (LEVELS ** np.arange(SEGMENTS - 1, -1, -1)).astype(np.int64))
    return np.arange(k, dtype=np.float32)[:, None], np.ones(1, np.int64)


def sample_heads(logits, u, temperature):
    """One class per head by inverse CDF: logits (V, sum(HEADS)), u (V, heads) uniform,
    temperature (heads,) numbers -> (V, heads) long. Temperature 0: the most likely class;
    negative (`EXPECTED`): the expected class, the distribution's mean rounded (a point estimate
    of an ordinal head that follows the whole distribution, not only its mode); `DECIDE` (the
    sustain head): whether the pedal comes up by `LIFT_THRESHOLD`, then a pattern that agrees."""
    cls = []
    for k, (name, part) in enumerate(zip(HEADS, logits.split(list(HEADS.values()), -1))):
        t = float(temperature[k])
        if t == DECIDE:
            p = torch.softmax(part, -1)
            up = torch.as_tensor(sustain_comes_up().copy(), device=p.device)
            want = (p * up).sum(-1, keepdim=True) >= LIFT_THRESHOLD          # (V, 1)
            cdf = (p * (up[None] == want)).cumsum(-1)
            cls.append((cdf <= u[:, k:k + 1] * cdf[:, -1:]).sum(-1).clamp(max=part.shape[-1] - 1))
            continue
        if t < 0.0:  # the expected value of each digit of the class (`head_digits`), rounded
            p = torch.softmax(part, -1)
            digits, weights = (torch.from_numpy(a).to(p.device) for a in head_digits(name))
            mean = (p[..., None] * digits.to(p.dtype)).sum(-2)             # (V, D)
            cls.append((mean.round().long() * weights).sum(-1))
            continue
        if t == 0.0:
            cls.append(part.argmax(-1))
            continue
        cdf = torch.softmax(part / t, -1).cumsum(-1)
        cls.append((cdf < u[:, k:k + 1] * cdf[:, -1:]).sum(-1).clamp(max=part.shape[-1] - 1))
    return torch.stack(cls, -1)


def heads_nll(logits, x, mask, head_mask=None, head_weight=None):
    """Sum over heads of each head's cross-entropy, summed over the notes that carry the head's
    target (`HEAD_SCOPE`, head_mask (B, T, H) bool; None = every valid note) and divided by the
    number of valid notes; head_weight {head: w} scales heads in the sum (not in the per-head
    figures). Returns (nll, {head: per-note figure})."""
    m = mask.float()
    n = m.sum().clamp(min=1)
    nll, per_head, start = 0.0, {}, 0
    for i, (name, k) in enumerate(HEADS.items()):
        ce = F.cross_entropy(logits[..., start:start + k].reshape(-1, k), x[..., i].reshape(-1),
                             reduction="none").view_as(m)
        start += k
        w = m if head_mask is None else m * head_mask[..., i].float()
        head = (ce * w).sum() / n
        nll = nll + (head if head_weight is None else head_weight.get(name, 1.0) * head)
        per_head[name] = head.item()
    return nll, per_head


def point_loss(point_logits, x, mask, head_mask=None, head_weight=None, prefix: str = "point"):
    """Deviation (auxiliary term, not in the paper): the negative log-likelihood of the human
    performance generated from z_n = the prior mean mu_p(h_{n-1}), i.e. along the path of the point
    estimate. The ELBO trains the generator only on posterior samples, which see x_n; this term
    makes the prior's mean carry what the score and the history imply. The bottleneck is kept: x_n
    still sees h only through z_n. Returns (nll, per-head stats named ``<prefix>_<head>``).

    The same term on logits generated from a draw of the prior (``CVRNN.forward(sample=True)``,
    prefix "sample") trains the generator on the z that sampled takes use, which the ELBO never
    shows it (model v2.4, MODEL_CARD)."""
    nll, per_head = heads_nll(point_logits, x, mask, head_mask, head_weight)
    return nll, {f"{prefix}_{k}": v for k, v in per_head.items()}


def free_loss(free_logits, x, mask, head_mask=None, head_weight=None, prefix: str = "free"):
    """Deviation (auxiliary term, not in the paper; model v2.9): `point_loss` on the logits of
    `CVRNN.free_run`, the point estimate run free over the window (its own outputs fed back).
    `point_loss` alone trains z = mu_p(h_{n-1}) on states that the human's notes made; a
    rendering never reaches those states, and on the val works its point estimate stayed near
    the piece's mean loudness through written ff sections (ml/MODEL_CARD.md). The bottleneck is
    kept: x_n sees h only through z_n. Model v2.10 also runs a sampled take free (prefix "take"):
    the takes' states drift further than the point estimate's."""
    return point_loss(free_logits, x, mask, head_mask, head_weight, prefix=prefix)


def elbo_loss(logits, x, mask, q_p, *, kl_weight: float = 1.0, free_bits: float = 0.0, head_mask=None,
              prior_below_floor: bool = False, head_weight: dict | None = None):
    """Negative ELBO per note, the paper's equation (7).

    l_n = -E_q[log p(x_n | z_n, c_n)] + KL(q(z_n | x_n, h_{n-1}) || p(z_n | h_{n-1})),
    the expectation estimated with one reparameterised sample. The categorical heads are
    independent given z_n and c_n, so log p(x_n | ...) is a sum of cross-entropies.

    head_mask: (B, T, H) bool, the notes that carry each head's target (`HEAD_SCOPE`: the tempo
    once per beat, the pedal once per chord); None = every valid note. Each head's NLL is summed
    over its notes and divided by the number of valid notes, so it stays a per-note figure.

    free_bits: a floor (nats) on the batch-mean KL of each latent dimension, against posterior
    collapse (Kingma et al. 2016); 0 disables it.

    prior_below_floor: the free-bits floor holds the posterior only: the prior keeps learning to
    predict the posterior (the gradient of KL(sg(q) || p)) while a dimension's KL is below the
    floor. With the floor on the whole KL such a dimension sends no gradient to the prior at all,
    and the point estimate z = prior mean stays uninformed. The loss's value and the posterior's
    gradient are those of the plain floor. (A DreamerV2-style balance that weights the posterior's
    term 0.2 was tried: the KL grew from 1 to 6 nats per note and the validation ELBO worsened.)

    head_weight: {head: w}, a deviation: weights on heads' NLL in the loss (the beat tempo, counted
    once per beat, is otherwise worth less to z than every note's onset deviation). Stats stay
    unweighted.

    Returns (loss, stats) with per-head NLL and per-dimension KL (means over valid notes).
    """
    m = mask.float()
    n = m.sum().clamp(min=1)
    nll, per_head = heads_nll(logits, x, mask, head_mask, head_weight)
    stats = {f"nll_{k}": v for k, v in per_head.items()}
    mq, lq, mp, lp = q_p
    mu = m.unsqueeze(-1)

    def kl_per_dim(mq, lq, mp, lp):  # Gaussian KL(q || p) per dimension, mean over valid notes (Z,)
        kl = 0.5 * (lp - lq + (lq.exp() + (mq - mp) ** 2) / lp.exp() - 1.0)  # (B, T, Z)
        return (kl * mu).sum((0, 1)) / n

    kl_dim = kl_per_dim(mq, lq, mp, lp)
    if prior_below_floor:
        post = kl_per_dim(mq, lq, mp.detach(), lp.detach())
        post = torch.clamp(post, min=free_bits) if free_bits > 0 else post
        prior = kl_per_dim(mq.detach(), lq.detach(), mp, lp)
        kl_term = post.sum() + prior.sum() - prior.sum().detach()  # value: the floored KL
    else:
        kl_term = torch.clamp(kl_dim, min=free_bits).sum() if free_bits > 0 else kl_dim.sum()
    loss = nll + kl_weight * kl_term
    kl_dim = kl_dim.detach()
    stats.update(nll=sum(per_head.values()), kl=float(kl_dim.sum()), kl_dim=[round(v, 4) for v in kl_dim.tolist()])
    return loss, stats


def targets_to_classes(target):
    """(…, 6) int ENCODED_DTYPE values (velocity, duration_100, deviation_100, tempo_log_50,
    sustain, soft) -> class indices."""
    offs = torch.tensor([0, -1, 50, 50, 0, 0], dtype=target.dtype, device=target.device)
    hi = torch.tensor([v - 1 for v in HEADS.values()], dtype=target.dtype, device=target.device)
    return torch.minimum((target + offs).clamp(min=0), hi).long()


def classes_to_targets(cls):
    """Inverse of `targets_to_classes`."""
    offs = torch.tensor([0, 1, -50, -50, 0, 0], dtype=cls.dtype, device=cls.device)
    return cls + offs


def migrate_state_dict(sd: dict) -> dict:
    """Weights saved before the generator's layers had names (``gen.0`` / ``gen.2`` / ``gen.4``)."""
    names = {"gen.0.": "gen_in.", "gen.2.": "gen_hidden.", "gen.4.": "gen_out."}
    out = {}
    for k, v in sd.items():
        for a, b in names.items():
            if k.startswith(a):
                k = b + k[len(a):]
        out[k] = v
    return out


def _plain(value):
    """Checkpoint metadata as what ``torch.load(weights_only=True)`` reads: numpy scalars and arrays
    become numbers and lists, paths strings; tensors, dicts, lists and tuples keep their type."""
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, PurePath):
        return str(value)
    return value


def save_checkpoint(path, model: CVRNN, **extra):
    """Weights (float32), the config that rebuilds the model and plain metadata (``extra``)."""
    torch.save({"config": asdict(model.cfg), "model": model.state_dict(), **_plain(extra)}, path)


# Numpy scalars (a float32 loss, say) in the metadata of checkpoints saved before `save_checkpoint`
# made it plain: allowed when loading, as data (a dtype and raw bytes), so those files still load.
_OLD_METADATA_TYPES = [np._core.multiarray.scalar, np.dtype,
                       *{type(np.dtype(c)) for c in "?bhilqBHILQefdg"}]


def load_checkpoint(path, device="cpu") -> dict:
    """A checkpoint written by `save_checkpoint` (weights, config, metadata), loaded without pickle's
    code execution (``weights_only=True``)."""
    with torch.serialization.safe_globals(_OLD_METADATA_TYPES):
        return torch.load(path, map_location=device, weights_only=True)


def load_model(path, device="cpu") -> tuple[CVRNN, dict]:
    """Rebuild a model from a checkpoint written by `save_checkpoint`."""
    ckpt = load_checkpoint(path, device)
    cfg = ckpt["config"]
    cfg["cnn_channels"] = tuple(cfg["cnn_channels"])
    cfg["roll_windows"] = tuple(tuple(w) for w in cfg["roll_windows"])
    cfg["ctx_dilations"] = tuple(cfg.get("ctx_dilations", ModelConfig.ctx_dilations))
    cfg.setdefault("beat_features", 24)  # checkpoints from before the marked pedal (v2.5 and older)
    model = CVRNN(ModelConfig(**cfg)).to(device)
    model.load_state_dict(migrate_state_dict(ckpt["model"]))
    model.eval()
    return model, ckpt


# Where each weight whose input grows takes the new columns: the score features' embeddings come
# first in the MLP's input and last in c_n; c_n comes first in the generator's and the state's.
_GROWS_AT = {"score.mlp.0.weight": lambda c: sum(c.feature_emb.values()), "gen_in.weight": lambda c: c.c_dim,
             "state_in.weight": lambda c: c.c_dim, "score.context.inp.weight": lambda c: c.beat_features}


def grow_model(path, device="cpu") -> CVRNN:
    """A checkpoint's model with the inputs this code has and the checkpoint lacks (score features
    added since, beat-context columns), the weights from those inputs zero: it computes exactly
    what the checkpoint did until training moves them (continuing a run with new inputs)."""
    old_model, _ = load_model(path, device)
    old = old_model.cfg
    new_emb = {k: v for k, v in ModelConfig().feature_emb.items() if k not in old.feature_emb}
    cfg = replace(old, feature_emb={**old.feature_emb, **new_emb}, beat_features=BEAT_FEATURES)
    model = CVRNN(cfg).to(device)
    sd, sd_old = model.state_dict(), old_model.state_dict()
    for k, w in sd.items():
        if k not in sd_old:     # a new feature's embedding: its own initialisation
            continue
        v = sd_old[k]
        if v.shape != w.shape:
            if k not in _GROWS_AT or v.shape[0] != w.shape[0]:
                raise ValueError(f"cannot grow {k} from {tuple(v.shape)} to {tuple(w.shape)}")
            at = _GROWS_AT[k](old)
            zeros = torch.zeros((v.shape[0], w.shape[1] - v.shape[1]) + tuple(v.shape[2:]), dtype=v.dtype)
            v = torch.cat([v[:, :at], zeros.to(v.device), v[:, at:]], 1)
        sd[k] = v
    model.load_state_dict(sd)
    return model.eval()
