"""Fusion evaluation helpers: restore (Y fusion, crop), scores, predictions folder, labelled grid."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from datasets.errors import DataError
from datasets.fusion import FusionFolder
from datasets.io import write_image
from datasets.synthetic_fusion import write_fusion_folder
from restoration.fusion.color import split_luma
from restoration.fusion.evaluation import labelled_grid, restore, score_item, score_predictions
from restoration.fusion.metrics import fusion_metrics


class MaxFuse(nn.Module):
    def __init__(self):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, ir, vi):
        return torch.maximum(ir, vi) + self.p


def _batch():
    ir, vi = torch.rand(2, 1, 12, 14), torch.rand(2, 3, 12, 14)
    return {"ir": ir, "vi": vi, "name": ["a.png", "b.png"], "size": torch.tensor([[12, 14], [10, 9]])}


def test_restore_crops_and_keeps_colour():
    batch = _batch()
    items = restore(MaxFuse(), batch)
    assert [it["name"] for it in items] == ["a.png", "b.png"]
    assert items[0]["fused"].shape == (3, 12, 14) and items[1]["fused"].shape == (3, 10, 9)
    y, _ = split_luma(items[0]["fused"][None])
    expected = torch.maximum(batch["ir"][:1], split_luma(batch["vi"][:1])[0])
    inside = (items[0]["fused"] > 1e-5).all(0) & (items[0]["fused"] < 1 - 1e-5).all(0)
    assert torch.allclose(y[0, 0][inside], expected[0, 0][inside], atol=1e-5)
    scores = score_item(items[1], names=["en", "qabf"])
    direct = fusion_metrics(items[1]["fused"][None], items[1]["ir"][None], items[1]["vi"][None], names=["en", "qabf"])
    assert scores == {k: float(v[0]) for k, v in direct.items()}


def test_score_predictions_matches_by_stem_and_reports_missing(tmp_path):
    data_root = write_fusion_folder(tmp_path / "data", "test", count=2, size=16)
    data = FusionFolder(data_root)
    preds = tmp_path / "pred"
    for i in range(len(data)):
        item = data[i]
        write_image(preds / (item["name"].rsplit(".", 1)[0] + ".png"), torch.maximum(item["ir"], item["vi"].mean(0, keepdim=True)))
    rows = score_predictions(preds, data, names=["en", "sd", "mi"])
    assert [r["name"] for r in rows] == [data[i]["name"] for i in range(2)] and all("mi" in r for r in rows)
    (preds / (data[1]["name"].rsplit(".", 1)[0] + ".png")).unlink()
    with pytest.raises(DataError, match="no fused image"):
        score_predictions(preds, data, names=["en"])


def test_labelled_grid_layout():
    items = restore(MaxFuse(), _batch())
    grid = labelled_grid(items[:1])
    k = 14  # 12 x 14 px tiles enlarged 14x (largest side to 196 px >= 192), under a 22 px label strip
    assert grid.shape == (3, 22 + 12 * k, 3 * 14 * k + 2 * 4)
    assert grid[:, :22].min() < 0.5  # label text drawn on the white strip
    up = lambda t: t.expand(3, -1, -1).repeat_interleave(k, 1).repeat_interleave(k, 2)  # noqa: E731
    assert torch.equal(grid[:, 22:22 + 12 * k, :14 * k], up(items[0]["ir"]))
    assert torch.equal(grid[:, 22:22 + 12 * k, -14 * k:], up(items[0]["fused"]))
    two = labelled_grid(items)
    assert two.shape == (3, 22 + 2 * 12 * k + 4, 3 * 14 * k + 8)  # the 10 x 9 item padded to 12 x 14
