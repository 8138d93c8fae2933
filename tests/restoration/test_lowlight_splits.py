"""Validation never reads test files: LOL slices of our485, single folders, val/ folders."""
from __future__ import annotations

import pytest
import torch

from datasets import DataError, write_image
from restoration.lowlight.task import LowLightTask


def _settings(data, **over):
    return LowLightTask().settings("train").replace({"data": str(data), "crop": 8, **over})


def _pairs(folder, names, size=12):
    for i, name in enumerate(names):
        x = torch.full((3, size, size), 0.1 * (i % 9 + 1))
        write_image(folder / "low" / name, 0.2 * x)
        write_image(folder / "high" / name, x)


def test_lol_validation_is_a_seeded_slice_of_our485_and_eval15_is_never_read(tmp_path):
    names = [f"{i}.png" for i in range(20)]
    _pairs(tmp_path / "our485", names)
    (tmp_path / "eval15" / "low").mkdir(parents=True)
    (tmp_path / "eval15" / "high").mkdir(parents=True)
    (tmp_path / "eval15" / "low" / "1.png").write_bytes(b"unreadable")  # training must not touch it
    task = LowLightTask()
    data = task.train_data(_settings(tmp_path))
    train, val = data.train, data.val
    assert (len(train), len(val)) == (18, 2)
    val_names = sorted(val[i]["name"] for i in range(len(val)))
    train_names = {train[i]["name"] for i in range(len(train))}
    assert set(val_names).isdisjoint(train_names) and set(val_names) | train_names == set(names)
    assert sorted(data.split["val"]) == val_names and data.split["train"] == 18
    assert "our485" in data.note and "never read" in data.note
    again = LowLightTask().train_data(_settings(tmp_path)).val
    assert sorted(again[i]["name"] for i in range(len(again))) == val_names  # deterministic
    other = LowLightTask().train_data(_settings(tmp_path, seed=5)).val
    assert sorted(other[i]["name"] for i in range(len(other))) != val_names  # seeded
    assert val[0]["input"].shape[-2:] == (12, 12)  # full resolution, no crop
    search = task.search_data(_settings(tmp_path))
    assert len(search.lower) + len(search.upper) == 18  # the search never sees the validation slice either


def test_single_folder_is_split_and_a_val_folder_of_test_files_is_refused(tmp_path):
    _pairs(tmp_path / "one", [f"{i}.png" for i in range(10)])
    task = LowLightTask()
    data = task.train_data(_settings(tmp_path / "one"))
    assert (len(data.train), len(data.val)) == (9, 1) and "held out" in data.note
    for split in ("train", "val", "test"):
        _pairs(tmp_path / "three" / split, ["a.png", "b.png"] if split != "train" else ["c.png", "d.png"])
    with pytest.raises(DataError, match="same files as the test split"):
        task.train_data(_settings(tmp_path / "three"))
    _pairs(tmp_path / "ok" / "train", ["c.png", "d.png"])
    _pairs(tmp_path / "ok" / "val", ["e.png"])
    _pairs(tmp_path / "ok" / "test", ["a.png"])
    data = task.train_data(_settings(tmp_path / "ok"))
    assert (len(data.train), len(data.val)) == (2, 1) and data.val[0]["name"] == "e.png"
