"""The numpy decode step computes what the torch model computes."""
from __future__ import annotations

import numpy as np
import torch

from ml.fastdecode import NumpyDecoder
from ml.model import CVRNN


def test_numpy_step_matches_torch(tiny_config):
    torch.manual_seed(0)
    m = CVRNN(tiny_config).eval()
    fast = NumpyDecoder(m)
    V, cfg = 3, tiny_config
    h = torch.randn(cfg.state_layers, V, cfg.state_dim)
    z = torch.randn(V, cfg.z_dim)
    c = torch.randn(1, cfg.c_dim)
    x = torch.stack([torch.tensor([1, 5, 90]), torch.tensor([0, 799, 3]),
                     torch.tensor([50, 2, 99]), torch.tensor([7, 70, 49])], -1)  # (V, 4)
    with torch.no_grad():
        mu, lv = m.prior_params(h[-1])
        ps = m.psi(z)
        logits = m.gen(torch.cat([c.expand(V, -1), ps], -1))
        inp = m.state_in(torch.cat([c.expand(V, -1), m.embed_x(x), ps], -1))
        h_next = m.step_state(h, inp)
    mo = fast.prior(h[-1].numpy()) @ fast.prior_out[0] + fast.prior_out[1]
    assert np.allclose(mo[:, :cfg.z_dim], mu.numpy(), atol=1e-5)
    assert np.allclose(mo[:, cfg.z_dim:], lv.numpy(), atol=1e-5)
    c_gen, c_state = fast.precompute(c.numpy())
    ps_np = fast.psi(z.numpy())
    assert np.allclose(ps_np, ps.numpy(), atol=1e-5)
    hid = np.maximum(c_gen[0] + ps_np @ fast.g0_psi, 0.1 * (c_gen[0] + ps_np @ fast.g0_psi))
    l2 = hid @ fast.g2[0] + fast.g2[1]
    lg = np.where(l2 > 0, l2, 0.1 * l2) @ fast.g4[0] + fast.g4[1]
    assert np.allclose(lg, logits.numpy(), atol=1e-4)
    emb = np.concatenate([tab[x[:, k].numpy()] for k, tab in enumerate(fast.x_embs)], -1)
    inp_np = c_state[0] + fast.phi(emb) @ fast.s_phi + ps_np @ fast.s_psi
    assert np.allclose(inp_np, inp.numpy(), atol=1e-5)
    assert np.allclose(fast.step_state(h.numpy(), inp_np), h_next.numpy(), atol=1e-5)


def test_sampling_follows_the_heads(tiny_config):
    """With one class far more likely in every head, inverse-CDF sampling picks it."""
    torch.manual_seed(0)
    m = CVRNN(tiny_config).eval()
    with torch.no_grad():
        m.gen[4].weight.zero_()
        m.gen[4].bias.fill_(-20.0)
        for k in (64, 128 + 99, 128 + 800 + 50, 128 + 800 + 100 + 10):
            m.gen[4].bias[k] = 20.0
    fast = NumpyDecoder(m)
    c = np.random.default_rng(0).standard_normal((20, tiny_config.c_dim)).astype(np.float32)
    h = np.zeros((tiny_config.state_layers, 2, tiny_config.state_dim), np.float32)
    x, z, _ = fast.decode(*fast.precompute(c), h, np.random.default_rng(1))
    assert (x[..., 0] == 64).all() and (x[..., 1] == 99).all()
    assert (x[..., 2] == 50).all() and (x[..., 3] == 10).all()
    assert z.shape == (20, 2, tiny_config.z_dim)
