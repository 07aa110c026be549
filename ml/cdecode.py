"""The CVRNN decode loop compiled (ml/csrc/cvdecode.c, kernels.h), with `NumpyDecoder`'s interface.

    python -m ml.cdecode --build      # compile now (setup does), print the library's path

The C loop runs a whole pass (n notes for B rows) in one call: the numpy step pays Python's
per-operation cost ~70 times a note, which dominates at 1-16 rows. The library is compiled on
first use for this CPU (``cc -O3 -march=native``; a fingerprint of the CPU's flags and of the
source names the file, so machines sharing a disk do not run each other's builds) into
``$CDECODE_DIR`` (default ``.cache/cdecode`` in the checkout). Without a C compiler the numpy
decoder serves (`cpu_decoder` warns once).

Same arithmetic as `NumpyDecoder._decode` and the same noise (drawn here with the same calls on
each render's generator), so a seed gives the same take with both up to float rounding: the C
products sum in another order than OpenBLAS, and exp (heads, gates) is a vectorised polynomial
(~1 ulp; tanh as 2 sigmoid(2x) - 1), which can move a drawn class that sits on a boundary (about
one draw in a few hundred with every head sampled; then the take goes its own way). A row's
result never depends on the rows beside it (every product sums in one fixed order per output),
so no row tile is needed and the rows split between threads freely.
"""
from __future__ import annotations

import argparse
import ctypes as C
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ml.fastdecode import DECIDE, NumpyDecoder, Rows, _np
from ml.model import HEADS, LIFT_THRESHOLD, CVRNN

SOURCE = Path(__file__).with_name("csrc") / "cvdecode.c"
FLAGS = ["-O3", "-fPIC", "-shared", "-pthread", "-ffp-contract=off", "-fno-math-errno"]
PANEL = 8


class _Mat(C.Structure):
    _fields_ = [("w", C.c_void_p), ("b", C.c_void_p), ("k", C.c_int32), ("n", C.c_int32), ("panels", C.c_int32)]


class _Net(C.Structure):
    _fields_ = ([(f, C.c_int32) for f in ("Z", "U", "S", "Hs", "L", "NH", "n_seg", "pattern_head",
                                           "decide_head", "total_classes")]
                + [("lift_threshold", C.c_float)]
                + [("prior", _Mat * 3), ("prior_out", _Mat), ("psi", _Mat * 3), ("psi_out", _Mat),
                   ("g2", _Mat), ("g4", _Mat), ("phi", _Mat * 3), ("s_phi", _Mat), ("gi", _Mat * 4),
                   ("gh", _Mat * 4), ("phi_tab", C.c_void_p * 3)]
                + [(f, C.c_void_p) for f in ("head_lo", "head_size", "digits", "digit_w", "comes_up")])


class _Pass(C.Structure):
    _fields_ = ([(f, C.c_int32) for f in ("n", "B", "threads")]
                + [(f, C.c_void_p) for f in ("c_gen", "c_state", "h", "eps", "u", "mode", "temps", "zt",
                                              "x_prev", "has_prev", "delta", "z_fixed", "scope", "live",
                                              "xs", "zs")])


def _cpu_fingerprint() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        flags = next((ln for ln in lines if ln.startswith(("flags", "Features"))), "")
        model = next((ln for ln in lines if ln.startswith("model name")), "")
    except OSError:
        flags = model = ""
    return f"{platform.machine()}|{model}|{flags}"


def _build_dir() -> Path:
    d = Path(os.environ.get("CDECODE_DIR") or Path(__file__).resolve().parents[1] / ".cache" / "cdecode")
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".w{os.getpid()}"
        probe.touch()
        probe.unlink()
        return d
    except OSError:
        d = Path(tempfile.gettempdir()) / f"cdecode-{os.getuid()}"
        d.mkdir(parents=True, exist_ok=True)
        return d


