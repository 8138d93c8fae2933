"""Labelled panels of --save-images: titles carry each image's metrics, small images are enlarged."""
import pytest
import torch

import restoration.fusion.evaluation as fusion_evaluation
import restoration.panels as panels
from restoration.derain.evaluation import derain_metrics
from restoration.derain.evaluation import item_panel as derain_panel
from restoration.metrics import psnr
from restoration.panels import MIN_SIDE, Tile, item_panel, metric_text, panel


@pytest.fixture
def titles(monkeypatch):
    """The tile titles a panel would draw, row by row, instead of drawing it."""
    seen: list[list[str]] = []

    def capture(rows, title=""):
        seen.extend([t.title for t in row] for row in rows)
        return torch.zeros(3, 1, 1)

    monkeypatch.setattr(panels, "panel", capture)
    monkeypatch.setattr(fusion_evaluation, "panel", capture)
    return seen


def test_metric_text():
    assert metric_text({"psnr": 21.3449, "ssim": 0.81234}) == "PSNR 21.34 dB  SSIM 0.812"
    text = metric_text({"en": 6.5, "sd": 40.25, "qabf": 0.5, "xyz": 1234.5}, per_line=2)
    assert text == "EN 6.50  SD 40.2\nQabf 0.500  XYZ 1.23e+03"


def test_panel_enlarges_small_tiles_and_draws_titles():
    x = torch.zeros(1, 12, 16)
    x[:, :, 8:] = 1.0  # left half black, right half white
    one = panel([[Tile("input", x)]])
    assert one.shape[0] == 3 and one.shape[2] >= MIN_SIDE and 0.0 <= one.min() and one.max() <= 1.0
    three = panel([[Tile("a", x), Tile("b\nPSNR 1.00 dB", x), Tile("c", x.expand(3, -1, -1))]], "name")
    assert three.shape[2] >= 3 * MIN_SIDE and three.shape[1] > one.shape[1]  # second title line, figure title
    rows = panel([[Tile("a", x)], [Tile("b", x)]])
    assert rows.shape[1] > 1.8 * one.shape[1]
    with pytest.raises(ValueError, match="size"):
        panel([[Tile("drawn", draw=lambda ax: None)]])


def test_item_panel_titles_score_input_and_output_against_the_reference(titles):
    target = torch.full((3, 8, 8), 0.5)
    item = {"name": "a.png", "input": target * 0.5, "output": target + 0.05, "target": target}
    score = lambda x, t: {"psnr": float(psnr(x[None], t[None])[0])}  # noqa: E731
    cols = (("input", "low"), ("output", "enhanced"), ("target", "reference"))
    item_panel(item, cols, score)
    assert titles[-1] == ["low\nPSNR 12.04 dB", "enhanced\nPSNR 26.02 dB", "reference"]
    item_panel({**item, "metrics": {"psnr": 99.0}}, cols, score)  # the record's values, as per_image.csv
    assert titles[-1][1] == "enhanced\nPSNR 99.00 dB"
    item_panel({k: v for k, v in item.items() if k != "target"}, cols, score)  # no reference: names only
    assert titles[-1] == ["low", "enhanced"]


def test_derain_panel_uses_the_y_channel_convention(titles):
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 16, 16, generator=g)
    item = {"name": "r.png", "input": (target + 0.2).clamp(0, 1), "output": target * 0.9, "target": target}
    for y in (True, False):
        derain_panel({**item, "y_channel": y})
        want = {k: float(v[0]) for k, v in derain_metrics(item["input"][None], target[None], y).items()}
        assert titles[-1][0] == "rainy\n" + metric_text(want)
    assert titles[-1][2] == "clean"


def test_fusion_panel_titles_every_image(titles):
    g = torch.Generator().manual_seed(0)
    item = {"name": "f.png", "ir": torch.rand(1, 16, 16, generator=g), "vi": torch.rand(1, 16, 16, generator=g)}
    item["fused"] = (item["ir"] + item["vi"]) / 2
    fusion_evaluation.item_panel(item)
    ir, vi, fused = titles[-1]
    assert ir.startswith("infrared\nEN ") and vi.startswith("visible\nEN ") and ir != vi
    assert fused.startswith("fused\nEN ") and "Qabf" in fused and "VIF" not in fused  # VIF needs 41 px a side
    fusion_evaluation.item_panel({**item, "metrics": {"en": 1.0, "qabf": 0.25, "cc": 0.5}})
    assert titles[-1][2] == "fused\nEN 1.00  Qabf 0.250"
