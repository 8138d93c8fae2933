"""The registration Task: settings and recipes, the search problem's losses against independent
computations, the search result, the trained network's weights;
and (slow) what search + train reach on the embedded default."""
import json
import math

import pytest
import torch

from restoration.registration.losses import one_hot, smoothness, soft_dice
from restoration.registration.task import RegistrationTask, check_hparams
from restoration.registration.warp import warp
from tasks import SearchResult
from tasks.results import HparamsError


def _settings(**kw):
    task = RegistrationTask()
    return task, task.settings("search").replace({"size": 16, "synthetic_count": 8, "channels": [4, 8], **kw})


def _batch(task, s):
    lower, _ = task.search_data(s)
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
    result = task.search_result(setup)
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


@pytest.mark.parametrize("hparams,match", [({"lambda": torch.tensor(0.1)}, "must be"),
                                           ({"smooth": torch.tensor(-1.0)}, "positive"),
                                           ({"smooth": torch.tensor([0.1, 0.2])}, "one positive number")])
def test_bad_hparams_are_refused(hparams, match):
    with pytest.raises(HparamsError, match=match):
        check_hparams(hparams, "h.json")
    with pytest.raises(HparamsError):
        RegistrationTask().check_result(SearchResult(hparams=hparams))


@pytest.mark.slow
def test_search_and_train_on_the_embedded_2d_default(tmp_path):
    """The default recipe end to end on the embedded 2D pairs (one thread: search about 5 min,
    training about 3 min): search, retrain with the learned lambda, evaluate on the test split.

    Asserted, as the issue asks: the test Dice gain over the unregistered pairs is at least 0.15,
    with under 1 % folding (measured: 0.8654 against 0.6964, +0.169, 0 % folding). Also: the
    search moved lambda (measured: up to about 2.2 and back to 1.05), and its model is within 0.01
    of the best validation Dice of the start value 1.0 with this recipe (0.8362, measured with
    ``train.py --hparams`` on ``{"smooth": 1.0}``; the former neumann search lost 0.025 here).
    Not asserted, because it is not met: a learned lambda that beats its start on validation Dice
    (measured 0.8352 against 0.8362; the best fixed value of a sweep, 0.3, gains only 0.0034-0.005;
    see the settings docstring and the README for why the hypergradient does not find it).
    """
    import csv

    from commands.errors import run
    from commands.evaluate import main as evaluate_main
    from commands.search import main as search_main
    from commands.train import main as train_main

    start_value, start_best_val = 1.0, 0.8362
    assert RegistrationTask().settings("search").smooth_weight == start_value
    assert run(search_main, ["--task", "registration", "--out", str(tmp_path / "S")]) == 0
    learned = json.loads((tmp_path / "S" / "hparams.json").read_text())["smooth"]
    with open(tmp_path / "S" / "metrics.csv") as f:
        path = [float(row["hparam/smooth"]) for row in csv.DictReader(f)]
    assert max(abs(math.log(v / start_value)) for v in path) > 0.1 and path[-1] == pytest.approx(learned, rel=1e-4)
    assert run(train_main, ["--task", "registration", "--from", str(tmp_path / "S"), "--out", str(tmp_path / "T")]) == 0
    best_val = torch.load(tmp_path / "T" / "model.pt", weights_only=False)["best_metric"]
    assert run(evaluate_main, ["--checkpoint", str(tmp_path / "T" / "model.pt"), "--out", str(tmp_path / "E")]) == 0
    metrics = json.loads((tmp_path / "E" / "metrics.json").read_text())
    with open(tmp_path / "E" / "per_image.csv") as f:
        before = [float(row["dice_unregistered"]) for row in csv.DictReader(f)]
    before = sum(before) / len(before)
    print(f"lambda {start_value} -> {learned:.4g} (path {min(path):.3g}..{max(path):.3g}); best validation Dice "
          f"{best_val:.4f} (start {start_best_val}); test Dice {metrics['dice']:.4f} (unregistered {before:.4f}, "
          f"gain {metrics['dice'] - before:+.4f}), folding {metrics['folding_pct']:.3f} %")
    assert metrics["count"] == 8 and before == pytest.approx(0.6964, abs=1e-3)
    assert metrics["dice"] - before >= 0.15 and metrics["folding_pct"] < 1.0
    assert best_val >= start_best_val - 0.01
