"""The registration Task: settings and recipes, the search problem's losses against independent
computations, the search result, the trained network's weights;
and (slow) what search + train reach on the embedded default."""
import json
import math

import pytest
import torch

from restoration.registration.losses import lower_loss, one_hot, smoothness, soft_dice
from restoration.registration.task import RegistrationTask, check_hparams
from restoration.registration.warp import warp
from tasks import SearchResult
from tasks.results import HparamsError


def _settings(**kw):
    task = RegistrationTask()
    return task, task.settings("search").replace({"size": 16, "synthetic_count": 8, "channels": [4, 8], **kw})


def _batch(task, s):
    lower = task.search_data(s).lower
    items = [lower[0], lower[1]]
    return {k: torch.stack([it[k] for it in items]) for k in ("moving", "fixed", "moving_seg", "fixed_seg")}


def test_recipe_options_stay_with_the_recipe_method_and_auto_optimizer():
    task = RegistrationTask()
    s = task.settings("search")
    assert s.method == "cg" and s.method_options == {"iters": 10}
    assert s.replace({"method": "neumann"}).method_options == {}
    assert s.replace({"method": "neumann", "method_options": {"iters": 7}}).method_options == {"iters": 7}
    assert s.lower_optimizer_for("darts2") == "sgd" and s.lower_optimizer_for("cg") == "adam"
    assert s.replace({"lower_optimizer": "adam"}).lower_optimizer_for("darts2") == "adam"


def test_lower_loss_is_linear_in_lambda_and_upper_loss_is_warped_soft_dice():
    task, s = _settings()
    setup = task.build_search(s, torch.device("cpu"))
    (group,) = setup.groups
    problem = group.problem
    assert set(problem.upper) == {"log_smooth"} and all(k.startswith("net.") for k in problem.lower)
    batch = _batch(task, s)
    torch.manual_seed(0)
    with torch.no_grad():  # a non-trivial field
        setup.supernet.net.head.weight.normal_(0, 0.5)
    y = problem.lower
    f = lambda lam: float(problem.lower_loss(y, {"log_smooth": torch.tensor(math.log(lam))}, batch))
    with torch.no_grad():
        out = setup.supernet(batch["moving"], batch["fixed"])
    expected = 9.9 * float(smoothness(out["velocity"]).mean())
    assert expected > 1e-3 and f(10.0) - f(0.1) == pytest.approx(expected, rel=1e-3)
    # upper: 1 - soft Dice over the labels of the pair (no folding here), recomputed by hand
    labels = sorted({int(v) for v in torch.cat([batch["moving_seg"].flatten(), batch["fixed_seg"].flatten()])} - {0})
    dice = soft_dice(warp(one_hot(batch["moving_seg"], labels), out["flow"]), one_hot(batch["fixed_seg"], labels))
    upper = float(problem.upper_loss(y, problem.upper, batch))
    assert float(out["flow"].abs().max()) > 0.1
    assert upper == pytest.approx(float(1 - dice.mean()), abs=1e-5)


def test_cells_and_jacobian_weight_join_the_one_upper_group_and_the_result():
    task, s = _settings(search_cells=True, jacobian_weight=0.5, smooth_weight=0.2)
    setup = task.build_search(s, torch.device("cpu"))
    (group,) = setup.groups
    assert {"log_smooth", "log_jacobian", "net.alphas_coarse", "net.alphas_fine"} == set(group.problem.upper)
    result = task.search_result(setup, s)
    assert result.genotype.space == "autoreg" and task.results == ("hparams",)  # the genotype is optional
    assert float(result.hparams["smooth"]) == pytest.approx(0.2) and float(result.hparams["jacobian"]) == pytest.approx(0.5)
    net = task.build_network(result, task.settings("train").replace({"channels": [4, 8]}))
    assert float(net.log_smooth) == pytest.approx(math.log(0.2)) and "log_jacobian" in net.state_dict()


def test_cosine_schedule_reaches_zero_at_the_last_epoch_of_the_budget_and_constant_has_none():
    task = RegistrationTask()
    s = task.settings("train")
    assert s.lr_schedule == "cosine" and task.settings("train", recipe="autoreg").lr_schedule == "constant"
    net = torch.nn.Linear(2, 2)
    s = s.replace({"lr": 0.01, "epochs": 100, "max_steps": 50})  # 10 steps/epoch: the budget ends in epoch 5
    (sched,) = task.build_training(net, s, steps_per_epoch=10).schedulers
    lrs = []
    for _ in range(5):
        lrs.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    assert lrs == pytest.approx([0.005 * (1 + math.cos(math.pi * e / 5)) for e in range(5)])
    assert sched.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert task.build_training(net, s.replace({"lr_schedule": "constant"}), steps_per_epoch=10).schedulers == []


