"""AutoReg ops, the registration U-Net, supernet, discrete network and reference genotype."""

import math

import pytest
import torch
from torch import nn

from nas.genotype import Genotype, GenotypeError
from restoration.registration.genotype import AUTOREG_REFERENCE_PATH, check_genotype, reference_genotype
from restoration.registration.model import RegNet, RegSearchNet, RegUNet, count_macs, count_parameters
from restoration.registration.ops import AUTOREG_PRIMITIVES, autoreg_ops

CH = (4, 8, 8)


@pytest.mark.parametrize("dims", [2, 3])
def test_every_op_keeps_size_and_has_the_expected_parameter_count(dims):
    x = torch.randn(1, 4, *([9] * dims))
    for name, factory in autoreg_ops(dims).items():
        op = factory(4, 6, 1, False)
        assert op(x).shape == (1, 6) + (9,) * dims, name
        k = int(name[-1])
        kd = k ** dims
        expected = 4 * kd + 4 + 4 * 6 + 6 if name.startswith("sep") else 4 * 6 * kd + 6
        assert count_parameters(op) == expected, name
    dil = autoreg_ops(dims)["dil_conv_7x7"](1, 1)
    assert dil[0].dilation == (2,) * dims
    with pytest.raises(ValueError, match="stride 1"):
        autoreg_ops(dims)["conv_3x3"](4, 4, 2)
    assert len(AUTOREG_PRIMITIVES) == 8


@pytest.mark.parametrize("dims,size", [(2, (13, 15)), (3, (9, 10, 7))])
@pytest.mark.parametrize("velocity", [True, False])
def test_unet_shapes_and_near_identity_start(dims, size, velocity):
    torch.manual_seed(0)
    net = RegUNet(dims, CH, velocity=velocity)
    m, f = torch.rand(2, 1, *size), torch.rand(2, 1, *size)
    out = net(m, f)
    assert out["flow"].shape == (2, dims) + size
    assert ("velocity" in out) == velocity
    assert out["flow"].abs().max() < 1e-2
    torch.testing.assert_close(out["warped"], m, atol=1e-2, rtol=0)
    out["warped"].sum().backward()
    assert net.head.weight.grad.abs().sum() > 0


def test_supernet_parameters_genotype_and_gradients():
    torch.manual_seed(1)
    net = RegSearchNet(2, CH)
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert set(arch) == {"alphas_coarse", "alphas_fine"} and arch["alphas_fine"].shape == (3, 8)
    assert set(arch) | set(weights) == {n for n, _ in net.named_parameters()} and not set(arch) & set(weights)
    with torch.no_grad():
        for a in arch.values():
            a.zero_()
        net.alphas_fine[0, 3] = net.alphas_fine[1, 7] = net.alphas_fine[2, 0] = 1.0
        net.alphas_coarse[:, 2] = 1.0
    g = net.genotype()
    assert g.cells["fine"] == (("sep_conv_3x3", 0), ("dil_conv_7x7", 1), ("conv_1x1", 2))
    assert g.cells["coarse"] == (("conv_5x5", 0), ("conv_5x5", 1), ("conv_5x5", 2))
    out = net(torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12))
    (out["flow"].pow(2).sum() + out["warped"].sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in arch.values())


@pytest.mark.parametrize("dims", [2, 3])
def test_supernet_with_one_hot_alphas_equals_the_discrete_network(dims):
    torch.manual_seed(2)
    sup = RegSearchNet(dims, CH)
    with torch.no_grad():
        for a in sup.arch_parameters().values():
            a.fill_(-1e4)
            for i, j in enumerate([3, 5, 1]):
                a[i, j] = 1e4
    geno = sup.genotype()
    disc = RegNet(dims, CH, geno)
    state = {k.removeprefix("net."): v for k, v in sup.state_dict().items() if ".cells." not in f".{k}"}
    missing = disc.load_state_dict({k: v for k, v in state.items() if not k.startswith("alphas")}, strict=False)
    assert all(k.startswith("cells.") for k in missing.missing_keys)
    for name in ("coarse", "fine"):
        for i, j in enumerate([3, 5, 1]):
            disc.cells[name]._ops[i].load_state_dict(sup.net.cells[name]._ops[i]._ops[j].state_dict())
    with torch.no_grad():
        sup.net.head.weight.normal_(0, 0.05)
        disc.head.weight.copy_(sup.net.head.weight)
    x, y = torch.rand(1, 1, *([8] * dims)), torch.rand(1, 1, *([8] * dims))
    a, b = sup(x, y), disc(x, y)
    torch.testing.assert_close(a["flow"], b["flow"], atol=1e-6, rtol=1e-5)
    assert a["flow"].abs().max() > 1e-3


def test_reference_genotype_json_loads_checks_and_builds_in_2d_and_3d():
    g = Genotype.load(AUTOREG_REFERENCE_PATH)
    assert g == reference_genotype()
    check_genotype(g)
    assert [op for op, _ in g.cells["fine"]] + [op for op, _ in g.cells["coarse"]] == [
        "sep_conv_3x3", "dil_conv_3x3", "sep_conv_5x5", "sep_conv_3x3", "dil_conv_3x3", "sep_conv_3x3"]
    for dims in (2, 3):
        out = RegNet(dims, CH, g)(torch.rand(1, 1, *([8] * dims)), torch.rand(1, 1, *([8] * dims)))
        assert out["flow"].shape == (1, dims) + (8,) * dims
    bad = Genotype("ruas", {"fine": (("conv_3x3", 0),)}, {"fine": (1,)})
    with pytest.raises(GenotypeError, match="space"):
        RegNet(2, CH, bad)


def test_count_macs_matches_a_conv_hook_count():
    net = RegUNet(2, CH)
    x = torch.rand(1, 1, 16, 16)
    total = 0

    def hook(mod, _inp, out):
        nonlocal total
        total += out.numel() * (mod.in_channels // mod.groups) * math.prod(mod.kernel_size)

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(x, x)
    for h in hs:
        h.remove()
    assert count_macs(net, x, x) == total
