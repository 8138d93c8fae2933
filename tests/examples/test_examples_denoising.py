"""The application of docs/add_application.md (examples/denoising.py): registered with one line, it
runs through search.py, train.py and evaluate.py like a shipped task, and its network learns."""
import json

import pytest

import tasks.registry
from commands.errors import run
from commands.evaluate import main as evaluate_main
from commands.search import main as search_main
from commands.train import main as train_main
from examples.denoising import PRIMITIVES, DenoisingTask, NoisyPatterns
from restoration.metrics import psnr
from tasks import get_task, register


@pytest.fixture
def denoise(monkeypatch):
    monkeypatch.setattr(tasks.registry, "TASKS", dict(tasks.registry.TASKS))  # the shipped map is left as it was
    register("denoise", "examples.denoising:DenoisingTask")
    return "denoise"


def test_register_adds_the_task_beside_the_shipped_ones(denoise):
    assert isinstance(get_task(denoise), DenoisingTask) and "lowlight" in tasks.registry.TASKS


def test_search_train_evaluate(denoise, tmp_path, capsys):
    common = ["--task", denoise, "--device", "cpu", "--threads", "1"]
    assert run(search_main, [*common, "--out", str(tmp_path / "s"), "--max-steps", "6"]) == 0
    genes = json.loads((tmp_path / "s" / "genotype.json").read_text())["cell"]
    assert len(genes) == 3 and all(op in PRIMITIVES for op, _ in genes)
    assert run(train_main, [*common, "--from", str(tmp_path / "s"), "--out", str(tmp_path / "t"), "--epochs", "4"]) == 0
    assert run(evaluate_main, ["--checkpoint", str(tmp_path / "t" / "model.pt"), "--device", "cpu"]) == 0
    scores = json.loads((tmp_path / "t" / "eval" / "metrics.json").read_text())
    test = NoisyPatterns(8, 24, 0.1, 3)  # the embedded test split: its noisy inputs scored as outputs
    items = [test[i] for i in range(len(test))]
    noisy = sum(float(psnr(it["input"].clamp(0, 1)[None], it["target"][None])) for it in items) / len(items)
    assert scores["count"] == 8 and scores["psnr"] > noisy + 1.0  # the trained network removes noise
    assert run(evaluate_main, ["--checkpoint", str(tmp_path / "t" / "model.pt"), "--data", str(tmp_path),
                               "--out", str(tmp_path / "e2")]) == 2
    assert "reads no folders" in capsys.readouterr().err
