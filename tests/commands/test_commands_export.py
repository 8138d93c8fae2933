"""export.py: the network of every task to ONNX, checked against PyTorch with onnxruntime (tiny
networks; a model.pt from train.py for low-light, written as train.py writes it for the others), a
check that fails when the file and the network differ, and bad inputs as one-line errors."""
import contextlib
import io
import sys

import pytest
import torch

pytest.importorskip("onnxruntime", reason="needs the export extra: pip install -e '.[export]'")
pytest.importorskip("onnxscript", reason="needs the export extra: pip install -e '.[export]'")
onnx = pytest.importorskip("onnx", reason="needs the export extra: pip install -e '.[export]'")

import commands.export as export_command  # noqa: E402
from commands.errors import run  # noqa: E402
from tasks.registry import get_task  # noqa: E402
from commands.runs import save_torch  # noqa: E402
from commands.train import main as train_main  # noqa: E402
from nas.genotype import DARTS_V2  # noqa: E402
from restoration.derain.genotype import reference_genotype as derain_reference  # noqa: E402
from restoration.fusion.genotype import reference_genotype as fusion_reference  # noqa: E402
from restoration.registration.genotype import reference_genotype as autoreg_reference  # noqa: E402
from tasks import SearchResult  # noqa: E402

#: task -> (settings of a tiny network, its search result)
TINY = {
    "derain": ({"channels": 4, "cells": 1, "frames": 3}, lambda: SearchResult(derain_reference())),
    "fusion": ({"channels": 4}, lambda: SearchResult(fusion_reference())),
    "registration": ({"channels": [4, 8], "int_steps": 2},
                     lambda: SearchResult(autoreg_reference(), {"smooth": torch.tensor(1.0)})),
    "classification": ({"channels": 4, "layers": 3}, lambda: SearchResult(DARTS_V2)),
}


def model_file(path, task_name, seed=0, **settings):
    """A model.pt as train.py writes it, of a tiny network with its initial weights (seeded)."""
    task = get_task(task_name)
    values, result = TINY[task_name]
    s = task.settings("train").replace({**values, **settings}, source="test")
    torch.manual_seed(seed)
    net = task.build_network(result(), s)
    if task_name == "registration":  # fields of about a pixel, as trained, not the near-zero initial ones
        torch.nn.init.normal_(net.net.head.weight, std=0.5)
    save_torch(path, {"kind": "model", "task": task_name, **result().to_dict(), "config": s.to_dict(),
                      "state_dict": net.state_dict(), "step": 0, "epoch": 1, "metric": task.select,
                      "best_metric": None, "params": 0})
    return path


def export(*argv):
    return run(export_command.main, [*map(str, argv), "--threads", "1"])


def check_file(path, inputs, outputs):
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == inputs
    assert [o.name for o in model.graph.output] == outputs
    return model