def test_trained_network_brings_its_weights_to_the_loss_and_the_test_line_gives_the_unregistered_dice():
    task = RegistrationTask()
    s = task.settings("train").replace({"size": 16, "channels": [4, 8]})
    net = task.build_network(SearchResult(hparams={"smooth": torch.tensor(0.5)}), s)
    data = task.test_data(None, s)
    items = [data.test[k] for k in range(len(data.test))]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("moving", "fixed", "moving_seg", "fixed_seg", "size")}
    batch["name"] = [it["name"] for it in items]
    out = net(batch["moving"], batch["fixed"])
    expected = lower_loss(out, batch, {"log_smooth": torch.tensor(math.log(0.5))})
    assert float(task.train_losses(net, batch, s)["loss"]) == pytest.approx(float(expected), rel=1e-6)
    records, _ = task.evaluate_batch(net, batch, s, data.scoring)
    before = sum(r["dice_unregistered"] for r in records) / len(records)
    assert data.note == f"unregistered Dice of these pairs: {before:.4f}"


@pytest.mark.parametrize("hparams,match", [({"lambda": torch.tensor(0.1)}, "must be"),
                                           ({"smooth": torch.tensor(-1.0)}, "positive"),
                                           ({"smooth": torch.tensor([0.1, 0.2])}, "one positive number")])
def test_bad_hparams_are_refused(hparams, match):
    with pytest.raises(HparamsError, match=match):
        check_hparams(hparams, "h.json")
    with pytest.raises(HparamsError):
        RegistrationTask().check_result(SearchResult(hparams=hparams))


@pytest.mark.slow
def test_search_learns_lambda_and_training_gains_on_the_embedded_2d_default(tmp_path):
    """The default recipe end to end on the embedded 2D pairs, started from a smoothness weight the
    data does not favour (4.0; the recipe's own start 1.0 is already within 0.005 validation Dice of
    the best fixed value, see the settings docstring): search, retrain with the learned lambda,
    evaluate on the test split; beside it (a second process, so both cores work) the same training
    with lambda fixed at its start value.

    Asserted, as the issue asks: the search moves lambda (measured: 4 -> 1.65), the retrained model
    beats the start value on validation Dice (measured: 0.8318 against 0.8067; test Dice 0.8676
    against 0.8398), and the test Dice gains at least 0.15 over the unregistered pairs (0.6964) with
    under 1 % folding (measured +0.171, 0 %). One thread each: 12.6 min in all on a 2-core machine
    shared with other jobs.
    """
    import csv
    import subprocess
    import sys
    from pathlib import Path

    from commands.errors import run
    from commands.evaluate import main as evaluate_main
    from commands.search import main as search_main
    from commands.train import main as train_main

    start = 4.0
    (tmp_path / "start.json").write_text(json.dumps({"smooth": start}))
    root = Path(__file__).resolve().parents[2]
    fixed = subprocess.Popen([sys.executable, str(root / "train.py"), "--task", "registration", "--hparams",
                              str(tmp_path / "start.json"), "--out", str(tmp_path / "F"), "--threads", "1"],
                             cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert run(search_main, ["--task", "registration", "--smooth-weight", str(start), "--threads", "1",
                                 "--out", str(tmp_path / "S")]) == 0
        learned = json.loads((tmp_path / "S" / "hparams.json").read_text())["smooth"]
        assert run(train_main, ["--task", "registration", "--from", str(tmp_path / "S"), "--threads", "1",
                                "--out", str(tmp_path / "T")]) == 0
    finally:
        _, err = fixed.communicate()
    assert fixed.returncode == 0, err[-2000:]
    best_val = torch.load(tmp_path / "T" / "model.pt", weights_only=False)["best_metric"]
    start_val = torch.load(tmp_path / "F" / "model.pt", weights_only=False)["best_metric"]
    assert run(evaluate_main, ["--checkpoint", str(tmp_path / "T" / "model.pt"), "--out", str(tmp_path / "E")]) == 0
    metrics = json.loads((tmp_path / "E" / "metrics.json").read_text())
    with open(tmp_path / "E" / "per_image.csv") as f:
        before = [float(row["dice_unregistered"]) for row in csv.DictReader(f)]
    before = sum(before) / len(before)
    print(f"lambda {start} -> {learned:.4g}; best validation Dice {best_val:.4f} (lambda fixed at {start}: "
          f"{start_val:.4f}); test Dice {metrics['dice']:.4f} (unregistered {before:.4f}, gain "
          f"{metrics['dice'] - before:+.4f}), folding {metrics['folding_pct']:.3f} %")
    assert abs(math.log(learned / start)) > 0.3
    assert best_val > start_val + 0.01
    assert metrics["count"] == 8 and before == pytest.approx(0.6964, abs=1e-3)
    assert metrics["dice"] - before >= 0.15 and metrics["folding_pct"] < 1.0
