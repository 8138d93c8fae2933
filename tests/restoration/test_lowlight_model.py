"""RUAS ops, cells, networks, reference size and losses (16x16, batch 2)."""

from __future__ import annotations

import pytest
import torch

from restoration.lowlight import (
    RUAS_GENOTYPE,
    RUAS_OPS,
    RUAS_PARAM_COUNT,
    RUAS_PRIMITIVES,
    RUASCell,
    RUASNet,
    RUASSearch,
    RUASSearchCell,
    local_max_2x2,
    ruas_losses,
)


def _count(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_ops_shapes_and_sizes():
    x = torch.rand(2, 6, 8, 8)
    expected = {"skip_connect": 0, "conv_1x1": 42, "conv_3x3": 330, "dilconv_3x3": 330,
                "resconv_1x1": 42, "resconv_3x3": 330, "resdilconv_3x3": 330}
    assert list(RUAS_OPS) == RUAS_PRIMITIVES
    for name in RUAS_PRIMITIVES:
        op = RUAS_OPS[name](6, 6, 1, False)
        assert op(x).shape == x.shape and _count(op) == expected[name], name
    with pytest.raises(ValueError, match="stride"):
        RUAS_OPS["conv_3x3"](6, 6, 2, True)


def test_search_cell_with_one_hot_weights_equals_discrete_cell():
    torch.manual_seed(0)
    ops = list(RUAS_GENOTYPE["nrm_ops"])
    search, cell = RUASSearchCell(6), RUASCell(6, ops)
    idx = [RUAS_PRIMITIVES.index(o) for o in ops]
    state = {}
    for k, j in enumerate(idx):
        for n, p in search.edges[k]._ops[j].named_parameters():
            state[f"edges.{k}.{n}"] = p
    state.update({f"fuse.{n}": p for n, p in search.fuse.named_parameters()})
    cell.load_state_dict(state)
    weights = torch.nn.functional.one_hot(torch.tensor(idx), len(RUAS_PRIMITIVES)).float()
    x = torch.rand(2, 6, 16, 16)
    assert torch.allclose(search(x, weights), cell(x), atol=1e-6)


def test_reference_network_size():
    net = RUASNet(**RUAS_GENOTYPE)
    total, iem, nrm = _count(net), _count(net.iem), _count(net.nrm)
    print(f"RUAS reference: {total} parameters (IEM {iem}, NRM {nrm})")
    # Exact count from the architecture: 3 IEM cells of 387 + NRM (stem 168, cells 3 x 648, head 165).
    assert (total, iem, nrm) == (RUAS_PARAM_COUNT, 1161, 2277) == (3438, 1161, 2277)
    assert 3350 <= total <= 3449  # the paper's "3.4K" when rounded to 0.1K


def test_networks_forward_shapes_and_ranges():
    torch.manual_seed(0)
    y = 0.3 * torch.rand(2, 3, 16, 16)
    for net in (RUASSearch(), RUASNet(**RUAS_GENOTYPE)):
        out = net(y)
        assert set(out) == {"u", "t", "n", "out"}
        assert all(v.shape == (2, 3, 16, 16) for v in out.values())
        assert out["t"].min() >= 0.001 and out["t"].max() <= 1.0
        assert torch.allclose(out["u"], (y / out["t"]).clamp(0, 1))
        assert torch.allclose(out["out"], out["u"] - out["n"])


def test_search_parameter_dicts_and_genotype():
    net = RUASSearch()
    names = dict(net.named_parameters())
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert set(arch) == {"alphas_iem", "alphas_nrm"} and arch["alphas_iem"].shape == (7, 7)
    assert set(arch) | set(weights) == set(names) and not set(arch) & set(weights)
    assert all(names[n] is p for n, p in weights.items())
    assert set(net.weight_parameters("iem")) | set(net.weight_parameters("nrm")) == set(weights)
    assert set(net.arch_parameters("nrm")) == {"alphas_nrm"}
    with torch.no_grad():
        for k, op in enumerate(RUAS_GENOTYPE["iem_ops"]):
            net.alphas_iem[k, RUAS_PRIMITIVES.index(op)] = 1.0
    assert net.genotype_lists()["iem"] == RUAS_GENOTYPE["iem_ops"]


def test_bad_genotype_is_rejected():
    with pytest.raises(ValueError, match="7 op names"):
        RUASNet(["conv_3x3"] * 6, RUAS_GENOTYPE["nrm_ops"])
    with pytest.raises(ValueError, match="sep_conv_3x3"):
        RUASNet(["sep_conv_3x3"] * 7, RUAS_GENOTYPE["nrm_ops"])


def test_local_max_2x2_matches_explicit():
    x = torch.rand(1, 2, 4, 5)
    m = local_max_2x2(x)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))
    for i in range(4):
        for j in range(5):
            assert torch.equal(m[0, :, i, j], padded[0, :, i : i + 2, j : j + 2].amax(dim=(-1, -2)))


def test_local_max_2x2_inference_and_autograd_paths_agree():
    """Shifted-view maximum (no autograd) and max_pool2d (autograd) give identical values, ties included."""
    x = (torch.rand(2, 3, 9, 7) * 4).floor() / 4  # many ties, zeros next to the zero padding
    fast = local_max_2x2(x)
    pooled = local_max_2x2(x.clone().requires_grad_(True))
    assert pooled.requires_grad and torch.equal(fast, pooled.detach())


def test_losses_backpropagate_and_are_batch_independent():
    torch.manual_seed(0)
    search = RUASSearch()
    y = 0.2 * torch.rand(1, 3, 8, 8)
    losses = ruas_losses(search(y), y)
    (losses["iem"] + losses["nrm"]).backward()
    assert search.alphas_iem.grad.abs().sum() > 0 and search.alphas_nrm.grad.abs().sum() > 0
    net = RUASNet(**RUAS_GENOTYPE)
    y = 0.2 * torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        single = ruas_losses(net(y), y)
        double = ruas_losses(net(torch.cat([y, y])), torch.cat([y, y]))
    for k in ("iem", "nrm"):
        assert torch.allclose(single[k], double[k], rtol=1e-5)
