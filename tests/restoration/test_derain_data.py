"""Deraining task data (splits, crops, video windows), baselines and evaluation helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import default_collate

from datasets import DataError, write_image
from datasets.splits import split_train_val
from restoration.derain import data as ddata
from restoration.derain.baseline import guided_derain, median_derain, temporal_median
from restoration.derain.evaluation import derain_metrics, labelled_grid, match_predictions, restore
from restoration.derain.genotype import ops_to_genotype
from restoration.derain.model import DerainNet
from restoration.derain.settings import DerainSettings
from tasks import SettingsError


def _pairs(root: Path, n: int, size: int = 16) -> None:
    g = torch.Generator().manual_seed(0)
    for k in range(1, n + 1):
        write_image(root / "train" / f"rain-{k}.png", torch.rand(3, size, size, generator=g))
        write_image(root / "train" / f"norain-{k}.png", torch.rand(3, size, size, generator=g))
        write_image(root / "test" / f"rain-{k}.png", torch.rand(3, size, size, generator=g))
        write_image(root / "test" / f"norain-{k}.png", torch.rand(3, size, size, generator=g))


def test_split_train_val_is_seeded_and_disjoint():
    tr, va = split_train_val(20, 0.2, 3)
    assert (tr, va) == split_train_val(20, 0.2, 3) and len(va) == 4
    assert sorted(tr + va) == list(range(20))
    assert split_train_val(20, 0.2, 4) != (tr, va)
    with pytest.raises(ValueError):
        split_train_val(1, 0.5, 0)


def test_folder_sets_never_read_test_files(tmp_path):
    _pairs(tmp_path, 5)
    s = DerainSettings(data=str(tmp_path), crop=8, val_fraction=0.4)  # unchecked: crops under 11 px
    lower, upper = ddata.search_sets(s)
    train, val = ddata.train_sets(s)
    names = lambda ds: {ds[i]["name"] for i in range(len(ds))}  # noqa: E731
    assert names(lower) == names(train) and names(upper) == names(val) and not names(train) & names(val)
    assert len(names(train) | names(val)) == 5
    test = ddata.test_set(str(tmp_path), DerainSettings())
    assert all(str(a).startswith(str(tmp_path / "test")) for a, _ in test.pairs)
    assert all(str(i.base.pairs[0][0]).startswith(str(tmp_path / "train")) for i in (train, val))
    item = lower[0]
    assert item["input"].shape == (3, 8, 8) and item["size"].tolist() == [8, 8]
    lower.verify()
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        DerainSettings().replace({"data": str(tmp_path), "colour": 1})


def test_views_depend_on_seed_epoch_index_only():
    train, _ = ddata.train_sets(DerainSettings(crop=16, synthetic_count=4))
    a = train[1]["input"]
    train[0]
    assert torch.equal(a, train[1]["input"])
    train.set_epoch(1)
    assert not torch.equal(a, train[1]["input"])


def test_synthetic_video_sets_crop_all_frames_alike():
    train, val = ddata.train_sets(DerainSettings(frames=3, crop=16))
    item = train[0]
    assert item["frames"].shape == (3, 3, 16, 16) and torch.equal(item["frames"][1], item["input"])
    assert val[0]["frames"].shape[0] == 3
    test = ddata.test_set(None, DerainSettings(frames=3))
    assert all(int(test[i]["name"].rsplit("-", 1)[1].split(".")[0]) > 1 for i in range(len(test)))


def test_baselines():
    x = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    m = median_derain(x, 3)
    assert torch.isclose(m[0, 0, 5, 5], x[0, 0, 4:7, 4:7].flatten().median())
    import numpy as np
    from scipy.ndimage import median_filter  # the reflected border of numpy's "mirror" mode
    ref = median_filter(x[0, 0].numpy(), size=3, mode="mirror")
    assert np.allclose(m[0, 0].numpy(), ref)
    g = guided_derain(x, 1, 1e-6)  # nearly no regularisation: the guided filter returns the image
    assert (g - x)[..., 2:-2, 2:-2].abs().max() < 1e-2
    frames = torch.stack([x, x + 1, x + 0.5], 1)
    assert torch.allclose(temporal_median(frames), x + 0.5)


def test_restore_crops_tiles_and_scores(tmp_path):
    torch.manual_seed(0)
    net = DerainNet(ops_to_genotype(["conv_3x3"]), channels=4, cells=1)
    a = {"input": torch.rand(3, 20, 18), "target": torch.rand(3, 20, 18), "name": "a.png", "size": torch.tensor([20, 18])}
    b = {**a, "name": "b.png", "size": torch.tensor([14, 12])}
    batch = default_collate([a, b])
    items = restore(net, batch)
    assert items[1]["output"].shape == (3, 14, 12) and items[1]["target"].shape == (3, 14, 12)
    tiled = restore(net, batch, tile=16, overlap=12)  # radius 3 <= 12 // 4
    assert torch.allclose(tiled[0]["output"], items[0]["output"], atol=1e-5)
    grid = labelled_grid(items)
    assert grid.shape[0] == 3 and grid.shape[-1] > 3 * 18
    m = derain_metrics(items[0]["output"][None], items[0]["target"][None])
    assert set(m) == {"psnr", "ssim"} and m["psnr"].shape == (1,)


def test_scoring_a_predictions_folder(tmp_path):
    _pairs(tmp_path / "data", 2)
    test = ddata.test_set(str(tmp_path / "data"), DerainSettings())
    write_image(tmp_path / "pred" / "rain-1.png", test[0]["target"])
    with pytest.raises(DataError, match="rain-2"):
        list(match_predictions(str(tmp_path / "pred"), test))
    write_image(tmp_path / "pred" / "rain-2.jpg", test[1]["target"])
    got = list(match_predictions(str(tmp_path / "pred"), test))
    assert [n for n, _, _ in got] == ["rain-1.png", "rain-2.png"]
    assert torch.equal(got[0][1], got[0][2])  # PNG round trip of an 8-bit image is exact
