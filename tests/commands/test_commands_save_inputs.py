"""``evaluate.py --save-inputs DIR``: the test set as files named as --predictions matches them. Round
trip: "predict" by copying the inputs, score the copy with --predictions, and get the scores of the
inputs themselves; gray predictions are scored on luma where the metrics are (derain), refused on RGB."""
from __future__ import annotations

import json
import shutil

import cv2
import pytest

from commands.errors import run
from commands.evaluate import main as evaluate_main
from tasks.registry import get_task
from datasets import write_lol_folder
from restoration.metrics import psnr, ssim


def _scores(out):
    return json.loads((out / "metrics.json").read_text())


def _direct(task_name, data):
    """Mean PSNR/SSIM of each test input against its reference, as the task's metrics give them."""
    task = get_task(task_name)
    dataset = task.test_data(data, task.settings("train").replace({"data": data})).test
    values = []
    for i in range(len(dataset)):
        item = dataset[i]
        h, w = (int(v) for v in item["size"])
        x, y = item["input"][None, :, :h, :w], item["target"][None, :, :h, :w]
        values.append((float(psnr(x, y)[0]), float(ssim(x, y)[0])))
    return sum(v[0] for v in values) / len(values), sum(v[1] for v in values) / len(values), len(values)


@pytest.mark.parametrize("folder", [False, True], ids=["embedded", "folder"])
def test_copied_inputs_score_as_the_inputs_themselves(tmp_path, capsys, folder):
    data = str(write_lol_folder(tmp_path / "D", count=3, size=32)) if folder else None
    where = ["--data", data] if data else []
    saved = tmp_path / "S"
    assert run(evaluate_main, ["--task", "lowlight", *where, "--save-inputs", str(saved)]) == 0
    assert "next: run the method on" in capsys.readouterr().out
    names = sorted(p.name for p in (saved / "inputs").iterdir())
    assert names == sorted(p.name for p in (saved / "references").iterdir()) and names
    shutil.copytree(saved / "inputs", tmp_path / "P")  # the "method": outputs its input
    assert run(evaluate_main, ["--task", "lowlight", *where, "--predictions", str(tmp_path / "P"),
                               "--out", str(tmp_path / "E")]) == 0
    got = _scores(tmp_path / "E")
    want_psnr, want_ssim, count = _direct("lowlight", data)
    assert got["count"] == count == len(names)
    assert got["psnr"] == pytest.approx(want_psnr, abs=1e-4) and got["ssim"] == pytest.approx(want_ssim, abs=1e-5)
    # the two saved folders are a data set of their own: the same items, the same scores
    assert run(evaluate_main, ["--task", "lowlight", "--pairs", str(saved / "inputs"), str(saved / "references"),
                               "--predictions", str(tmp_path / "P"), "--out", str(tmp_path / "E2")]) == 0
    assert _scores(tmp_path / "E2")["psnr"] == pytest.approx(got["psnr"], abs=1e-4)


def test_gray_predictions_are_scored_on_luma_for_derain_and_refused_for_lowlight(tmp_path, capsys):
    for task in ("derain", "lowlight"):
        saved, gray = tmp_path / f"S_{task}", tmp_path / f"G_{task}"
        assert run(evaluate_main, ["--task", task, "--save-inputs", str(saved)]) == 0
        gray.mkdir()
        for f in (saved / "inputs").iterdir():
            cv2.imwrite(str(gray / f.name), cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2GRAY))
        args = ["--task", task, "--out", str(tmp_path / f"E_{task}")]
        if task == "derain":  # Y channel: the gray image is its own luma, scored as its colour original
            assert run(evaluate_main, [*args, "--predictions", str(gray)]) == 0
            assert run(evaluate_main, ["--task", task, "--predictions", str(saved / "inputs"),
                                       "--out", str(tmp_path / "C")]) == 0
            assert _scores(tmp_path / f"E_{task}")["psnr"] == pytest.approx(_scores(tmp_path / "C")["psnr"], abs=0.02)
        else:
            capsys.readouterr()
            assert run(evaluate_main, [*args, "--predictions", str(gray)]) == 2
            (line,) = capsys.readouterr().err.splitlines()
            assert "is grayscale but the reference of" in line and "scores the RGB channels" in line
            assert not (tmp_path / f"E_{task}").exists()


def test_save_inputs_refusals(tmp_path, capsys):
    cases = [(["--save-inputs", str(tmp_path / "A")], "needs --task"),
             (["--task", "lowlight", "--save-inputs", str(tmp_path / "A"), "--checkpoint", "m.pt"], "drop --checkpoint"),
             (["--task", "classification", "--save-inputs", str(tmp_path / "A")], "cannot score outputs made elsewhere")]
    (tmp_path / "B").mkdir()
    (tmp_path / "B" / "mine.txt").write_text("keep")
    cases.append((["--task", "lowlight", "--save-inputs", str(tmp_path / "B")], "exists and is not empty"))
    for argv, words in cases:
        assert run(evaluate_main, argv) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("error: ") and words in line, line
    assert not (tmp_path / "A").exists() and [p.name for p in (tmp_path / "B").iterdir()] == ["mine.txt"]
