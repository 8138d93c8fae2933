"""register / save_outputs on a network with a known displacement, and the pair's pictures: titles with
the metrics, the deformation grid at p + u(p), det J centred at 1 with folding in black."""

import numpy as np
import pytest
import torch
from torch import nn

from datasets.io import read_image

from restoration.registration.evaluate import register, save_outputs
from restoration.registration.pictures import FOLD_COLOUR, grid_lines, grid_step, pair_tiles
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
    paths = save_outputs(good, tmp_path)
    field = np.load(tmp_path / "fields" / "pair.npy")
    assert field.shape == (dims,) + size and np.allclose(field, 1.0)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in paths)
    assert written == ["fields/pair.npy", "pair.png", "panels/pair.png"]
    assert read_image(tmp_path / "pair.png").shape == (3, 12, 12)  # the warped image (3D: its middle slice)
    assert read_image(tmp_path / "panels" / "pair.png").shape[2] > 5 * 256  # five enlarged tiles and a colour bar


def test_grid_lines_sit_where_the_field_samples():
    flow = torch.zeros(2, 9, 9)
    flow[1] = 1.0  # every pixel samples the moving image one column to the right
    lines = grid_lines(flow, 4)
    assert len(lines) == 6  # rows 0, 4, 8 and columns 0, 4, 8, every pixel a vertex
    assert all(line.shape == (9, 2) for line in lines)
    assert np.allclose(lines[0][:, 0], np.arange(9) + 1.0) and np.allclose(lines[0][:, 1], 0.0)  # row 0, x + 1
    assert np.allclose(lines[4][:, 0], 5.0) and np.allclose(lines[4][:, 1], np.arange(9))  # column 4 at x = 5
    assert grid_step(16, 16) == 4 and grid_step(64, 48) == 4 and grid_step(256, 256) == 16


def _drawn(tile):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    return tile.draw(ax), ax


def test_pair_titles_carry_the_metrics_and_det_j_shows_folding():
    det = torch.ones(8, 8)
    det[2, 3], det[5, 5] = -0.5, 0.0  # two folded pixels
    det[6, 6] = 3.0
    image = torch.zeros(1, 8, 8)
    result = {"name": "p", "fixed": image, "moving": image, "warped": image,
              "flow": torch.zeros(2, 8, 8), "jacobian": det, "dice_before": 0.25,
              "metrics": {"dice": 0.875, "folding_pct": 3.125, "jacobian_std": 0.5}}
    tiles = pair_tiles(result)
    assert [t.title.split("\n")[0] for t in tiles][:3] == ["fixed", "moving", "warped"]
    assert "Dice 0.250 (before)" in tiles[1].title and "Dice 0.875" in tiles[2].title
    assert "every 4 px" in tiles[3].title
    jac = tiles[4]
    assert "2 px folded" in jac.title and "folding 3.12 %" in jac.title and "std 0.500" in jac.title
    assert jac.colorbar and jac.extend == "min"
    image, ax = _drawn(jac)
    norm = image.norm
    assert float(norm(1.0)) == 0.5 and float(norm(0.0)) == 0.0 and norm.vmax == 3.0  # centred at 1, 1 -/+ 2
    assert tuple(image.cmap.get_under()[:3]) == (0.0, 0.0, 0.0) and FOLD_COLOUR == "black"
    folds = ax.images[1].get_array()  # drawn over the map in the folding colour, masked elsewhere
    assert folds.mask.sum() == 62 and not folds.mask[2, 3] and not folds.mask[5, 5]
    det[6, 6] = 1.2  # small changes fill the map: 1 -/+ 0.2
    image, _ = _drawn(pair_tiles({**result, "jacobian": det})[4])
    assert image.norm.vmin == pytest.approx(0.8) and image.norm.vmax == pytest.approx(1.2)
