"""register / visuals / save_outputs on a network with a known displacement."""

import numpy as np
import pytest
import torch
from torch import nn

from restoration.registration.evaluate import register, save_outputs, visuals
from restoration.registration.warp import warp


class ShiftNet(nn.Module):
    """Returns a constant displacement ``shift`` (pixels, per axis)."""

    def __init__(self, shift):
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(shift, dtype=torch.float32))

    def forward(self, moving, fixed):
        flow = self.shift.view(1, -1, *([1] * (moving.dim() - 2))).expand(moving.shape[0], -1, *moving.shape[2:])
        return {"flow": flow, "warped": warp(moving, flow)}


@pytest.mark.parametrize("dims", [2, 3])
def test_register_recovers_a_known_shift_and_saves_outputs(dims, tmp_path):
    size = (12,) * dims
    seg = torch.zeros((1, 1) + size, dtype=torch.long)
    seg[(0, 0) + (slice(3, 7),) * dims] = 1
    seg[(0, 0) + (slice(7, 10),) * dims] = 2
    fixed_seg = torch.roll(seg, shifts=[-1] * dims, dims=list(range(2, 2 + dims)))  # fixed(p) = moving(p + 1)
    batch = {"moving": seg.float() / 2, "fixed": fixed_seg.float() / 2, "moving_seg": seg, "fixed_seg": fixed_seg,
             "name": ["pair"], "size": torch.tensor([size])}
    good = register(ShiftNet([1.0] * dims), batch)[0]
    bad = register(ShiftNet([0.0] * dims), batch)[0]
    assert good["metrics"]["dice"] == 1.0 and good["dice_per_label"] == {1: 1.0, 2: 1.0}
    assert bad["metrics"]["dice"] < 0.9
    assert good["metrics"]["folding_pct"] == 0.0 and good["metrics"]["jacobian_std"] == pytest.approx(0.0)
    assert good["flow"].shape == (dims,) + size and torch.allclose(good["jacobian"], torch.ones(size))
    pics = visuals(good)
    assert pics["jacobian"].shape == (3, 12, 12) and pics["grid"].shape == (1, 12, 12)
    paths = save_outputs(good, tmp_path)
    field = np.load(tmp_path / "fields" / "pair.npy")
    assert field.shape == (dims,) + size and np.allclose(field, 1.0)
    assert {p.parent.name for p in paths} == {"warped", "grid", "jacobian", "fields"}


def test_grid_picture_moves_with_the_field():
    flow = torch.zeros(2, 8, 8)
    flow[1] = 1.0  # sample one column to the right: grid lines move one column left
    res = {"warped": torch.zeros(1, 8, 8), "flow": flow, "jacobian": torch.ones(8, 8)}
    grid = visuals(res)["grid"][0]
    assert grid[1, 3] > 0.999 and grid[1, 2] < 1e-5 and (grid[0, :] > 0.999).all()
