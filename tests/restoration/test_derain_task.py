"""The deraining task's protocol pieces: recipes and settings checks, the search problem's losses
recomputed directly, the evaluation window of video sets, the data records and the scoring."""
import pytest
import torch
from torch.utils.data import default_collate

from restoration.derain import data as ddata
from restoration.derain.genotype import ops_to_genotype
from restoration.derain.losses import derain_loss
from restoration.derain.settings import DerainSettings
from restoration.derain.task import DerainTask
from tasks import Scoring, SearchResult, SettingsError


def test_recipes_resolve_and_bad_values_are_refused():
    task = DerainTask()
    assert task.settings("train", "tmics").channels == 96 and task.settings("train", "tmics").cells == 4
    s = task.settings("search")
    with pytest.raises(SettingsError, match="odd"):
        s.replace({"frames": 4})
    with pytest.raises(SettingsError, match="tile_overlap"):
        s.replace({"tile": 32, "tile_overlap": 32})
    with pytest.raises(SettingsError, match="pixel_loss"):
        s.replace({"pixel_loss": "l2"})


def test_search_problem_losses_equal_the_deraining_loss_of_the_supernet():
    task = DerainTask()
    s = task.settings("search").replace({"channels": 4, "cells": 1, "steps": 2, "ssim_weight": 0.5})
    torch.manual_seed(0)
    setup = task.build_search(s, torch.device("cpu"))
    (group,) = setup.groups
    net = setup.supernet
    assert set(group.problem.upper) == {"alphas_cell"}
    assert set(group.problem.lower) == set(net.weight_parameters())
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    batch = {"input": x, "target": y}
    expected = derain_loss(net(x)["out"], y, (1.0, 0.5), "charbonnier")
    got_lower = group.problem.lower_loss(dict(group.problem.lower), dict(group.problem.upper), batch)
    got_upper = group.problem.upper_loss(dict(group.problem.lower), dict(group.problem.upper), batch)
    assert torch.allclose(got_lower, expected) and torch.allclose(got_upper, expected)
    frames = s.replace({"frames": 3})
    setup3 = task.build_search(frames, torch.device("cpu"))
    out = setup3.supernet(torch.rand(1, 3, 3, 16, 16))["out"]
    assert out.shape == (1, 3, 16, 16)


def test_eval_window_keeps_the_frames_a_longer_window_is_scored_on():
    single = ddata.test_set(None, DerainSettings(frames=1, video=True, eval_window=5))
    five = ddata.test_set(None, DerainSettings(frames=5))
    every = ddata.test_set(None, DerainSettings(frames=1, video=True))
    assert single.index == five.index and len(every) > len(five)
    assert all(2 <= k < single.length - 2 for _, k in single.index)
    with pytest.raises(Exception, match="full window of 99"):
        ddata.test_set(None, DerainSettings(frames=1, video=True, eval_window=99))


def test_data_records_and_scoring_follow_the_settings_not_the_call_order():
    task = DerainTask()
    search = task.search_data(task.settings("search"))
    assert search.split == {"lower_items": 64, "upper_items": 64} and "\nupper: alphas (Adam)" in search.note
    s = task.settings("train").replace({"channels": 4, "cells": 1})
    data = task.train_data(s)
    assert data.split == {"train_items": 64, "val_items": 8} and data.scoring == Scoring(role="val")
    torch.manual_seed(0)
    result = SearchResult(ops_to_genotype(["conv_3x3"]))
    net = task.build_network(result, s)
    assert "network params" in task.training_note(s, data, net, result)  # its size, on a training crop
    test = task.test_data(None, s)
    batch = default_collate([test.test[0]])
    rgb_s, tiled_s = s.replace({"y_channel": False}), s.replace({"tile": 64, "tile_overlap": 16})
    y, items = task.evaluate_batch(net, batch, s, test.scoring)
    rgb, _ = task.evaluate_batch(net, batch, rgb_s, test.scoring)
    _, tiled = task.evaluate_batch(net, batch, tiled_s, test.scoring)
    assert set(y[0]) == {"name", "psnr", "ssim"} and y[0]["psnr"] != rgb[0]["psnr"]
    assert torch.allclose(tiled[0]["output"], items[0]["output"], atol=1e-5)
    assert "Y channel" in task.metrics_record(s, test.scoring)["convention"]
    assert task.evaluation_note(rgb_s, test.scoring).startswith("PSNR/SSIM on RGB")
    assert vars(task) == {}
