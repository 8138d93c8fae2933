"""Deraining networks, genotypes, losses and size counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import correlate

from nas.genotype import Genotype, GenotypeError
from restoration.complexity import count_macs, count_parameters, format_count
from restoration.derain.genotype import (TMICS_REFERENCE_PATH, derive_derain, genotype_ops, ops_to_genotype,
                                         reference_genotype)
from restoration.derain.losses import charbonnier, derain_loss, l1, ssim_loss
from restoration.derain.model import DerainNet, DerainSearch, split_frames
from restoration.ops import RESTORATION_PRIMITIVES


def _img(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_reference_genotype_ships_and_builds():
    g = Genotype.load(TMICS_REFERENCE_PATH)
    assert g == reference_genotype()
    assert genotype_ops(g) == ["res_block_5x5", "spatial_attention", "eca_attention", "res_block_3x3"]
    net = DerainNet(g, channels=4, cells=2, frames=5).eval()
    out = net(torch.rand(2, 5, 3, 12, 10))
    assert out["out"].shape == out["rain"].shape == (2, 3, 12, 10)


def test_genotype_errors_are_one_line():
    bad = [Genotype("ruas", {"cell": (("skip_connect", 0),)}, {"cell": (1,)}),
           Genotype("derain", {"cell": (("skip_connect", 0), ("conv_3x3", 0))}, {"cell": (2,)}),
           Genotype("derain", {"cell": (("skip_connect", 0),)}, {"cell": (0,)}),
           Genotype("derain", {"cell": (("max_pool_3x3", 0),)}, {"cell": (1,)})]
    for g in bad:
        with pytest.raises(GenotypeError) as exc:
            genotype_ops(g, "x.json")
        assert "\n" not in str(exc.value) and "x.json" in str(exc.value)


def test_output_is_middle_frame_minus_rain():
    net = DerainNet(reference_genotype(), channels=4, cells=1, frames=3).double()
    x = _img(1, 3, 3, 8, 8)
    out = net(x)
    assert torch.allclose(out["out"], x[:, 1] - out["rain"])
    with pytest.raises(ValueError, match="frames"):
        net(_img(1, 5, 3, 8, 8))
    stacked, middle = split_frames(x, 3)
    assert torch.equal(stacked[:, 3:6], x[:, 1]) and torch.equal(middle, x[:, 1])


def test_supernet_api_and_argmax_derivation():
    torch.manual_seed(0)
    net = DerainSearch(channels=4, cells=2, steps=3, frames=1)
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert list(arch) == ["alphas_cell"] and arch["alphas_cell"].shape == (3, len(RESTORATION_PRIMITIVES))
    names = dict(net.named_parameters())
    assert set(arch) | set(weights) == set(names) and not set(arch) & set(weights)
    with torch.no_grad():
        net.alphas_cell.zero_()
        for i, k in enumerate((3, 7, 12)):
            net.alphas_cell[i, k] = 1.0
    g = net.genotype()
    assert genotype_ops(g) == [RESTORATION_PRIMITIVES[k] for k in (3, 7, 12)]
    assert derive_derain(net.alphas_cell) == g
    out = net(torch.rand(2, 3, 8, 8))["out"]
    out.mean().backward()
    assert net.alphas_cell.grad is not None and net.alphas_cell.grad.abs().sum() > 0


def test_discrete_net_equals_supernet_with_one_hot_weights():
    """With one-hot mixing weights the supernet computes exactly the derived network."""
    torch.manual_seed(1)
    sup = DerainSearch(channels=4, cells=2, steps=2, frames=1).double()
    ops = ["res_block_3x3", "eca_attention"]
    g = ops_to_genotype(ops)
    net = DerainNet(g, channels=4, cells=2, frames=1).double()
    state = {}
    for k, v in net.state_dict().items():
        if k.startswith("cells."):
            _, c, _, e, rest = k.split(".", 4)
            state[k] = sup.state_dict()[f"cells.{c}._ops.{e}._ops.{RESTORATION_PRIMITIVES.index(ops[int(e)])}.{rest}"]
        else:
            state[k] = sup.state_dict()[k]
    net.load_state_dict(state)
    onehot = torch.zeros(2, len(RESTORATION_PRIMITIVES), dtype=torch.float64)
    for i, op in enumerate(ops):
        onehot[i, RESTORATION_PRIMITIVES.index(op)] = 1.0
    x = _img(1, 3, 8, 8)
    assert torch.allclose(sup._run(x, onehot)["out"], net(x)["out"], atol=1e-12)


def test_losses_against_numpy_and_scipy():
    x, y = _img(2, 3, 16, 14), _img(2, 3, 16, 14, seed=1)
    a, b = x.numpy(), y.numpy()
    assert charbonnier(x, y).item() == pytest.approx(np.mean(np.sqrt((a - b) ** 2 + 1e-6)), abs=1e-12)
    assert l1(x, y).item() == pytest.approx(np.mean(np.abs(a - b)), abs=1e-12)
    k1 = np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))
    K = np.outer(k1, k1) / k1.sum() ** 2
    maps = []
    for i in range(2):
        for c in range(3):
            f = lambda t: correlate(t, K, mode="mirror")  # noqa: E731  reflect without edge repeat
            p, q = a[i, c], b[i, c]
            mp, mq = f(p), f(q)
            vp, vq, cpq = f(p * p) - mp**2, f(q * q) - mq**2, f(p * q) - mp * mq
            maps.append(((2 * mp * mq + 1e-4) * (2 * cpq + 9e-4)) / ((mp**2 + mq**2 + 1e-4) * (vp + vq + 9e-4)))
    assert ssim_loss(x, y).item() == pytest.approx(1 - np.mean(maps), abs=1e-9)
    w = torch.tensor([0.7, 0.3], dtype=torch.float64, requires_grad=True)
    total = derain_loss(x, y, w, "l1")
    total.backward()
    assert torch.allclose(w.grad, torch.stack([l1(x, y), ssim_loss(x, y)]).detach())


def test_parameter_and_mac_counts_by_hand():
    conv = torch.nn.Conv2d(3, 5, 3, padding=1)
    assert count_parameters(conv) == 3 * 5 * 9 + 5
    assert count_macs(conv, torch.zeros(1, 3, 8, 6)) == 3 * 5 * 9 * 8 * 6
    assert format_count(3438) == "3.44K" and format_count(7_690_000) == "7.69M" and format_count(12) == "12"


def test_forward_over_reverse_through_every_op():
    """The ``fad`` method needs jvp of the weight gradient w.r.t. the alphas; check it against a
    central finite difference of the weight gradient."""
    from torch.func import functional_call, grad, jvp

    torch.manual_seed(0)
    net = DerainSearch(channels=3, cells=1, steps=2, frames=3).double()
    x, y = _img(1, 3, 3, 12, 12), _img(1, 3, 12, 12, seed=1)
    W = {k: v.detach() for k, v in net.weight_parameters().items()}
    A = {k: v.detach() for k, v in net.arch_parameters().items()}
    f = lambda w, a: derain_loss(functional_call(net, {**w, **a}, (x,))["out"], y)  # noqa: E731
    t = {k: torch.randn_like(v) for k, v in A.items()}
    _, tangent = jvp(lambda a: grad(f)(W, a), (A,), (t,))
    eps = 1e-5
    plus = grad(f)(W, {k: A[k] + eps * t[k] for k in A})
    minus = grad(f)(W, {k: A[k] - eps * t[k] for k in A})
    for k in W:
        assert torch.allclose(tangent[k], (plus[k] - minus[k]) / (2 * eps), atol=1e-6), k
