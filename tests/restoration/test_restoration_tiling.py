"""Padding to a multiple and blended tiles equal untiled inference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from restoration.derain.genotype import ops_to_genotype
from restoration.derain.model import DerainNet
from restoration.tiling import ramp, run_padded, run_tiled, tile_starts


def test_tile_starts_cover_and_ramps_partition_unity():
    assert tile_starts(10, 16, 4) == [0]
    starts = tile_starts(50, 16, 8)
    assert starts[0] == 0 and starts[-1] == 34 and all(b - a <= 8 for a, b in zip(starts, starts[1:]))
    x = torch.zeros(1, dtype=torch.float64)
    left, right = ramp(16, 8, True, False, x), ramp(16, 8, False, True, x)
    total = torch.zeros(24, dtype=torch.float64)
    total[:16] += left
    total[8:] += right
    assert torch.allclose(total, torch.ones(24, dtype=torch.float64))
    assert left[-2:].eq(0).all() and right[:2].eq(0).all()  # the halo of overlap // 4


def test_padded_run_crops_back_and_net_sees_multiple():
    seen = []

    def fn(t):
        seen.append(tuple(t.shape[-2:]))
        return t[:, :3] * 2

    x = torch.rand(1, 3, 13, 10)
    out = run_padded(fn, x, 8)
    assert seen == [(16, 16)] and torch.equal(out, x * 2)


@pytest.mark.parametrize("tile,overlap", [(16, 12), (12, 8), (20, 16)])
def test_tiled_equals_untiled_for_local_network(tile, overlap):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1)).double()
    x = torch.rand(2, 3, 31, 27, dtype=torch.float64)  # radius 2 <= overlap // 4
    full = net(x)
    assert torch.allclose(run_tiled(net, x, tile, overlap), full, atol=1e-12)


def test_tiled_derain_net_on_frames_within_1e4():
    torch.manual_seed(0)
    net = DerainNet(ops_to_genotype(["res_block_3x3", "conv_3x3"]), channels=4, cells=1, frames=3).eval()
    x = torch.rand(1, 3, 3, 30, 32)  # radius 1 + 3 + 1 = 5 <= 20 // 4
    with torch.no_grad():
        fn = lambda t: net(t)["out"]  # noqa: E731
        full = run_padded(fn, x, 4)  # untiled inference under the same padding to the multiple
        tiled = run_tiled(fn, x, tile=24, overlap=20, multiple=4)
    assert tiled.shape == full.shape and (tiled - full).abs().max() < 1e-4


def test_bad_tile_arguments():
    with pytest.raises(ValueError, match="overlap"):
        run_tiled(lambda t: t, torch.zeros(1, 3, 8, 8), tile=8, overlap=8)