def build(force: bool = False) -> Path:
    """Compile the library for this CPU (once: the file is named by source, flags and CPU) and
    return its path. Raises RuntimeError with the compiler's message when it cannot."""
    cc = os.environ.get("CC", "cc")
    src = b"".join(f.read_bytes() for f in sorted(SOURCE.parent.glob("*.[ch]")))  # kernels.h too
    native = ["-march=native"] if platform.machine() in ("x86_64", "AMD64", "aarch64", "arm64") else []
    key = hashlib.sha256(src + " ".join(FLAGS + native).encode() + _cpu_fingerprint().encode()).hexdigest()[:16]
    out = _build_dir() / f"cvdecode-{key}.so"
    if out.exists() and not force:
        return out
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    cmd = [cc, *FLAGS, *native, "-o", str(tmp), str(SOURCE), "-lm"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise RuntimeError(f"cannot compile {SOURCE.name}: {e}") from e
    if res.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"cannot compile {SOURCE.name} ({' '.join(cmd)}):\n{res.stderr.strip()}")
    os.replace(tmp, out)  # atomic: processes building at once each leave a whole file
    return out


_LIB = None


def load_library() -> C.CDLL:
    """The compiled decode loop (built on first use)."""
    global _LIB
    if _LIB is None:
        lib = C.CDLL(str(build()))
        lib.cv_decode.argtypes = [C.POINTER(_Net), C.POINTER(_Pass)]
        lib.cv_decode.restype = C.c_int
        lib.cv_abi.restype = C.c_int
        lib.cv_gru_seq.argtypes = [C.POINTER(_Mat), C.POINTER(_Mat), C.c_int, C.c_int, C.c_int, C.c_void_p,
                                   C.c_int, C.c_void_p, C.c_void_p]
        lib.cv_gru_seq.restype = C.c_int
        if lib.cv_abi() != C.sizeof(_Net) * 1000 + C.sizeof(_Pass):
            raise RuntimeError("ml/csrc/cvdecode.c and ml/cdecode.py disagree on the structures")
        _LIB = lib
    return _LIB


