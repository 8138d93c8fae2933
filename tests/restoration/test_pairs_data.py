"""``data = [INPUT_DIR, TARGET_DIR]`` (``--pairs``) in the lowlight, derain and fusion tasks: one set,
split deterministically for search and training (validation a seeded slice), scored whole by
evaluation; registration and the commands refuse it in one line."""
from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
import torch

from commands.config import add_data_flags, pairs_as_data
from commands.errors import UserError
from tasks.registry import get_task
from datasets.errors import DataError
from restoration.derain import data as derain_data
from restoration.derain.settings import DerainSettings
from restoration.fusion import data as fusion_data
from restoration.fusion.settings import FusionSettings
from restoration.registration import data as registration_data
from restoration.registration.settings import RegistrationSettings


def _folders(tmp_path, prefix_in, prefix_out, count=10, gray_input=False):
    a, b = tmp_path / "in", tmp_path / "out"
    a.mkdir()
    b.mkdir()
    for i in range(1, count + 1):
        shape = (12, 12) if gray_input else (12, 12, 3)
        assert cv2.imwrite(str(a / f"{prefix_in}{i}.png"), np.full(shape, 9 * i, np.uint8))
        assert cv2.imwrite(str(b / f"{prefix_out}{i:03d}.png"), np.full((12, 12, 3), 20 + 9 * i, np.uint8))
    return [str(a), str(b)]


def _names(ds):
    return sorted(ds[i]["name"] for i in range(len(ds)))


def test_lowlight_pairs_are_split_by_seed_and_evaluated_whole(tmp_path):
    data = _folders(tmp_path, "low", "normal")
    task = get_task("lowlight")
    s = task.settings("train").replace({"data": data, "crop": 8})
    split = task.train_data(s)
    train, val = split.train, split.val
    assert (len(train), len(val)) == (9, 1) and "held out" in split.note
    again = get_task("lowlight").train_data(s).val
    assert _names(val) == _names(again)
    assert not set(_names(val)) & {train[i]["name"] for i in range(len(train))}
    test = task.test_data(data, s).test
    assert len(test) == 10 and test[0]["target"].shape == (3, 12, 12)


def test_derain_pairs_split_and_test(tmp_path):
    data = _folders(tmp_path, "rain-", "norain-")
    settings = DerainSettings(data=data, crop=8, val_fraction=0.2, seed=3)  # the constructor: crop 8 < the checked 11
    lower, upper = derain_data.search_sets(settings)
    train, val = derain_data.train_sets(settings)
    assert len(lower) == 8 and _names(val) == _names(upper) and len(val) == 2
    assert len(derain_data.test_set(data, settings)) == 10
    with pytest.raises(DataError, match="needs a video folder"):  # training a video model reads videos
        derain_data.train_sets(DerainSettings(data=data, frames=3))
    still = derain_data.test_set(data, DerainSettings(frames=3))  # scoring one: each image a still video
    item = still[0]
    assert len(still) == 10 and item["frames"].shape == (3, *item["input"].shape)
    assert all(torch.equal(f, item["input"]) for f in item["frames"])


def test_fusion_pairs_infrared_first(tmp_path):
    data = _folders(tmp_path, "IR", "VIS", gray_input=True)
    settings = FusionSettings(data=data, val_fraction=0.2, seed=0)
    train, val = fusion_data.train_sets(settings)
    assert (len(train), len(val)) == (8, 2)
    item = fusion_data.test_set(data)[0]
    assert item["name"] == "IR1.png" and item["ir"].shape == (1, 12, 12) and item["vi"].shape == (3, 12, 12)


def test_registration_and_the_commands_refuse_pairs(tmp_path):
    data = _folders(tmp_path, "a", "b", count=2)
    with pytest.raises(DataError, match="registration reads one folder"):
        registration_data.train_sets(RegistrationSettings().replace({"data": data}))
    parser = argparse.ArgumentParser()
    add_data_flags(parser, "x")
    args = parser.parse_args(["--pairs", *data])
    with pytest.raises(UserError, match="does not read --pairs .*tasks that do: .*derain"):
        pairs_as_data(args, get_task("registration"))
    pairs_as_data(args, get_task("fusion"))
    assert args.data == data
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", data[0], "--pairs", *data])
