"""Pictures: labelled grids enlarge small tiles and name their columns; gray pictures come out gray."""
import torch
from torch import nn

from restoration.gray import is_gray, keep_gray
from restoration.grid import GAP, HEADER, labelled_grid
from restoration.lowlight.task import LowLightTask


class Tinted(nn.Module):
    """A stand-in for a network trained on colour photographs: it scales R, G, B differently."""

    def forward(self, x):
        return {"out": x * torch.tensor([1.3, 0.8, 1.2]).view(1, 3, 1, 1)}


def test_gray_inputs_come_out_gray_and_colour_inputs_are_untouched():
    g = torch.rand(1, 1, 8, 8).expand(1, 3, 8, 8) * 0.5
    c = torch.rand(1, 3, 8, 8) * 0.5
    x = torch.cat([g, c])
    assert is_gray(x).tolist() == [True, False]
    items = LowLightTask().enhance(Tinted(), {"input": x})
    gray_out, colour_out = items[0]["output"], items[1]["output"]
    assert torch.equal(gray_out[0], gray_out[1]) and torch.equal(gray_out[1], gray_out[2])  # no cast
    assert torch.allclose(gray_out[0], (g[0, 0] * (0.299 * 1.3 + 0.587 * 0.8 + 0.114 * 1.2)).clamp(0, 1), atol=1e-6)
    assert torch.allclose(colour_out, Tinted()(c)["out"][0].clamp(0, 1))
    out = torch.rand(2, 3, 8, 8)
    assert torch.equal(keep_gray(c.expand(2, 3, 8, 8), out), out)


def test_labelled_grid_enlarges_small_tiles_pads_and_labels():
    a, b = torch.rand(3, 16, 16), torch.rand(1, 12, 16)  # a gray tile of another size in the same grid
    grid = labelled_grid([[a, b], [b, a]], ["input", "output"], min_side=64)
    k, side = 4, 64  # 16 px tiles enlarged 4x (nearest)
    assert grid.shape == (3, HEADER + 2 * side + GAP, 2 * side + GAP)
    assert (grid[:, :HEADER] < 0.5).any()  # label text drawn on the white strip
    assert torch.equal(grid[:, HEADER:HEADER + side, :side], a.repeat_interleave(k, 1).repeat_interleave(k, 2))
    gray = grid[:, HEADER:HEADER + 12 * k, side + GAP:]
    assert torch.equal(gray, b.expand(3, -1, -1).repeat_interleave(k, 1).repeat_interleave(k, 2))
    assert torch.equal(grid[:, HEADER + 12 * k:HEADER + side, side + GAP:], torch.ones(3, 4 * k, side))  # padding
    big = labelled_grid([[torch.rand(3, 300, 200)]], ["x"])
    assert big.shape == (3, HEADER + 300, 200)  # large enough: not enlarged
