"""Helpers of benchmarks/time_to_target.py and target_report.py: the minibatch partition, the
targets, the ratio text, each library's fastest setting, our loop adapter on a tiny ridge."""
import math

import pytest
import torch

from benchmarks import ours, problems
from benchmarks.peers import LoopPlan
from benchmarks.target_report import Result, best_per_library, ratio
from benchmarks.time_to_target import objective, target_value


def test_minibatches_partition_the_rows_and_name_themselves():
    batch = {"x": torch.arange(10.0).view(5, 2), "y": torch.arange(5)}
    parts = problems.minibatches(batch, 2, seed=1)
    assert [p["index"] for p in parts] == [0, 1]
    idx = torch.cat([p["idx"] for p in parts])
    assert len(set(idx.tolist())) == 4  # 5 rows into 2 of 2: one row left out, none twice
    for p in parts:
        assert torch.equal(p["x"], batch["x"][p["idx"]]) and torch.equal(p["y"], batch["y"][p["idx"]])
    assert problems.minibatches(batch, 1)[0].keys() == batch.keys()
    with pytest.raises(ValueError):
        problems.minibatches(batch, 6)


def test_clean_lower_picks_the_weights_of_the_minibatch_rows():
    torch.manual_seed(0)
    lin = torch.nn.Linear(3, 2)
    batch = {"x": torch.randn(6, 3), "y": torch.randint(0, 2, (6,))}
    hp = {"x": torch.randn(6)}
    whole = problems.clean_lower(lin, list(lin.parameters()), hp, batch)
    parts = problems.minibatches(batch, 3)
    mean = sum(problems.clean_lower(lin, list(lin.parameters()), hp, p) for p in parts) / 3
    assert torch.allclose(whole, mean, atol=1e-6)


def test_target_value_is_the_share_of_the_decrease():
    assert target_value(1.0, 0.0, 0.9) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        target_value(1.0, 1.5, 0.9)


def _res(lib, setting, reached, cpu):
    return Result("p", lib, setting, "m", 1, 1, reached=reached, steps=10, cpu_s=cpu, wall_s=2 * cpu)


def test_best_per_library_and_ratio_bounds():
    rows = best_per_library([_res("ours", "a", True, 1.0), _res("ours", "b", True, 0.5),
                             _res("boat", "c", True, 2.0), _res("boat", "d", False, 0.2),
                             _res("betty", "e", False, 3.0)])
    by = {r["library"]: r for r in rows}
    assert by["ours"]["setting"] == "b" and by["ours"]["x_peer"] == "0.25"
    assert by["boat"]["setting"] == "c" and by["boat"]["x_peer"] == "1.00"
    assert by["betty"]["x_peer"] == ">1.50"  # ran 3 s without reaching: slower than boat's 2 s
    # no peer reached: ours against the shortest peer run, as a bound
    only = best_per_library([_res("ours", "a", True, 1.0), _res("boat", "c", False, 4.0)])
    assert next(r for r in only if r["library"] == "ours")["x_peer"] == "<0.25"
    assert ratio({"cpu_s": math.nan, "reached": False}, []) == "-"


@pytest.mark.slow
def test_our_loop_lowers_the_exact_ridge_objective():
    spec = problems.ridge(torch.device("cpu"), n=40, m=40, d=4)
    plan = LoopPlan([spec.lower_batch], spec.upper_batch, 0.05)
    value = objective(spec)
    for s in (problems.Setting("soba"), problems.Setting("cg", 1, 3, {"warm_start": True})):
        run = ours.loop(spec, s, plan)
        f0 = value(*run.state())
        for i in range(30):
            run.step(i)
        assert value(*run.state()) < f0
