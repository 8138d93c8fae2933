"""TMICS networks: inter-frame modules (OFM, TGM, their mixture), DNA/CNA merged by AAS, genotypes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import bilevel
from nas.genotype import Genotype, GenotypeError
from restoration.complexity import count_parameters
from restoration.derain.genotype import reference_genotype
from restoration.derain.interframe import (OFM, TGM, InterframeMixture, flow_warp, make_interframe,
                                           temporal_groups)
from restoration.derain.tmics import (RELEASED_LIGHT_OPS, TMICSNet, TMICSSearch, released_genotype,
                                      tmics_genotype, tmics_parts)

OPS = ("skip_connect", "conv_3x3", "res_block_3x3")  # no attention ops: keeps timm out of most tests


def _frames(T: int, size: int = 16, batch: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, T, 3, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("T", [3, 5])
def test_shapes_for_three_and_five_frames(T):
    torch.manual_seed(0)
    x = _frames(T, size=12)
    for module in (OFM(4, T), TGM(4, T), TGM(4, T, fusion="concat")):
        assert module(x).shape == (2, 4, 12, 12)
    net = TMICSSearch(channels=4, steps=2, frames=T, primitives=OPS)
    out = net(x)
    assert set(out) == {"out", "rain", "dna", "cna", "weight", "streaks"}
    for k in ("out", "rain", "dna", "cna", "streaks"):
        assert out[k].shape == (2, 3, 12, 12)
    assert out["weight"].shape == (2, 1, 12, 12)
    assert torch.allclose(out["out"], x[:, T // 2] - out["rain"], atol=1e-6)
    with pytest.raises(ValueError, match="frames"):
        net(_frames(T + 2, size=12))
    with pytest.raises(ValueError, match="odd"):
        OFM(4, 4)


def test_temporal_groups_by_distance_from_the_middle():
    assert temporal_groups(3) == [(0, 1, 2)]
    assert temporal_groups(5) == [(1, 2, 3), (0, 2, 4)]  # the released NNalignedModule: [1, 2, 3], [0, 2, 4]
    tgm = TGM(4, 5)
    x = _frames(5, size=8)
    feats = [b(x[:, list(g)].flatten(1, 2)) for b, g in zip(tgm.branches, tgm.groups)]
    w = tgm.group_weights(feats)
    assert w.shape == (2, 2, 1, 8, 8) and torch.allclose(w.sum(dim=1), torch.ones(2, 1, 8, 8))
    by_hand = tgm.out((w * torch.stack(feats, dim=1)).sum(dim=1))
    assert torch.allclose(tgm(x), by_hand, atol=1e-6)


def test_zero_flow_is_the_identity_warp():
    frame = _frames(1, size=10)[:, 0]
    assert torch.allclose(flow_warp(frame, torch.zeros(2, 2, 10, 10)), frame, atol=1e-6)
    # the identity grid of grid_sample (align_corners) reproduces the frame too
    grid = F.affine_grid(torch.eye(2, 3).expand(2, 2, 3), (2, 3, 10, 10), align_corners=True)
    assert torch.allclose(F.grid_sample(frame, grid, align_corners=True), frame, atol=1e-6)


def test_ofm_starts_without_warping():
    torch.manual_seed(0)
    ofm, x = OFM(4, 5), _frames(5, size=12)
    aligned, flows = ofm.align(x)
    assert torch.count_nonzero(flows) == 0 and torch.allclose(aligned, x, atol=1e-6)
    assert torch.allclose(ofm(x), ofm.fuse(x.flatten(1, 2)), atol=1e-6)


def test_integer_shift_is_undone_by_its_flow():
    frame = _frames(1, size=16, batch=1)[:, 0]
    moved = torch.zeros_like(frame)
    moved[..., 1:, 2:] = frame[..., :-1, :-2]  # content 2 px right, 1 px down
    flow = torch.tensor([2.0, 1.0]).view(1, 2, 1, 1).expand(1, 2, 16, 16)  # x, y
    back = flow_warp(moved, flow)
    assert torch.allclose(back[..., :-1, :-2], frame[..., :-1, :-2], atol=1e-6)


def test_mixture_weights_ofm_and_tgm():
    torch.manual_seed(0)
    mix, x = InterframeMixture(4, 3), _frames(3, size=8)
    w = torch.tensor([0.3, 0.7])
    ofm, tgm = mix.candidates
    assert torch.allclose(mix(x, w), 0.3 * ofm(x) + 0.7 * tgm(x), atol=1e-6)
    assert isinstance(make_interframe("tgm", 4, 3), TGM) and isinstance(make_interframe("ofm", 4, 3), OFM)
    with pytest.raises(ValueError, match="unknown"):
        make_interframe("flow", 4, 3)


def test_aas_merges_dna_and_cna_by_hand():
    torch.manual_seed(0)
    net = TMICSSearch(channels=4, steps=2, frames=3, primitives=OPS)
    x = _frames(3, size=8)
    with torch.no_grad():
        out = net(x)
        a = torch.sigmoid(net.aas.body(torch.cat([out["dna"], out["cna"]], dim=1)))
    assert torch.allclose(out["weight"], a) and 0 <= float(a.min()) and float(a.max()) <= 1
    assert torch.allclose(out["out"], a * out["dna"] + (1 - a) * out["cna"], atol=1e-6)


def test_genotype_round_trip_and_discrete_net_is_smaller():
    torch.manual_seed(0)
    net = TMICSSearch(channels=4, steps=3, frames=5, primitives=OPS)
    with torch.no_grad():
        net.beta.copy_(torch.tensor([0.0, 1.0]))
        net.alphas_dna.zero_()
        net.alphas_dna[:, 2] = 1.0
    g = net.genotype()
    assert g.space == "tmics" and set(g.cells) == {"dna", "cna", "interframe"}
    assert g.cells["interframe"] == (("tgm", 0),) and g.concat["interframe"] == (1,)
    assert g.cells["dna"] == (("res_block_3x3", 0), ("res_block_3x3", 1), ("res_block_3x3", 2))
    back = Genotype.from_json(g.to_json(), source="g.json")
    assert back == g and tmics_parts(back).interframe == "tgm"
    discrete = TMICSNet(back, channels=4, frames=5)
    assert discrete(_frames(5, size=8))["out"].shape == (2, 3, 8, 8)
    assert count_parameters(discrete) < count_parameters(net)
    assert not any(isinstance(m, OFM) for m in discrete.modules())


def test_bad_tmics_genotypes_are_one_line_errors():
    good = tmics_genotype(["conv_3x3"], ["skip_connect"], "ofm")
    bad = [reference_genotype(),
           Genotype("tmics", {"dna": good.cells["dna"], "cna": good.cells["cna"]}, {"dna": (1,), "cna": (1,)}),
           Genotype("tmics", {**good.cells, "interframe": (("raft", 0),)}, good.concat),
           Genotype("tmics", {**good.cells, "cna": (("max_pool_3x3", 0),)}, good.concat)]
    for g in bad:
        with pytest.raises(GenotypeError) as exc:
            tmics_parts(g, "x.json")
        assert "\n" not in str(exc.value) and "x.json" in str(exc.value)


def test_released_genotypes():
    heavy, light = tmics_parts(released_genotype()), tmics_parts(released_genotype("light"))
    ref = ["res_block_5x5", "spatial_attention", "eca_attention", "res_block_3x3"]
    assert heavy == (ref, ref, "tgm")
    assert light == (list(RELEASED_LIGHT_OPS), list(RELEASED_LIGHT_OPS), "ofm")


def test_released_network_builds():
    # its attention ops import timm: seconds when this test runs alone, nothing after the other derain tests
    net = TMICSNet(released_genotype(), channels=4, frames=5)
    assert net(_frames(5, size=8, batch=1))["out"].shape == (1, 3, 8, 8)


def test_gradients_reach_alphas_beta_and_weights():
    torch.manual_seed(0)
    net = TMICSSearch(channels=4, steps=2, frames=5, primitives=OPS)  # 5 frames: TGM's group attention too
    arch, weights = net.arch_parameters(), net.weight_parameters()
    assert list(arch) == ["alphas_dna", "alphas_cna", "beta"] and arch["beta"].shape == (2,)
    assert set(arch) | set(weights) == set(dict(net.named_parameters())) and not set(arch) & set(weights)
    assert set(net.aas_parameters()) <= set(weights)
    x, target = _frames(5, size=8), _frames(1, size=8, seed=1)[:, 0]
    out = bilevel.call(net, {**weights, **arch}, x)["out"]  # functional form, as the search calls it
    F.mse_loss(out, target).backward()
    for name in arch:
        assert arch[name].grad is not None and arch[name].grad.abs().sum() > 0, name
    missing = [n for n, p in weights.items() if p.grad is None]
    assert not missing
    # the flow net's last layer starts at zero (no warp), so only it moves at the first step
    assert net.interframe.candidates[0].flow_net.out.weight.grad.abs().sum() > 0
    zero = [n for n, p in weights.items() if p.grad.abs().sum() == 0 and "flow_net.body" not in n]
    assert not zero
