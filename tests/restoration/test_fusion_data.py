"""Fusion task data: seeded views, splits that never read test files, synthetic default."""

from __future__ import annotations

import torch

from datasets.synthetic_fusion import write_fusion_folder
from datasets.views import CropFlipView
from restoration.fusion import data as D
from restoration.fusion.settings import FusionSettings


def _names(ds):
    return {ds[i]["name"] for i in range(len(ds))}


def test_synthetic_default_sets():
    lower, upper = D.search_sets(FusionSettings(crop=16, synthetic_count=4))
    assert len(lower) == 4 and lower[0]["ir"].shape == (1, 16, 16) and lower[0]["vi"].shape == (3, 16, 16)
    assert all(n.startswith("train_") for n in _names(lower)) and all(n.startswith("val_") for n in _names(upper))
    train, val = D.train_sets(FusionSettings(crop=16, synthetic_count=4))
    assert all(n.startswith("val_") for n in _names(val))
    assert all(n.startswith("test_") for n in _names(D.test_set(None)))


def test_view_is_seeded_by_epoch_and_crops_both_sources_alike():
    lower, _ = D.search_sets(FusionSettings(crop=16, synthetic_count=2, seed=5))
    a, b = lower[1], lower[1]
    assert torch.equal(a["ir"], b["ir"]) and torch.equal(a["vi"], b["vi"])
    lower.set_epoch(1)
    c = lower[1]
    assert not (torch.equal(c["ir"], a["ir"]) and torch.equal(c["vi"], a["vi"]))
    view = CropFlipView(lower.base, None, crop=16, flip=False, seed=2, keys=("ir", "vi"))
    item, full = view[0], lower.base[0]
    hits = [(i, j) for i in range(full["ir"].shape[1] - 15) for j in range(full["ir"].shape[2] - 15)
            if torch.equal(full["ir"][:, i:i + 16, j:j + 16], item["ir"])]
    assert hits and all(torch.equal(full["vi"][:, i:i + 16, j:j + 16], item["vi"]) for i, j in hits)
    assert item["size"].tolist() == [16, 16]


def test_folder_without_val_splits_train_only(tmp_path):
    write_fusion_folder(tmp_path / "train", "train", count=6, size=16)
    write_fusion_folder(tmp_path / "test", "test", count=2, size=16)
    settings = FusionSettings(data=str(tmp_path), crop=None, val_fraction=0.34, seed=1)
    lower, upper = D.search_sets(settings)
    train_names = _names(lower) | _names(upper)
    assert not _names(lower) & _names(upper) and all(n.startswith("train_") for n in train_names)
    train, val = D.train_sets(settings)
    assert _names(val) == _names(upper) and len(val) == 2
    assert all(n.startswith("test_") for n in _names(D.test_set(str(tmp_path))))


def test_folder_with_val_split(tmp_path):
    write_fusion_folder(tmp_path / "train", "train", count=3, size=16)
    write_fusion_folder(tmp_path / "val", "val", count=2, size=16, dirs=("infrared", "visible"))
    _, val = D.train_sets(FusionSettings(data=str(tmp_path), crop=None))
    assert all(n.startswith("val_") for n in _names(val)) and len(val) == 2
