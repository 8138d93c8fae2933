"""search (meta-training) -> evaluate, train (baseline) -> evaluate, resume and refusals of --task fewshot."""
import json

import pytest
import torch

from commands.errors import run
from commands.evaluate import main as evaluate_main
from commands.search import main as search_main
from commands.train import main as train_main

TINY = ["--task", "fewshot", "--filters", "4", "--image-size", "16", "--ways", "3", "--queries", "2"]


def _config(tmp_path, **values):
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"test_episodes": 6, "val_episodes": 3, **values}))
    return ["--config", str(path)]


def search(tmp_path, out, *extra):
    return run(search_main, [*TINY, *_config(tmp_path), "--episodes", "4", "--batch-size", "2", "--out", str(out),
                             *extra])


@pytest.mark.parametrize("method", ["maml", "metasgd"])
def test_meta_training_writes_the_learned_initialisation(tmp_path, capsys, method):
    S, E = tmp_path / "S", tmp_path / "E"
    assert search(tmp_path, S, "--max-steps", "3", "--method", method) == 0
    out = capsys.readouterr().out
    assert "learned: the network's initialisation (model.pt)" in out and "next: python evaluate.py" in out
    model = torch.load(S / "model.pt", weights_only=True)
    ckpt = torch.load(S / "checkpoint.pt", weights_only=True)
    assert model["kind"] == "model" and model["stage"] == "search" and model["step"] == 3
    init = [v for k, v in ckpt["supernet"].items() if k.startswith("init.")]
    weights = [v for k, v in model["state_dict"].items() if not k.startswith("rate_")]
    assert len(init) == len(weights) and all(torch.equal(a, b) for a, b in zip(init, weights))
    assert any("rate_0" == k for k in model["state_dict"]) == (method == "metasgd")
    assert run(evaluate_main, ["--checkpoint", str(S / "model.pt"), "--out", str(E)]) == 0
    metrics = json.loads((E / "metrics.json").read_text())
    assert metrics["count"] == 6 and 0 <= metrics["accuracy"] <= 100 and metrics["accuracy_ci95"] >= 0
    assert "3-way 1-shot" in metrics["episodes"]
    assert "(95% interval)" in capsys.readouterr().out


def test_baseline_is_pretrained_on_every_meta_train_class_and_adapted_the_same_way(tmp_path):
    T, E = tmp_path / "T", tmp_path / "E"
    assert run(train_main, [*TINY, *_config(tmp_path), "--max-steps", "2", "--batch-size", "16", "--out", str(T)]) == 0
    model = torch.load(T / "model.pt", weights_only=True)
    assert model["config"]["classes"] == 64 and model["state_dict"]["head.weight"].shape[0] == 64
    assert model["best_metric"] is not None  # selected on meta-validation episodes
    assert run(evaluate_main, ["--checkpoint", str(T / "model.pt"), "--out", str(E)]) == 0
    assert json.loads((E / "metrics.json").read_text())["count"] == 6


def test_resumed_meta_training_equals_an_uninterrupted_one(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert search(tmp_path, a, "--max-steps", "4") == 0
    assert search(tmp_path, b, "--max-steps", "2") == 0
    assert search(tmp_path, b, "--max-steps", "4", "--resume") == 0
    ma, mb = (torch.load(d / "model.pt", weights_only=True)["state_dict"] for d in (a, b))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)


def test_a_method_that_learns_no_initialisation_is_refused(tmp_path, capsys):
    assert search(tmp_path, tmp_path / "S", "--max-steps", "1", "--method", "darts1") == 2
    err = capsys.readouterr().err.strip()
    assert "must be one of maml, fomaml, metasgd, reptile, imaml, got 'darts1'" in err and "\n" not in err


def test_confidence_interval_is_1_96_standard_errors():
    import statistics

    from commands.evaluation import confidence_intervals
    from fewshot.task import FewShotTask

    values = [20.0, 40.0, 100.0, 60.0, 80.0]
    records = [{"name": str(i), "accuracy": v} for i, v in enumerate(values)]
    ci = confidence_intervals(FewShotTask(), records)
    assert ci == {"accuracy_ci95": pytest.approx(1.96 * statistics.stdev(values) / len(values) ** 0.5, rel=1e-12)}
    assert confidence_intervals(FewShotTask(), records[:1]) == {}  # one item: no spread to report
