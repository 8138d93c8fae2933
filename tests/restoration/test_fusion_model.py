"""The multi-scale fusion search space: supernet, derivation, discrete network, reference genotype."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from nas.genotype import Genotype, GenotypeError
from nas.ops import OPS
from restoration.fusion.complexity import count_macs, count_parameters, format_count
from restoration.fusion.genotype import FUSION_PRIMITIVES, FUSION_REFERENCE_PATH, load_fusion_genotype, reference_genotype
from restoration.fusion.model import CELL_NAMES, EDGE_INPUTS, FusionNet, FusionSearchNet, SelectiveKernelFusion, decompose

torch.manual_seed(0)


def _conv(k: int, dilation: int = 1):
    def make(C_in, C_out, stride, affine=True):
        return nn.Conv2d(C_in, C_out, k, stride, padding=dilation * (k // 2), dilation=dilation)
    return make


#: A tiny stand-in op dict with the names the fusion space expects (the shared family is separate).
TINY_OPS = {name: _conv(3, 2 if name.startswith("dil") else 1) for name in FUSION_PRIMITIVES}
TINY_OPS["skip_connect"] = lambda C_in, C_out, stride, affine=True: nn.Identity()
DARTS_PRIMS = ("skip_connect", "sep_conv_3x3", "dil_conv_3x3")


def test_supernet_forward_params_and_gradients():
    net = FusionSearchNet(OPS, DARTS_PRIMS, C=4)
    ir, vi = torch.rand(2, 1, 13, 10), torch.rand(2, 1, 13, 10)
    out = net(ir, vi)
    assert out.shape == (2, 1, 13, 10) and (out > 0).all() and (out < 1).all()
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert set(arch) == {f"alphas.{c}" for c in CELL_NAMES}
    assert set(arch) | set(weights) == {n for n, _ in net.named_parameters()} and not set(arch) & set(weights)
    out.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in arch.values())
    with pytest.raises(ValueError, match="not in the op dict"):
        FusionSearchNet(OPS, ("dense_block_3x3",), C=4)


def test_genotype_argmax_and_discrete_network():
    net = FusionSearchNet(TINY_OPS, FUSION_PRIMITIVES, C=4)
    picks = {"scale1": [0, 1, 2, 3], "scale2": [4, 5, 6, 0], "scale4": [1, 1, 2, 6]}
    with torch.no_grad():
        for cell, idx in picks.items():
            net.alphas[cell].zero_()
            net.alphas[cell][torch.arange(len(EDGE_INPUTS)), torch.tensor(idx)] = 1.0
    g = net.genotype()
    for cell, idx in picks.items():
        assert g.cells[cell] == tuple((FUSION_PRIMITIVES[k], src) for k, src in zip(idx, EDGE_INPUTS))
    again = Genotype.from_json(g.to_json())
    discrete = FusionNet(again, TINY_OPS, C=4)
    assert discrete(torch.rand(1, 1, 9, 11), torch.rand(1, 1, 9, 11)).shape == (1, 1, 9, 11)
    # one op per edge: the discrete network is much smaller than the supernet
    assert count_parameters(discrete) < count_parameters(net)


def test_reference_genotype_builds_and_is_validated(tmp_path):
    g = reference_genotype()
    assert set(g.cells) == set(CELL_NAMES) and all(op in FUSION_PRIMITIVES for c in g.cells.values() for op, _ in c)
    net = FusionNet(g, TINY_OPS, C=4, use_decomposition=True)
    assert net(torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)).shape == (1, 1, 16, 16)
    assert load_fusion_genotype(FUSION_REFERENCE_PATH, TINY_OPS) == g
    bad = json.loads(FUSION_REFERENCE_PATH.read_text())
    bad["scale1"][0][0] = "warp_drive"
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(GenotypeError, match="unknown op") as e:
        load_fusion_genotype(tmp_path / "bad.json", TINY_OPS)
    assert "\n" not in str(e.value) and "bad.json" in str(e.value)
    with pytest.raises(GenotypeError, match="space"):
        FusionNet(Genotype("ruas", {"scale1": (("skip_connect", 0),)}, {"scale1": (1,)}), TINY_OPS)


def test_guided_filter_decomposition_matches_box_filter_formula():
    x = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    base, detail = decompose(x, kernel_size=5, eps=0.01)
    assert torch.allclose(base + detail, x)
    I = x[0, 0].numpy()
    box = lambda v: ndimage.uniform_filter(v, 5, mode="nearest")  # noqa: E731
    m, var = box(I), box(I * I) - box(I) ** 2
    a = var / (var + 0.01)
    b = m - a * m
    assert np.allclose(base[0, 0].numpy(), box(a) * I + box(b), atol=1e-10)


def test_selective_kernel_fusion_is_a_convex_combination():
    sk = SelectiveKernelFusion(8, 3)
    f = torch.rand(2, 8, 5, 5)
    assert torch.allclose(sk([f, f, f]), f, atol=1e-6)
    a, b, c = torch.zeros(2, 8, 5, 5), torch.ones(2, 8, 5, 5), 2 * torch.ones(2, 8, 5, 5)
    out = sk([a, b, c])
    assert (out >= 0).all() and (out <= 2).all()


@pytest.mark.slow  # the first FlopCounterMode use costs about 2.5 s
def test_mac_count_closed_form():
    class One(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, padding=1)

        def forward(self, ir, vi):
            return self.conv(torch.cat([ir, vi], 1))

    assert count_macs(One(), 8, 6) == 8 * 6 * 3 * 2 * 9
    assert format_count(3_438) == "3.44K" and format_count(12) == "12"


def test_fusion_primitives_are_the_shared_restoration_ops():
    from restoration.ops import RESTORATION_OPS

    assert set(FUSION_PRIMITIVES) <= set(RESTORATION_OPS)
    net = FusionNet(reference_genotype(), RESTORATION_OPS, C=4)
    assert net(torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12)).shape == (1, 1, 12, 12)
    assert load_fusion_genotype(FUSION_REFERENCE_PATH, RESTORATION_OPS) == reference_genotype()