def shape(model, n=0):
    return [d.dim_param or d.dim_value for d in model.graph.input[n].type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def derain(tmp_path_factory):
    """A 3-frame deraining model.pt exported at 16 x 16, and what export.py printed."""
    root = tmp_path_factory.mktemp("derain")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert export("--checkpoint", model_file(root / "model.pt", "derain"), "--size", "16") == 0
    return root / "model.onnx", printed.getvalue()


def test_derain_exports_with_dynamic_axes_and_matches_at_another_size(derain):
    path, printed = derain
    model = check_file(path, ["frames"], ["rain", "out"])
    assert shape(model) == ["batch", 3, 3, "height", "width"]
    assert model.opset_import[0].version == export_command.DEFAULT_OPSET
    checks = [line for line in printed.splitlines() if " vs PyTorch, random frames " in line]
    assert len(checks) == 2 and "[1, 3, 3, 16, 16]" in checks[0] and "[1, 3, 3, 13, 13]" in checks[1]
    assert all(float(line.split("max abs difference ")[1].split()[0]) <= 1e-4 for line in checks)


def test_check_fails_when_the_file_is_not_the_network(derain, tmp_path, capsys, monkeypatch):
    # the file of the fixture's weights, checked against a network of other weights: a real comparison fails
    monkeypatch.setattr(export_command, "export", lambda *a: (onnx.load(str(derain[0])), ["rain", "out"], 0.0))
    assert export("--checkpoint", model_file(tmp_path / "model.pt", "derain", seed=1), "--size", "16") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: onnxruntime and PyTorch differ by") and "\n" not in err
    assert not (tmp_path / "model.onnx").exists()  # nothing written


def test_lowlight_model_from_train_exports_and_matches(tmp_path, capsys):
    T = tmp_path / "T"
    assert run(train_main, ["--task", "lowlight", "--genotype", "restoration/lowlight/ruas_reference.json",
                            "--iem-stages", "1", "--nrm-cells", "1", "--crop", "16", "--batch-size", "1",
                            "--max-steps", "1", "--out", str(T)]) == 0
    capsys.readouterr()
    assert export("--checkpoint", T / "model.pt", "--height", "16", "--width", "20") == 0
    printed = capsys.readouterr().out
    assert shape(check_file(T / "model.onnx", ["input"], ["u", "t", "n", "out"])) == ["batch", 3, "height", "width"]
    assert "input [1, 3, 16, 20]" in printed and "input [1, 3, 13, 16]" in printed  # traced and other size


@pytest.mark.parametrize("task_name, inputs, outputs", [
    ("registration", ["moving", "fixed"], ["velocity", "flow", "warped"]),  # sizes in its grid and padding
    pytest.param("fusion", ["ir", "vi_y"], ["fused"], marks=pytest.mark.slow),
    pytest.param("classification", ["input"], ["logits"], marks=pytest.mark.slow),
])
def test_every_task_exports_and_matches_at_another_size(tmp_path, monkeypatch, task_name, inputs, outputs):
    real, worst = export_command.check, []
    monkeypatch.setattr(export_command, "check", lambda *a: worst.extend(real(*a)) or worst)
    assert export("--checkpoint", model_file(tmp_path / "model.pt", task_name), "--size", "16") == 0
    model = check_file(tmp_path / "model.onnx", inputs, outputs)
    assert shape(model)[0] == "batch" and shape(model)[2:] == ["height", "width"]
    assert len(worst) == 2 and max(worst) <= 1e-4  # at 16 x 16 and 13 x 13


@pytest.mark.slow
def test_registration_3d_exports_at_opset_20(tmp_path, capsys):
    path = model_file(tmp_path / "model.pt", "registration", dims=3, int_steps=1)
    assert export("--checkpoint", path, "--size", "8", "6", "8") == 0
    model = check_file(tmp_path / "model.onnx", ["moving", "fixed"], ["velocity", "flow", "warped"])
    assert model.opset_import[0].version == 20 and shape(model) == ["batch", 1, "depth", "height", "width"]
    assert "moving [1, 1, 7, 5, 7]" in capsys.readouterr().out


def test_bad_inputs_are_one_line_errors(tmp_path, capsys, monkeypatch):
    assert export("--checkpoint", tmp_path / "missing.pt") == 2
    save_torch(tmp_path / "checkpoint.pt", {"kind": "search", "task": "lowlight"})
    assert export("--checkpoint", tmp_path / "checkpoint.pt") == 2
    path = model_file(tmp_path / "model.pt", "classification")
    assert export("--checkpoint", path, "--size", "16", "16", "16") == 2
    assert export("--checkpoint", path, "--size", "16", "--height", "8") == 2
    reg3d = model_file(tmp_path / "reg3d.pt", "registration", dims=3)
    assert export("--checkpoint", reg3d, "--opset", "18") == 2
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # the extra is not installed
    assert export("--checkpoint", path) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 6 and all(line.startswith("error: ") for line in lines)
    assert "missing.pt does not exist" in lines[0]
    assert "is a search checkpoint" in lines[1] and "model.pt written by train.py" in lines[1]
    assert "--size takes 1 or 2 sides" in lines[2]
    assert "--size and --height/--width exclude each other" in lines[3]
    assert "--opset 18 is too old for the registration network" in lines[4] and "opset 20" in lines[4]
    assert lines[5] == 'error: ONNX export needs the export extra: pip install -e ".[export]"'
    assert not list(tmp_path.glob("*.onnx"))
