"""The fusion task's pieces: its losses recomputed another way (lower loss with the learned weights,
upper loss = fixed-weight fusion loss + W x expected latency), the hypergradient reaching the loss
weights, the latency table kept in the settings, hparams checks, metric directions."""
import re

import numpy as np
import pytest
import torch

import bilevel
from restoration.fusion.evaluation import score_item
from restoration.fusion.genotype import FUSION_PRIMITIVES
from restoration.fusion.latency import latency_settings
from restoration.fusion.losses import gradient_loss, intensity_loss, ssim_loss
from restoration.fusion.model import CELL_NAMES
from restoration.fusion.task import FusionTask, check_loss_weights, sources
from tasks.results import HparamsError

torch.manual_seed(0)
W_LAT = 0.5


def _record(C, size):
    table = {c: {p: 0.1 * (i + 1) * (k + 1) for i, p in enumerate(FUSION_PRIMITIVES)} for k, c in enumerate(CELL_NAMES)}
    return {"settings": latency_settings(FUSION_PRIMITIVES, C, size, "cpu"), "latency_ms": table}


def _setup(method="darts2", learn=True, weights=(2.0, 1.0, 0.5)):
    task = FusionTask()
    s = task.settings("search").replace({
        "channels": 4, "learn_loss_weights": learn, "latency_weight": W_LAT, "latency_size": 16,
        "latency_table": _record(4, 16), "method": method,
        "intensity_weight": weights[0], "gradient_weight": weights[1], "ssim_weight": weights[2]})
    return task, s, task.build_search(s, torch.device("cpu"))


def _batch():
    return {"ir": torch.rand(2, 1, 16, 16), "vi": torch.rand(2, 3, 16, 16)}


def test_lower_and_upper_losses_recomputed_independently(capsys):
    task, s, setup = _setup()
    assert "reused" in capsys.readouterr().out  # the table in the settings matched: nothing timed
    assert setup.settings["latency_table"] == s.latency_table  # the run keeps it
    problem = setup.groups[0].problem
    assert set(problem.upper) == {f"net.alphas.{c}" for c in CELL_NAMES} | {"loss_logits"}
    with torch.no_grad():
        problem.upper["loss_logits"].copy_(torch.tensor([0.3, -0.2, 0.1]))
    batch = _batch()
    rgb = batch["vi"].double().numpy()
    y = torch.from_numpy(0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3]).float()
    assert torch.allclose(sources(batch)[1], y, atol=1e-5)
    with torch.no_grad():
        fused = setup.supernet(batch["ir"], y)
        terms = [float(fn(fused, batch["ir"], y)) for fn in (intensity_loss, gradient_loss, ssim_loss)]
        logits = np.array([0.3, -0.2, 0.1])
        w = 3.5 * np.exp(logits) / np.exp(logits).sum()  # total = 2 + 1 + 0.5
        lower = float(problem.lower_loss(problem.lower, problem.upper, batch))
        assert lower == pytest.approx(float(np.dot(w, terms)), rel=1e-4)
        expected = 0.0
        for cell in CELL_NAMES:
            a = problem.upper[f"net.alphas.{cell}"].double().numpy()
            p = np.exp(a) / np.exp(a).sum(-1, keepdims=True)
            lat = np.array([s.latency_table["latency_ms"][cell][op] for op in FUSION_PRIMITIVES])
            expected += float((p * lat).sum())
        upper = float(problem.upper_loss(problem.lower, problem.upper, batch))
        assert upper == pytest.approx(2.0 * terms[0] + 1.0 * terms[1] + 0.5 * terms[2] + W_LAT * expected, rel=1e-4)


@pytest.mark.parametrize("method,moves", [("darts1", False), ("darts2", True)])
def test_loss_weights_get_a_hypergradient_through_the_lower_level(method, moves):
    _, s, setup = _setup(method)
    group = setup.groups[0]
    g = bilevel.hypergradient(group.problem, method, _batch(), _batch(), lower_optimizer=group.lower.optimizer)
    assert (g["loss_logits"].abs().sum() > 0) == moves
    assert all(g[f"net.alphas.{c}"].abs().sum() > 0 for c in CELL_NAMES)


def test_search_result_weights_sum_to_the_start_total_and_fixed_runs_have_none(capsys):
    task, s, setup = _setup()
    with torch.no_grad():
        setup.supernet.loss_logits.copy_(torch.tensor([1.0, 0.0, -1.0]))
    capsys.readouterr()
    result = task.search_result(setup, s)
    assert sum(float(v) for v in result.hparams.values()) == pytest.approx(3.5, rel=1e-6)
    assert float(result.hparams["intensity"]) > float(result.hparams["ssim"])
    latency_ms = re.search(r"searched network: ([0-9.]+) ms", capsys.readouterr().out)
    assert latency_ms is not None and float(latency_ms.group(1)) > 0
    task, s, setup = _setup(learn=False)
    assert task.search_result(setup, s).hparams == {} and "loss_logits" not in setup.groups[0].problem.upper


def test_hparams_checks():
    ok = {"intensity": torch.tensor(1.0), "gradient": torch.tensor(0.0), "ssim": torch.tensor(2.0)}
    assert check_loss_weights(ok) == {"intensity": 1.0, "gradient": 0.0, "ssim": 2.0}
    for bad, words in [({"smooth": torch.tensor(1.0)}, "fusion loss weights"),
                       ({**ok, "ssim": torch.tensor(float("nan"))}, ">= 0"),
                       ({k: torch.tensor(0.0) for k in ok}, "all 0")]:
        with pytest.raises(HparamsError, match=words):
            check_loss_weights(bad, "x.json")


def test_metric_directions_and_selection():
    task = FusionTask()
    assert list(task.metrics) == ["en", "sd", "sf", "ag", "mi", "mi_bits", "vif", "qabf", "scd", "ssim", "cc", "psnr",
                                  "mse"]
    assert {k for k, v in task.metrics.items() if v == "min"} == {"mse"} and task.select == "qabf"
    assert task.better(0.6, 0.5)


def test_vif_left_out_below_its_minimum_size():
    item = {"fused": torch.rand(1, 32, 32), "ir": torch.rand(1, 32, 32), "vi": torch.rand(1, 32, 32)}
    assert set(score_item(item, ["en", "vif"])) == {"en"}
