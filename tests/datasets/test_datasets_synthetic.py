"""The embedded synthetic low-light default."""

from __future__ import annotations

import pytest
import torch

from datasets import DataError, PairedFolder, SyntheticLowLight, write_lol_folder
from datasets.synthetic_lowlight import SOURCES


def test_deterministic_and_order_independent():
    a = SyntheticLowLight("train", size=32, count=4, seed=0)
    b = SyntheticLowLight("train", size=32, count=4, seed=0)
    backwards = {i: a[i] for i in reversed(range(4))}  # access order must not matter
    for i in range(4):
        x, y = backwards[i], b[i]
        assert torch.equal(x["input"], y["input"]) and torch.equal(x["target"], y["target"])
    c = SyntheticLowLight("train", size=32, count=4, seed=1)
    assert not torch.equal(a[0]["input"], c[0]["input"])


def test_splits_use_disjoint_sources():
    seen = [set(SOURCES[s]) for s in ("train", "val", "test")]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    names = {s: {SyntheticLowLight(s, size=32, count=4)[i]["name"].split("_", 2)[2] for i in range(4)}
             for s in ("train", "val", "test")}
    assert names["train"].isdisjoint(names["val"] | names["test"])
    assert names["val"].isdisjoint(names["test"])


def test_items_are_dark_noisy_pairs():
    data = SyntheticLowLight("val", size=32, count=3)
    assert len(data) == 3
    for i in range(3):
        item = data[i]
        x, y = item["input"], item["target"]
        assert x.shape == y.shape == (3, 32, 32) and item["size"].tolist() == [32, 32]
        assert 0.0 <= x.min() and x.max() <= 1.0
        assert x.mean() < 0.5 * y.mean()
    assert SyntheticLowLight("train")[0]["input"].shape == (3, 64, 64)
    with pytest.raises(DataError, match="chelsea"):
        SyntheticLowLight("val", size=1000)[0]
    with pytest.raises(DataError, match="split"):
        SyntheticLowLight("bogus")


def test_write_lol_folder_round_trip(tmp_path):
    out = write_lol_folder(tmp_path, count=2, size=16)
    assert out == tmp_path / "eval15" and len(list((out / "low").glob("*.png"))) == 2
    folder, synth = PairedFolder(tmp_path, split="test"), SyntheticLowLight("test", size=16, count=2)
    for i in range(2):
        assert folder[i]["name"] == synth[i]["name"]
        assert torch.equal(folder[i]["input"], synth[i]["input"])
        assert torch.equal(folder[i]["target"], synth[i]["target"])
    with pytest.raises(DataError, match="overwrite"):
        write_lol_folder(tmp_path, count=1, size=16)
