"""DartsSupernet: the supernet API (parameter partition, functional_call, genotype)."""

import pytest
import torch
from torch.func import functional_call

from nas.genotype import DARTS_PRIMITIVES, Genotype
from nas.network import DartsNetwork
from nas.supernet import DartsSupernet


def _tiny(**kw):
    torch.manual_seed(0)
    return DartsSupernet(C=4, num_classes=3, layers=3, **kw)


def test_forward_shapes_and_alpha_init():
    net = _tiny()
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 3)
    assert net.alphas_normal.shape == net.alphas_reduce.shape == (14, len(DARTS_PRIMITIVES))
    assert net.alphas_normal.abs().max() < 0.01
    assert sum(c.reduction for c in net.cells) == 2


@pytest.mark.parametrize("kw", [{}, {"edge_norm": True, "partial_k": 2}])
def test_weight_and_arch_parameters_partition_named_parameters(kw):
    net = _tiny(**kw)
    weights, arch = net.weight_parameters(), net.arch_parameters()
    named = dict(net.named_parameters())
    assert set(weights) | set(arch) == set(named)
    assert not set(weights) & set(arch)
    expected = {"alphas_normal", "alphas_reduce"}
    if kw:
        expected |= {"betas_normal", "betas_reduce"}
    assert set(arch) == expected
    assert all(named[n] is p for n, p in {**weights, **arch}.items())


def test_functional_call_substitutes_arch_parameters():
    net = _tiny(edge_norm=True).eval()
    x = torch.randn(2, 3, 16, 16)
    weights, arch = net.weight_parameters(), net.arch_parameters()
    assert torch.equal(functional_call(net, {**weights, **arch}, (x,)), net(x))
    new_arch = {n: torch.randn_like(p) for n, p in arch.items()}
    out = functional_call(net, {**weights, **new_arch}, (x,))
    with torch.no_grad():
        for n, p in arch.items():
            p.copy_(new_arch[n])
    assert torch.allclose(out, net(x), atol=1e-6)


def test_arch_gradient_flows():
    net = _tiny()
    loss = torch.nn.functional.cross_entropy(net(torch.randn(2, 3, 16, 16)), torch.tensor([0, 1]))
    grads = torch.autograd.grad(loss, list(net.arch_parameters().values()))
    assert all(g.abs().sum() > 0 for g in grads)


def test_genotype_is_valid_and_builds_a_network():
    net = _tiny(edge_norm=True)
    g = net.genotype()
    back = Genotype.from_json(g.to_json(), DARTS_PRIMITIVES, ["normal", "reduce"])
    assert back == g and len(g.normal) == len(g.reduce) == 8
    assert all(op != "none" for op, _ in g.normal + g.reduce)
    model = DartsNetwork(C=4, num_classes=3, layers=3, genotype=g, auxiliary=False).eval()
    assert model(torch.randn(1, 3, 16, 16)).shape == (1, 3)
