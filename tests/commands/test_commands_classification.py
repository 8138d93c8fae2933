"""search -> train -> evaluate on the embedded synthetic CIFAR-like set, resume, bad inputs."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from commands.errors import run
from commands.evaluate import main as evaluate_main
from commands.search import main as search_main
from commands.train import main as train_main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--task", "classification", "--channels", "4", "--layers", "3", "--batch-size", "4"]


def search(out, *extra):
    return run(search_main, [*TINY, "--out", str(out), *extra])


def test_search_train_evaluate_end_to_end(tmp_path, capsys):
    R, T, E = tmp_path / "R", tmp_path / "T", tmp_path / "E"
    assert search(R, "--max-steps", "2") == 0
    for name in ("genotype.json", "config.json", "checkpoint.pt", "metrics.csv", "genotype.png"):
        assert (R / name).is_file(), name
    assert json.loads((R / "genotype.json").read_text())["space"] == "darts"
    assert json.loads((R / "config.json").read_text())["method"] == "darts1"  # the CPU-sized default recipe
    assert run(train_main, [*TINY, "--genotype", str(R / "genotype.json"), "--max-steps", "2",
                            "--out", str(T)]) == 0
    assert "params:" in capsys.readouterr().out
    model = torch.load(T / "model.pt", weights_only=True)
    assert {"task", "genotype", "config", "state_dict", "step", "best_metric", "params"} <= set(model)
    assert run(evaluate_main, ["--checkpoint", str(T / "model.pt"), "--out", str(E)]) == 0
    metrics = json.loads((E / "metrics.json").read_text())
    assert set(metrics) == {"top1", "count"} and 0 <= metrics["top1"] <= 100
    assert (E / "per_image.csv").read_text().count("\n") == metrics["count"] + 1


def test_resume_gives_the_same_run(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert search(a, "--max-steps", "4", "--method", "darts1") == 0
    assert search(b, "--max-steps", "2", "--method", "darts1") == 0
    assert search(b, "--max-steps", "4", "--resume") == 0
    ca = torch.load(a / "checkpoint.pt", weights_only=True)
    cb = torch.load(b / "checkpoint.pt", weights_only=True)
    for key, value in ca["supernet"].items():
        assert torch.equal(value, cb["supernet"][key]), key
    assert (a / "genotype.json").read_text() == (b / "genotype.json").read_text()


def test_existing_run_folder_is_not_overwritten(tmp_path, capsys):
    assert search(tmp_path / "R", "--max-steps", "1") == 0
    before = (tmp_path / "R" / "checkpoint.pt").read_bytes()
    assert search(tmp_path / "R", "--max-steps", "1") == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert (tmp_path / "R" / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("case", ["missing_data", "other_space", "corrupt_json", "other_task", "not_model"])
def test_bad_inputs_give_one_line_errors(tmp_path, capsys, case):
    if case == "missing_data":
        code = search(tmp_path / "R", "--data", str(tmp_path / "nowhere"), "--max-steps", "1")
        word = "nowhere"
    elif case in ("other_space", "corrupt_json"):
        g = tmp_path / "g.json"
        g.write_text('{"space": "ruas", "iem": [["conv_3x3", 0]], "iem_concat": [1], "nrm": [["conv_3x3", 0]], '
                     '"nrm_concat": [1]}' if case == "other_space" else '{"space": "darts", "normal": [')
        code = run(train_main, [*TINY, "--genotype", str(g), "--out", str(tmp_path / "T")])
        word = "g.json"
    elif case == "other_task":
        assert search(tmp_path / "R", "--max-steps", "1") == 0
        assert run(train_main, [*TINY, "--genotype", str(tmp_path / "R" / "genotype.json"), "--max-steps", "1",
                                "--out", str(tmp_path / "T")]) == 0
        capsys.readouterr()
        code = run(evaluate_main, ["--checkpoint", str(tmp_path / "T" / "model.pt"), "--task", "lowlight"])
        word = "not 'lowlight'"
    else:
        assert search(tmp_path / "R", "--max-steps", "1") == 0
        capsys.readouterr()
        code = run(evaluate_main, ["--checkpoint", str(tmp_path / "R" / "checkpoint.pt")])
        word = "search checkpoint"
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and err.startswith("error: ") and word in err, err


@pytest.mark.parametrize("main", [search_main, train_main, evaluate_main])
def test_every_command_has_help(main, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0 and "--device" in capsys.readouterr().out


def test_task_flags_in_help_and_unknown_task_refused(capsys):
    with pytest.raises(SystemExit) as e:
        search_main(["--task", "classification", "--help"])
    assert e.value.code == 0 and "--channels" in capsys.readouterr().out
    assert run(search_main, ["--task", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown task 'nope'" in err and "lowlight, classification" in err


def test_script_entry_point_runs():
    out = subprocess.run([sys.executable, "evaluate.py", "--checkpoint", "missing.pt"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip() == (
        "error: checkpoint missing.pt does not exist; give a model.pt written by train.py or a paper's released "
        "weights")
