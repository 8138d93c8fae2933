"""--max-steps N runs N steps: the epochs follow (and the schedules over them), a recipe's max_steps is a
cap, --epochs alone drops it, and a resumed run with another budget keeps its schedule continuous."""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest
import torch

from commands.budget import drop_recipe_max_steps, load_schedulers, step_budget
from commands.errors import run
from tasks.registry import get_task

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--task", "lowlight", "--batch-size", "2", "--crop", "16", "--iem-stages", "1", "--nrm-cells", "1",
        "--nrm-channels", "3", "--seed", "0", "--device", "cpu"]


def _settings(**values):
    return get_task("lowlight").settings("train").replace(values)


def test_exact_max_steps_extends_or_shortens_the_epochs():
    s, total, note = step_budget(_settings(epochs=1, max_steps=60), steps_per_epoch=16)
    assert (total, s.epochs, s.max_steps) == (60, 4, 60)
    assert "--max-steps 60: 4 epochs of 16 steps, the last 12 steps" in note
    s, total, note = step_budget(_settings(epochs=50, max_steps=20), steps_per_epoch=16)
    assert (total, s.epochs) == (20, 2) and "not the 50 set" in note
    s, total, note = step_budget(_settings(epochs=2, max_steps=20), steps_per_epoch=16)
    assert (total, s.epochs, note) == (20, 2, "")  # two epochs, the second one partial: nothing to say
    s, total, note = step_budget(_settings(epochs=3, max_steps=None), steps_per_epoch=16)
    assert (total, s.epochs, note) == (48, 3, "")


def test_a_recipes_max_steps_is_a_cap():
    s, total, note = step_budget(_settings(epochs=4, max_steps=800), steps_per_epoch=16, exact=False)
    assert (total, s.epochs, s.max_steps, note) == (64, 4, None, "")  # 4 x 16 < 800: the epochs rule
    s, total, note = step_budget(_settings(epochs=4, max_steps=800), steps_per_epoch=485, exact=False)
    assert (total, s.epochs, s.max_steps) == (800, 2, 800) and "the recipe's max_steps 800" in note


def test_epochs_flag_alone_drops_a_recipes_max_steps():
    s = _settings(epochs=4, max_steps=800)
    args = argparse.Namespace(epochs=4, max_steps=None)
    assert drop_recipe_max_steps(s, args).max_steps is None
    assert drop_recipe_max_steps(s, args, {"max_steps": 800}).max_steps == 800  # the config file sets it
    assert drop_recipe_max_steps(s, argparse.Namespace(epochs=None, max_steps=None)).max_steps == 800
    assert drop_recipe_max_steps(s, argparse.Namespace(epochs=4, max_steps=900)).max_steps == 800


def _cosine(T_max: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.CosineAnnealingLR]:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=T_max, eta_min=0.1)


def test_resumed_cosine_keeps_its_learning_rate_and_ends_at_the_floor_of_the_new_length():
    opt, sched = _cosine(4)
    for _ in range(2):
        opt.step()
        sched.step()
    lr_at_2, state = opt.param_groups[0]["lr"], sched.state_dict()
    opt2, sched2 = _cosine(8)
    opt2.load_state_dict(opt.state_dict())
    assert load_schedulers([sched2], [state]) == "schedules resized to the new budget: CosineAnnealingLR 4 -> 8 epochs"
    assert sched2.T_max == 8 and opt2.param_groups[0]["lr"] == pytest.approx(lr_at_2)
    lrs = []
    for _ in range(6):
        opt2.step()
        sched2.step()
        lrs.append(opt2.param_groups[0]["lr"])
    assert all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] == pytest.approx(0.1)
    # what loading alone would do: the old length comes back and the rate climbs again after epoch 4
    opt3, sched3 = _cosine(8)
    opt3.load_state_dict(opt.state_dict())
    sched3.load_state_dict(state)
    rates = []
    for _ in range(6):
        opt3.step()
        sched3.step()
        rates.append(opt3.param_groups[0]["lr"])
    assert rates[-1] > rates[1] + 0.1


def _rows(folder: Path) -> list[dict[str, str]]:
    with open(folder / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_max_steps_runs_that_many_steps_and_resume_extends_it(tmp_path):
    from commands.search import main as search_main
    from commands.train import main as train_main

    config = tmp_path / "c.json"
    config.write_text(json.dumps({"synthetic_count": 12}))  # 3 search steps per epoch at batch 2
    S = tmp_path / "S"
    assert run(search_main, [*TINY, "--config", str(config), "--epochs", "1", "--max-steps", "7", "--out", str(S)]) == 0
    ckpt = torch.load(S / "checkpoint.pt", weights_only=True)
    assert ckpt["global_step"] == 7 and ckpt["config"]["epochs"] == 3
    assert json.loads((S / "config.json").read_text())["epochs"] == 3
    assert [(r["epoch"], r["steps"], r["complete"]) for r in _rows(S)] == [("1", "3", "1"), ("2", "6", "1"),
                                                                          ("3", "7", "0")]
    assert run(search_main, [*TINY, "--config", str(config), "--max-steps", "10", "--resume", "--out", str(S)]) == 0
    assert torch.load(S / "checkpoint.pt", weights_only=True)["global_step"] == 10
    assert [(r["epoch"], r["steps"], r["complete"]) for r in _rows(S)] == [
        ("1", "3", "1"), ("2", "6", "1"), ("3", "9", "1"), ("4", "10", "0")]

    T = tmp_path / "T"
    genotype = str(ROOT / "restoration" / "lowlight" / "ruas_reference.json")
    assert run(train_main, [*TINY, "--config", str(config), "--genotype", genotype, "--max-steps", "5",
                            "--out", str(T)]) == 0
    ckpt = torch.load(T / "checkpoint.pt", weights_only=True)
    assert ckpt["global_step"] == 5 and ckpt["config"]["epochs"] == len(_rows(T)) and _rows(T)[-1]["steps"] == "5"
    assert [s["T_max"] for s in ckpt["schedulers"]] == [ckpt["config"]["epochs"]]  # the cosine spans the run
