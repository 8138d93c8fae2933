"""``evaluate.py --task T --predictions DIR``: outputs made elsewhere scored like the network's (low-light
images saved by --save-images score what evaluate reported; fusion through the command), the flags'
one-line errors, and --tile / --overlap."""
import csv
import json
import shutil
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from commands.errors import run
from commands.evaluate import _tiled
from commands.evaluate import main as evaluate_main
from tasks.registry import get_task
from commands.search import main as search_main
from commands.train import main as train_main
from datasets import write_lol_folder
from datasets.synthetic_fusion import write_fusion_folder
from restoration.metrics import psnr
from tasks import SearchResult, Settings, Task

FAST = ["--task", "lowlight", "--batch-size", "2", "--crop", "24"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("ll")
    assert run(search_main, [*FAST, "--max-steps", "2", "--out", str(root / "R")]) == 0
    assert run(train_main, [*FAST, "--genotype", str(root / "R" / "genotype.json"), "--max-steps", "2",
                            "--out", str(root / "T")]) == 0
    return root / "T" / "model.pt"


@pytest.fixture(scope="module")
def evaluated(model, tmp_path_factory):
    """(LOL folder, evaluate's --out with images/) of the model."""
    root = tmp_path_factory.mktemp("eval")
    data = write_lol_folder(root / "D", count=3, size=32)
    out = root / "E"
    assert run(evaluate_main, ["--checkpoint", str(model), "--data", str(data), "--save-images",
                               "--out", str(out)]) == 0
    return data, out


def _error(capsys):
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), lines
    return lines[-1]


def _csv(path):
    with open(path) as f:
        return {r["name"]: r for r in csv.DictReader(f)}


def test_saved_lowlight_images_score_what_evaluate_reported(model, evaluated, capsys):
    data, out = evaluated
    capsys.readouterr()
    assert run(evaluate_main, ["--task", "lowlight", "--predictions", str(out / "images"), "--data", str(data)]) == 0
    printed = capsys.readouterr().out
    assert "full resolution" in printed and "images_scores" in printed
    scores = out / "images_scores"  # default --out: beside the predictions folder
    got, want = (json.loads((d / "metrics.json").read_text()) for d in (scores, out))
    assert set(got) == {"psnr", "ssim", "count"} and got["count"] == 3
    assert got["psnr"] == pytest.approx(want["psnr"], abs=0.05) and got["ssim"] == pytest.approx(want["ssim"], abs=1e-3)
    # exactly (to float rounding) the model's outputs rounded to 8 bits, as the PNGs hold them
    task = get_task("lowlight")
    ckpt = torch.load(model, weights_only=True)
    s = task.Settings.from_dict(ckpt["config"])
    net = task.build_network(SearchResult.from_dict(ckpt), s)
    net.load_state_dict(ckpt["state_dict"])
    rows = _csv(scores / "per_image.csv")
    dataset = task.test_data(str(data), s).test
    for i in range(len(dataset)):
        item = task.enhance(net.eval(), {k: v[None] if torch.is_tensor(v) else [v] for k, v in dataset[i].items()})[0]
        rounded = torch.round(item["output"] * 255) / 255
        assert float(rows[item["name"]]["psnr"]) == pytest.approx(float(psnr(rounded[None], item["target"][None])[0]),
                                                                   abs=1e-3)


@pytest.mark.parametrize("problem,words", [("missing", "no prediction for"), ("size", "must keep the size")])
def test_bad_prediction_folder_names_the_file(evaluated, tmp_path, capsys, problem, words):
    data, out = evaluated
    preds = tmp_path / "P"
    shutil.copytree(out / "images", preds)
    first = sorted(p for p in preds.glob("*.png") if not p.stem.endswith("_grid"))[0]
    if problem == "missing":
        first.unlink()
    else:
        cv2.imwrite(str(first), np.zeros((16, 32, 3), np.uint8))
    code = run(evaluate_main, ["--task", "lowlight", "--predictions", str(preds), "--data", str(data)])
    err = _error(capsys)
    assert code == 2 and words in err and first.name in err, err
    assert not (tmp_path / "P_scores" / "metrics.json").exists()


