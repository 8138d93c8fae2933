"""--resume with flags: a setting that differs from the checkpoint's is a one-line error naming the
flag and both values (nothing written is touched); a budget flag is taken, with one line saying so."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from commands.errors import UserError, run
from commands.runs import resumed_settings
from commands.train import main as train_main
from tasks.registry import get_task

ROOT = Path(__file__).resolve().parents[2]
GENOTYPE = str(ROOT / "restoration" / "lowlight" / "ruas_reference.json")
TINY = ["--task", "lowlight", "--batch-size", "2", "--crop", "16", "--iem-stages", "1", "--nrm-cells", "1",
        "--nrm-channels", "3", "--seed", "0"]


def _args(**given) -> argparse.Namespace:
    """The namespace search.py would parse for ``--task lowlight --resume`` plus ``given``."""
    base = dict(task="lowlight", resume=True, out="R", config=None, option=[], pairs=None, data=None,
                batch_size=None, epochs=None, max_steps=None, save_every=None, lr=None, method=None)
    return argparse.Namespace(**{**base, **given})


def _ckpt(**settings) -> dict:
    task = get_task("lowlight")
    s = task.settings("search").replace({"method": "darts2", "method_options": {"iters": 5}, **settings})
    return {"kind": "search", "task": "lowlight", "config": s.to_dict()}


def test_a_differing_setting_names_the_flag_and_both_values():
    task = get_task("lowlight")
    with pytest.raises(UserError) as info:
        resumed_settings(task, _ckpt(batch_size=4), _args(batch_size=2, lr=0.5))
    msg = str(info.value)
    assert msg.startswith("--batch-size 2 (the run has 4) and --lr 0.5 (the run has ")
    assert "R/checkpoint.pt" in msg and "drop them" in msg and "--out" in msg


def test_equal_settings_pass_silently_and_budget_flags_are_taken_with_a_line(capsys):
    task = get_task("lowlight")
    s = resumed_settings(task, _ckpt(batch_size=4, epochs=3), _args(batch_size=4, epochs=5, max_steps=7))
    assert (s.batch_size, s.epochs, s.max_steps) == (4, 5, 7)
    out = capsys.readouterr().out.splitlines()
    assert out == ["resuming with --epochs 5 (the checkpoint had 3)",
                   "resuming with --max-steps 7 (the checkpoint had none)"]


def test_options_config_keys_and_paths_are_compared_too(tmp_path, monkeypatch):
    task = get_task("lowlight")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    ckpt = _ckpt(data="data")
    resumed_settings(task, ckpt, _args(option=[("iters", 5)], data="./data"))  # the same option, the same folder
    with pytest.raises(UserError, match=r"^--option iters=10 \(the run has iters=5\)"):
        resumed_settings(task, ckpt, _args(option=[("iters", 10)]))
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"batch_size": 8}))
    with pytest.raises(UserError, match=r"^batch_size of --config .*c\.json 8 \(the run has 4\)"):
        resumed_settings(task, ckpt, _args(config=str(config)))


@pytest.mark.slow
def test_resumed_train_run_refuses_another_batch_size_and_keeps_its_files(tmp_path, capsys):
    out = tmp_path / "T"
    assert run(train_main, [*TINY, "--genotype", GENOTYPE, "--max-steps", "1", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert run(train_main, [*TINY[:2], "--batch-size", "4", "--resume", "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --batch-size 4 (the run has 2): a resumed run keeps the settings of ")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    other = tmp_path / "other.json"
    genotype = json.loads(Path(GENOTYPE).read_text())
    other.write_text(json.dumps({**genotype, "iem": [["conv_1x1", i] for _, i in genotype["iem"]]}))
    assert run(train_main, [*TINY[:2], "--genotype", str(other), "--resume", "--out", str(out)]) == 2
    assert "--genotype names another genotype than the run being resumed" in capsys.readouterr().err
    assert run(train_main, [*TINY, "--genotype", GENOTYPE, "--max-steps", "2", "--resume", "--out", str(out)]) == 0
    assert "resuming with --max-steps 2 (the checkpoint had 1)" in capsys.readouterr().out
