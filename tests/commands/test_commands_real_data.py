"""The commands on real benchmark samples as distributed (``../shared/data/real``): Rain100H's
``rainy/`` + ``norain-XXX.png`` layout through train and evaluate, and ``--pairs`` through scoring
predictions (deraining and fusion). Skipped where the samples are absent; the end-to-end runs are
``slow`` (``pytest -m slow``)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from commands.errors import run
from commands.evaluate import main as evaluate_main
from commands.train import main as train_main

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"
TINY = ["--task", "derain", "--channels", "4", "--cells", "1", "--crop", "16", "--batch-size", "2", "--device", "cpu"]


def _sample(*parts: str) -> Path:
    path = REAL.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"real sample {'/'.join(parts)} not present (needs ../shared/data/real)")
    return path


@pytest.mark.slow
def test_train_and_evaluate_on_rain100h_as_distributed(tmp_path, capsys):
    root = _sample("derain", "Rain100H_sample")
    T, E = tmp_path / "T", tmp_path / "E"
    assert run(train_main, [*TINY, "--data", str(root), "--genotype", "restoration/derain/tmics_reference.json",
                            "--max-steps", "2", "--out", str(T)]) == 0
    config = json.loads((T / "config.json").read_text())
    assert config["data"] == str(root) and config["split"] == {"train_items": 5, "val_items": 1}
    assert run(evaluate_main, ["--checkpoint", str(T / "model.pt"), "--data", str(root), "--out", str(E)]) == 0
    assert json.loads((E / "metrics.json").read_text())["count"] == 6


@pytest.mark.slow
def test_pairs_scores_predictions_for_derain_and_fusion(tmp_path):
    rain = _sample("derain", "Rain100H_sample")
    tno = _sample("fusion", "TNO8")
    out = tmp_path / "D"
    assert run(evaluate_main, ["--task", "derain", "--predictions", str(rain / "rainy"), "--pairs", str(rain / "rainy"),
                               str(rain), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["count"] == 6 and 5 < metrics["psnr"] < 30  # the rainy inputs against their clean partners
    out = tmp_path / "F"
    assert run(evaluate_main, ["--task", "fusion", "--predictions", str(tno / "vi"), "--pairs", str(tno / "ir"),
                               str(tno / "vi"), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["count"] == 8


def test_pairs_with_unmatched_files_is_one_line_naming_them(tmp_path, capsys):
    rain = _sample("derain", "Rain100H_sample")
    clean = tmp_path / "clean"
    clean.mkdir()
    for i in (1, 2, 3):
        (clean / f"norain-00{i}.png").write_bytes((rain / f"norain-00{i}.png").read_bytes())
    code = run(evaluate_main, ["--task", "derain", "--predictions", str(rain / "rainy"), "--pairs",
                               str(rain / "rainy"), str(clean), "--out", str(tmp_path / "E")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert "rain-004.png' has no partner" in err[0] and "rain-006.png" in err[0]
    assert not (tmp_path / "E").exists()
