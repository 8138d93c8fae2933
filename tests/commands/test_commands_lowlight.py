"""The low-light commands on the embedded default and on a LOL-layout folder."""
import json

import cv2
import numpy as np
import pytest

from commands.errors import run
from commands.evaluate import main as evaluate_main
from commands.search import main as search_main
from commands.train import main as train_main
from datasets import write_lol_folder

FAST = ["--task", "lowlight", "--batch-size", "2", "--crop", "24"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("ll")
    assert run(search_main, [*FAST, "--max-steps", "4", "--out", str(root / "R")]) == 0
    genotype = json.loads((root / "R" / "genotype.json").read_text())
    assert genotype["space"] == "ruas" and set(genotype) >= {"iem", "nrm"}
    assert run(train_main, [*FAST, "--genotype", str(root / "R" / "genotype.json"), "--max-steps", "4",
                            "--out", str(root / "T")]) == 0
    for name in ("model.pt", "checkpoint.pt", "metrics.csv", "config.json", "samples.png"):
        assert (root / "T" / name).is_file(), name
    return root / "T" / "model.pt"


def lol(tmp_path, count=3):
    return write_lol_folder(tmp_path / "D", count=count, size=32)


def test_evaluate_on_lol_folder_writes_metrics_and_images(model, tmp_path, capsys):
    data = lol(tmp_path)
    out = tmp_path / "E"
    assert run(evaluate_main, ["--checkpoint", str(model), "--data", str(data), "--save-images", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"psnr", "ssim", "count"} and metrics["count"] == 3
    outputs = sorted(p.name for p in (out / "images").glob("*.png"))
    assert len(outputs) == 3 and sorted(p.name for p in (out / "images" / "panels").glob("*.png")) == outputs
    assert "full resolution" in capsys.readouterr().out


def test_unpaired_folder_writes_outputs_without_metrics(model, tmp_path, capsys):
    data = lol(tmp_path)
    low = next(data.rglob("low"))
    out = tmp_path / "E"
    assert run(evaluate_main, ["--checkpoint", str(model), "--data", str(low.parent / "low"), "--save-images",
                               "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text()) == {"count": 3}
    assert "no reference" in capsys.readouterr().out.lower()


@pytest.mark.parametrize("case", ["unpaired", "corrupt"])
def test_bad_lol_folder_names_the_file(model, tmp_path, capsys, case):
    data = lol(tmp_path)
    low = next(data.rglob("low"))
    bad = low / "zz_extra.png"
    if case == "unpaired":
        cv2.imwrite(str(bad), np.zeros((32, 32, 3), np.uint8))
    else:
        bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
        (low.parent / "high" / "zz_extra.png").write_bytes(bad.read_bytes())
    capsys.readouterr()
    code = run(evaluate_main, ["--checkpoint", str(model), "--data", str(data), "--out", str(tmp_path / "E")])
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert code == 2 and err.startswith("error: ") and "zz_extra.png" in err, err
    assert not (tmp_path / "E" / "metrics.json").exists()


def test_grayscale_images_are_expanded(model, tmp_path):
    data = lol(tmp_path, count=2)
    for path in data.rglob("*.png"):
        gray = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(path), gray)
    out = tmp_path / "E"
    assert run(evaluate_main, ["--checkpoint", str(model), "--data", str(data), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["count"] == 2


def _training_folder(tmp_path, problem):
    """A LOL training folder of 4 pairs with one bad file: the pair the validation slice holds out
    (seed 0), so that only a check of every file finds it before the first step."""
    root = tmp_path / "D"
    write_lol_folder(root, count=4, size=24, subset="our485")
    names = sorted(p.name for p in (root / "our485" / "low").iterdir())
    held_out = names[2]  # split_train_val(4, 0.1, seed 0) holds out index 2
    bad = root / "our485" / ("high" if problem == "sizes" else "low") / held_out
    if problem == "sizes":
        cv2.imwrite(str(bad), np.zeros((20, 24, 3), np.uint8))
    else:  # a truncated PNG: its header is fine, its pixels are not
        bad.write_bytes(bad.read_bytes()[:60])
    return root, held_out


@pytest.mark.parametrize("problem", ["sizes", "truncated"])
@pytest.mark.parametrize("command", ["search", "train"])
def test_every_file_is_checked_before_the_first_step_and_a_failed_start_leaves_no_folder(
        model, tmp_path, capsys, problem, command):
    data, name = _training_folder(tmp_path, problem)
    out = tmp_path / "R"
    argv = [*FAST, "--data", str(data), "--batch-size", "8", "--max-steps", "1", "--out", str(out)]
    if command == "train":
        argv += ["--genotype", "restoration/lowlight/ruas_reference.json"]
    capsys.readouterr()
    code = run(search_main if command == "search" else train_main, argv)
    captured = capsys.readouterr()
    err = captured.err.strip()
    # the file's error, not the batch size's; one line, no progress bar of a step before it
    assert code == 2 and err.startswith("error: ") and "\n" not in err and name in err, err
    assert "steps/epoch" not in captured.out
    assert not out.exists()


def test_unpaired_training_says_what_it_optimises_and_what_selects_the_model(model, tmp_path, capsys):
    data = lol(tmp_path, count=4)
    low = data / "low"
    out = tmp_path / "T"
    capsys.readouterr()
    assert run(train_main, [*FAST, "--data", str(low), "--genotype", "restoration/lowlight/ruas_reference.json",
                            "--max-steps", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "RUAS's losses (IEM + NRM) only: the data has no reference images, so it is unsupervised" in text
    assert "model: the last epoch's" in text and "-inf" not in text and "model selected on" not in text
