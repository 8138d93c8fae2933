"""Named metric conventions of the fusion task: DIDFuse's SD and AG against numpy written another way,
the default left as it is, and the choice carried by the settings, ``evaluate.py --convention`` and
``metrics.json``."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from commands.errors import run
from commands.evaluate import main as evaluate_main
from tasks.registry import get_task
from datasets.synthetic_fusion import write_fusion_folder
from restoration.fusion import metrics as M
from restoration.fusion.metrics_conventions import (CONVENTIONS, DEFAULT_CONVENTION, average_gradient_matlab,
                                                    std_column_means)
from tasks.settings import SettingsError

RNG = np.random.default_rng(7)


def test_didfuse_sd_is_about_column_means():
    f = np.round(RNG.uniform(0, 255, (13, 9)))
    f[:, 4] += 40.0  # columns of different means: the column SD is below the population SD
    expected = math.sqrt(sum((f[i, j] - f[:, j].mean()) ** 2 for i in range(13) for j in range(9)) / f.size)
    ours = std_column_means(torch.from_numpy(f)[None])
    assert float(ours[0]) == pytest.approx(expected, rel=1e-12)
    assert float(ours[0]) < float(M.std(torch.from_numpy(f)[None])[0])


def test_didfuse_ag_divides_the_sum_by_h_minus_1_times_w_minus_1():
    f = RNG.uniform(0, 255, (11, 14))
    h, w = f.shape
    total = 0.0
    for i in range(h):
        for j in range(w):  # MATLAB gradient: central inside, one-sided at the border
            gx = (f[i, min(j + 1, w - 1)] - f[i, max(j - 1, 0)]) / (2 if 0 < j < w - 1 else 1)
            gy = (f[min(i + 1, h - 1), j] - f[max(i - 1, 0), j]) / (2 if 0 < i < h - 1 else 1)
            total += math.sqrt((gx * gx + gy * gy) / 2)
    ours = average_gradient_matlab(torch.from_numpy(f)[None])
    assert float(ours[0]) == pytest.approx(total / ((h - 1) * (w - 1)), rel=1e-12)
    assert float(M.average_gradient(torch.from_numpy(f)[None])[0]) == pytest.approx(total / (h * w), rel=1e-12)


def test_conventions_change_only_their_keys():
    fused, ir, vi = (torch.rand(2, 1, 44, 46, dtype=torch.float64) for _ in range(3))
    base = M.fusion_metrics(fused, ir, vi)
    did = M.fusion_metrics(fused, ir, vi, convention="didfuse")
    assert DEFAULT_CONVENTION == "cddfuse" and list(did) == list(base)
    changed = set(CONVENTIONS["didfuse"].overrides)
    assert changed == {"sd", "ag"}
    for key in base:
        if key in changed:
            assert not torch.allclose(did[key], base[key]), key
        else:
            assert torch.equal(did[key], base[key]), key
    f = M.to_gray255(fused)
    assert torch.equal(did["sd"], std_column_means(f)) and torch.equal(did["ag"], average_gradient_matlab(f))
    assert torch.allclose(base["mi_bits"], base["mi"] / math.log(2), rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="unknown fusion metric convention 'nope'"):
        M.fusion_metrics(fused, ir, vi, convention="nope")


def test_settings_check_and_metrics_record():
    task = get_task("fusion")
    s = task.settings("train")
    assert s.convention == "cddfuse"
    with pytest.raises(SettingsError, match="convention must be one of 'cddfuse', 'didfuse'"):
        s.replace({"convention": "nope"})
    s = s.replace({"convention": "didfuse"})
    record = task.metrics_record(s, task.test_data(None, s).scoring)
    assert record["convention"] == "didfuse" and "column means" in record["convention_note"]


def test_evaluate_predictions_with_a_convention_records_it(tmp_path):
    root = tmp_path / "F"
    write_fusion_folder(root / "test", "test", count=2, size=32)
    preds = tmp_path / "fused"
    shutil.copytree(root / "test" / "vi", preds)
    scores = {}
    for name in ("cddfuse", "didfuse"):
        out = tmp_path / name
        assert run(evaluate_main, ["--task", "fusion", "--predictions", str(preds), "--data", str(root),
                                   "--convention", name, "--out", str(out)]) == 0
        scores[name] = json.loads((out / "metrics.json").read_text())
        assert scores[name]["convention"] == name
    task = get_task("fusion")
    rows, _ = task.score_predictions(str(preds), str(root), task.settings("train").replace({"convention": "didfuse"}))
    assert scores["didfuse"]["sd"] == pytest.approx(sum(r["sd"] for r in rows) / 2, rel=1e-9)
    assert scores["didfuse"]["sd"] != pytest.approx(scores["cddfuse"]["sd"], rel=1e-6)
    assert scores["didfuse"]["en"] == scores["cddfuse"]["en"]


def test_evaluate_refuses_an_unknown_convention(tmp_path, capsys):
    root = tmp_path / "F"
    write_fusion_folder(root / "test", "test", count=1, size=16)
    code = run(evaluate_main, ["--task", "fusion", "--predictions", str(root / "test" / "vi"), "--data", str(root),
                               "--convention", "nope", "--out", str(tmp_path / "o")])
    assert code != 0 and "convention" in capsys.readouterr().err