def _panels(W: np.ndarray, b: np.ndarray | None, keep: list) -> _Mat:
    """W (k, n) as panels of 8 columns (p, k, 8), zero past n; the arrays stay alive in ``keep``."""
    k, n = W.shape
    p = -(-n // PANEL)
    Wp = np.zeros((k, p * PANEL), np.float32)
    Wp[:, :n] = W
    Wp = np.ascontiguousarray(Wp.reshape(k, p, PANEL).transpose(1, 0, 2))
    keep.append(Wp)
    bp = None
    if b is not None:
        bp = np.zeros(p * PANEL, np.float32)
        bp[:n] = b
        keep.append(bp)
    return _Mat(Wp.ctypes.data, 0 if bp is None else bp.ctypes.data, k, n, p)


def f32(a) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(a, np.float32)


def _ptr(a: np.ndarray | None) -> int:
    return 0 if a is None else a.ctypes.data


class CDecoder(NumpyDecoder):
    """`NumpyDecoder` with its pass in C; ``threads`` splits the rows (default: torch's
    intra-op thread count, which the web worker sets from TORCH_THREADS)."""

    def __init__(self, model: CVRNN, threads: int | None = None):
        super().__init__(model)
        self.lib = load_library()
        self.threads = threads
        cfg, keep = self.cfg, []
        self._keep = keep
        Z, U, nh = cfg.z_dim, cfg.dense_units, len(HEADS)
        if Z > 8 or nh > 16:
            raise ValueError("the C decoder holds at most 8 latent dimensions and 16 heads")
        net = _Net()
        net.Z, net.U, net.S, net.Hs = Z, U, self.s_phi.shape[1], cfg.state_dim
        net.L, net.NH = len(self.cells), nh
        if net.L > 4:
            raise ValueError("the C decoder holds at most 4 GRU layers")
        for dst, mlp in ((net.prior, self.prior), (net.psi, self.psi)):
            for i, (W, b) in enumerate(mlp.layers):
                dst[i] = _panels(W, b, keep)
        net.prior_out = _panels(*self.prior_out, keep)
        net.psi_out = _panels(self.psi_out, None, keep)
        net.g2, net.g4 = _panels(*self.g2, keep), _panels(*self.g4, keep)
        net.s_phi = _panels(self.s_phi, None, keep)
        # phi's first rows read the embeddings of the classes: made once per class as tables
        E = cfg.x_emb * nh
        lo = self.bounds[:-1]
        for i, (W, b) in enumerate(self.phi.layers):
            net.phi[i] = _panels(W[E:], b, keep)
            tab = np.zeros((int(self.bounds[-1]), net.phi[0].panels * PANEL), np.float32)
            for k, emb in enumerate(self.x_embs):
                part = W[k * cfg.x_emb:(k + 1) * cfg.x_emb].astype(np.float64)
                tab[lo[k]:lo[k] + len(emb), :U] = emb.astype(np.float64) @ part
            keep.append(tab)
            net.phi_tab[i] = tab.ctypes.data
        for i, (wi, bi, wh, bh) in enumerate(self.cells):
            net.gi[i], net.gh[i] = _panels(wi, bi, keep), _panels(wh, bh, keep)
        names = list(HEADS)
        sustain = names.index("sustain")
        digits, weights = self.digits[sustain]
        self._arrays = [np.ascontiguousarray(lo, np.int32), np.ascontiguousarray(self.sizes, np.int32),
                        np.ascontiguousarray(digits, np.float32), np.ascontiguousarray(weights, np.int64),
                        np.ascontiguousarray(self.comes_up, np.uint8)]
        net.head_lo, net.head_size, net.digits, net.digit_w, net.comes_up = (a.ctypes.data for a in self._arrays)
        net.n_seg, net.pattern_head, net.decide_head = digits.shape[1], sustain, sustain
        net.total_classes, net.lift_threshold = int(self.bounds[-1]), LIFT_THRESHOLD
        self.net = net
        gru = model.score.gru
        self._gru_dims = (gru.num_layers, gru.hidden_size, gru.input_size)
        self._gru_wi = (_Mat * gru.num_layers)(*(
            _panels(_np(getattr(gru, f"weight_ih_l{i}")).T, _np(getattr(gru, f"bias_ih_l{i}")), keep)
            for i in range(gru.num_layers)))
        self._gru_wh = (_Mat * gru.num_layers)(*(
            _panels(_np(getattr(gru, f"weight_hh_l{i}")).T, _np(getattr(gru, f"bias_hh_l{i}")), keep)
            for i in range(gru.num_layers)))

    def score_gru(self, x, h0=None):
        """The score encoder's GRU over one sequence of notes, as `torch.nn.GRU` (batch_first):
        x (1, T, D) tensor, h0 (L, 1, H) or None -> (out (1, T, H), h (L, 1, H)) tensors."""
        import torch
        L, H, D = self._gru_dims
        if x.dim() != 3 or x.shape[0] != 1 or x.shape[2] != D:
            raise ValueError(f"score_gru takes one sequence (1, T, {D}), not {tuple(x.shape)}")
        T = x.shape[1]
        xs = np.ascontiguousarray(x[0].detach().cpu().numpy(), np.float32)
        h = np.zeros((L, H), np.float32) if h0 is None else np.array(h0.detach().cpu().numpy()[:, 0], np.float32)
        out = np.zeros((T, H), np.float32)
        if self.lib.cv_gru_seq(self._gru_wi, self._gru_wh, L, H, T, xs.ctypes.data, D, h.ctypes.data,
                               out.ctypes.data) != 0:
            raise MemoryError("the C decoder could not get its workspace")
        return torch.from_numpy(out)[None], torch.from_numpy(h)[:, None]

    def _measure_rows(self):
        return 1, True  # every row sums in one fixed order: no tile, any place

    def _thread_count(self, B: int) -> int:
        if self.threads is not None:
            return max(1, self.threads)
        import torch
        return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))

    def decode_rows(self, c_gen: np.ndarray, c_state: np.ndarray, h: np.ndarray, rows: Rows):
        """As `NumpyDecoder.decode_rows`; rows past their group's notes are left as they were."""
        n, B = c_gen.shape[:2]
        nh, Z = len(HEADS), self.cfg.z_dim
        temps = np.ascontiguousarray(rows.temps, np.float32)
        if (temps[:, [k for k in range(nh) if k != self.net.decide_head]] == DECIDE).any():
            raise ValueError("DECIDE applies to the sustain head only")
        eps = np.zeros((n, B, Z), np.float32)
        u = np.zeros((n, B, nh), np.float32)
        live = np.zeros((n, B), np.uint8)
        for g, (a, b) in enumerate(rows.groups):
            live[:rows.n[g], a:b] = 1
        # the noise drawn as NumpyDecoder draws it: per note, each render from its generator
        for i in range(n):
            for g, (a, b) in enumerate(rows.groups):
                if rows.n[g] > i:
                    eps[i, a:b] = rows.rngs[g].standard_normal((b - a, Z), dtype=np.float32)
                    u[i, a:b] = rows.rngs[g].random((b - a, nh), dtype=np.float32)
        arrays = dict(
            c_gen=f32(c_gen), c_state=f32(c_state), h=np.array(h, np.float32, order="C"), eps=eps, u=u,
            mode=np.ascontiguousarray(rows.mode, np.int32), temps=temps,
            zt=np.ascontiguousarray(np.asarray(rows.z_temperature, np.float32).reshape(B)),
            x_prev=np.array(rows.x_prev, np.int64, order="C"),
            has_prev=np.array(rows.has_prev, np.uint8, order="C"),
            delta=f32(rows.delta), z_fixed=f32(rows.z_fixed),
            scope=None if rows.scope is None else np.ascontiguousarray(rows.scope, np.uint8),
            live=live, xs=np.zeros((n, B, nh), np.int64), zs=np.zeros((n, B, Z), np.float32))
        if (rows.mode == 1).any() and arrays["delta"] is None or (rows.mode == 2).any() and arrays["z_fixed"] is None:
            raise ValueError("perturb rows need delta, fixed rows z_fixed")
        p = _Pass(n, B, self._thread_count(B), *(_ptr(arrays[f]) for f, _ in _Pass._fields_[3:]))
        if self.lib.cv_decode(C.byref(self.net), C.byref(p)) != 0:
            raise MemoryError("the C decoder could not get its workspace or threads")
        return arrays["xs"], arrays["zs"], arrays["h"]


_WARNED = False


def cpu_decoder(model: CVRNN) -> NumpyDecoder:
    """The decoder a CPU render uses: env DECODER = ``c`` (the compiled loop, default where a C
    compiler is found) or ``numpy``."""
    global _WARNED
    choice = os.environ.get("DECODER", "auto").lower()
    if choice not in ("auto", "c", "numpy"):
        raise ValueError(f"DECODER must be auto, c or numpy, not {choice!r}")
    if choice == "numpy":
        return NumpyDecoder(model)
    try:
        return CDecoder(model)
    except (RuntimeError, OSError) as e:
        if choice == "c":
            raise
        if not _WARNED:
            warnings.warn(f"the compiled decoder is not available, decoding in numpy: {e}", RuntimeWarning,
                          stacklevel=2)
            _WARNED = True
        return NumpyDecoder(model)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ml.cdecode", description=__doc__.split("\n")[0])
    ap.add_argument("--build", action="store_true", help="compile now (again with --force)")
    ap.add_argument("--force", action="store_true")
    a = ap.parse_args(argv)
    try:
        print(build(force=a.force))
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