def test_predictions_need_references(evaluated, tmp_path, capsys):
    data, out = evaluated
    code = run(evaluate_main, ["--task", "lowlight", "--predictions", str(out / "images"), "--data", str(data / "low"),
                               "--out", str(tmp_path / "S")])
    assert code == 2 and "no reference images" in _error(capsys)


def test_scores_folder_is_not_overwritten_silently_and_never_holds_the_predictions(evaluated, tmp_path, capsys):
    data, out = evaluated
    preds = tmp_path / "P"
    shutil.copytree(out / "images", preds)
    args = ["--task", "lowlight", "--predictions", str(preds), "--data", str(data), "--out", str(tmp_path / "S")]
    assert run(evaluate_main, args) == 0
    assert run(evaluate_main, args) == 2 and "--force" in _error(capsys)
    (tmp_path / "S" / "notes.txt").write_text("mine")
    assert run(evaluate_main, [*args, "--force"]) == 0
    assert (tmp_path / "S" / "notes.txt").read_text() == "mine"
    count = len(list(preds.iterdir()))
    code = run(evaluate_main, ["--task", "lowlight", "--predictions", str(preds), "--data", str(data),
                               "--out", str(tmp_path), "--force"])
    assert code == 2 and "holds the predictions" in _error(capsys)
    assert len(list(preds.iterdir())) == count


def test_fusion_predictions_through_the_command(tmp_path):
    root = tmp_path / "F"
    write_fusion_folder(root / "test", "test", count=2, size=32)
    preds = tmp_path / "fused"
    shutil.copytree(root / "test" / "vi", preds)  # any images named like the pairs
    assert run(evaluate_main, ["--task", "fusion", "--predictions", str(preds), "--data", str(root)]) == 0
    task = get_task("fusion")
    rows, _ = task.score_predictions(str(preds), str(root), task.settings("train"))
    metrics = json.loads((tmp_path / "fused_scores" / "metrics.json").read_text())
    assert metrics["count"] == 2
    for key in ("en", "qabf", "mi", "ssim"):
        assert metrics[key] == pytest.approx(sum(r[key] for r in rows) / 2, rel=1e-6), key


@pytest.mark.parametrize("flags,words", [
    ([], "pass --checkpoint MODEL.pt"),
    (["--checkpoint", "{model}", "--predictions", "{preds}"], "exclude each other"),
    (["--predictions", "{preds}"], "needs --task, the task whose metrics score the folder: one of lowlight"),
    (["--task", "classification", "--predictions", "{preds}"], "cannot score a predictions folder"),
    (["--task", "lowlight", "--predictions", "{preds}", "--tile", "64"], "drop --tile"),
    (["--task", "lowlight", "--predictions", "{preds}", "--save-images"], "drop --save-images"),
    (["--checkpoint", "{model}", "--overlap", "8"], "pass --tile N too"),
    (["--checkpoint", "{model}", "--tile", "32", "--overlap", "40"], "--overlap 40 must be smaller than --tile 32"),
    (["--checkpoint", "{model}", "--tile", "32"], "the default --overlap 32 must be smaller than --tile 32"),
    (["--checkpoint", "{model}", "--tile", "64"], "task 'lowlight' does not support --tile"),
])
def test_flag_mistakes_are_one_line_errors(model, evaluated, tmp_path, capsys, flags, words):
    _, out = evaluated
    argv = [f.format(model=model, preds=out / "images") for f in flags] + ["--out", str(tmp_path / "X")]
    code = run(evaluate_main, argv)
    err = _error(capsys)
    assert code == 2 and words in err, err
    assert not (tmp_path / "X").exists()


@dataclass
class _TiledSettings(Settings):
    tile: int | None = None
    tile_overlap: int = 32


def test_tile_and_overlap_reach_the_settings_of_a_task_that_has_them():
    class Tiled(Task):
        name, Settings, can_tile = "tiled", _TiledSettings, True

    s = _tiled(Tiled(), _TiledSettings(), 64, 8)
    assert (s.tile, s.tile_overlap) == (64, 8)


def test_help_explains_every_flag(capsys):
    with pytest.raises(SystemExit):
        evaluate_main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for words in ("--predictions DIR", "needs --task", "DIR_scores beside DIR", "--tile N", "overlapping N x N tiles",
                  "--overlap PX", "default 32", "exactly one"):
        assert words in text, words
