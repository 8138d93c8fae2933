"""Embedded synthetic rain: deterministic, disjoint sources, near-vertical streaks, moving rain."""

from __future__ import annotations

import torch

from datasets.synthetic_lowlight import SOURCES
from datasets.synthetic_rain import SyntheticRain, SyntheticRainVideo


def test_items_are_deterministic_and_order_free():
    a = SyntheticRain("val", size=24, count=3)
    b = SyntheticRain("val", size=24, count=3)
    first = a[2]
    a[0]
    assert torch.equal(first["input"], a[2]["input"]) and torch.equal(first["input"], b[2]["input"])
    assert first["input"].shape == first["target"].shape == (3, 24, 24)
    assert not torch.equal(a[0]["input"], a[1]["input"])
    # 8-bit quantised, so a PNG round trip is exact
    assert torch.equal((first["input"] * 255).round() / 255, first["input"])


def test_splits_use_disjoint_sources():
    names = {s: {SyntheticRain(s, size=16, count=4)[i]["name"].split("_", 2)[2] for i in range(4)}
             for s in ("train", "val", "test")}
    assert names["train"].isdisjoint(names["val"]) and names["val"].isdisjoint(names["test"])
    assert set(SOURCES["train"]).isdisjoint(SOURCES["test"])


def test_rain_is_streaks_near_vertical():
    ds = SyntheticRain("train", size=32, count=6)
    gx = gy = 0.0
    for i in range(len(ds)):
        item = ds[i]
        r = (item["input"] - item["target"]).mean(0)
        gx += (r[:, 1:] - r[:, :-1]).abs().sum().item()
        gy += (r[1:, :] - r[:-1, :]).abs().sum().item()
        assert r.abs().mean() > 0.01  # visible rain
    assert gx > 1.5 * gy  # thin streaks within 40 degrees of vertical vary most across x


def test_video_windows_and_moving_rain():
    ds = SyntheticRainVideo("test", frames=3, size=24, videos=1, length=5)
    assert len(ds) == 5
    full = SyntheticRainVideo("test", frames=3, full_window=True, size=24, videos=1, length=5)
    assert len(full) == 3 and full[0]["name"] == "test_video00/rfc-2.png"
    item = ds[0]
    assert item["frames"].shape == (3, 3, 24, 24)
    assert torch.equal(item["frames"][0], item["frames"][2])  # reflected at the start
    rainy, clean = ds.video(0)
    rain0, rain1 = rainy[0] - clean[0], rainy[1] - clean[1]
    assert (rain0 - rain1).abs().mean() > 0.01  # the streaks move between frames
    assert (clean[0] - clean[1]).abs().mean() < (rainy[0] - rainy[1]).abs().mean()
