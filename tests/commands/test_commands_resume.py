"""Checkpoints you can resume from: --save-every, kill -9 then --resume equals an uninterrupted
run, SIGTERM writes a checkpoint, --resume without a checkpoint starts there, --force starts clean."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from commands.errors import run
from commands.search import main as search_main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--task", "lowlight", "--batch-size", "2", "--crop", "16", "--iem-stages", "1", "--nrm-cells", "1",
        "--nrm-channels", "3", "--seed", "0"]
SEARCH = [*TINY, "--nrm-every", "2"]


def _cmd(script: str, *args: str) -> list[str]:
    return [sys.executable, str(ROOT / script), *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _step(folder: Path) -> int:
    try:
        return int(torch.load(folder / "checkpoint.pt", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - not written yet
        return -1


def _kill_after(args: list[str], folder: Path, at_least: int) -> None:
    """Start ``args``, kill -9 it once its checkpoint has reached ``at_least`` steps."""
    proc = subprocess.Popen(args, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while _step(folder) < at_least and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert at_least <= _step(folder), "the run ended before it could be killed"


def _same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_two_group_darts2_search(tmp_path):
    args = [*SEARCH, "--max-steps", "8", "--method", "darts2"]
    subprocess.run(_cmd("search.py", *args, "--out", str(tmp_path / "A")), cwd=ROOT, env=_env(), check=True,
                   capture_output=True)
    _kill_after(_cmd("search.py", *args, "--save-every", "1", "--out", str(tmp_path / "B")), tmp_path / "B", 3)
    done = subprocess.run(_cmd("search.py", *args, "--resume", "--out", str(tmp_path / "B")), cwd=ROOT, env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a = torch.load(tmp_path / "A" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "B" / "checkpoint.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 8
    assert _same_state(a["supernet"], b["supernet"])
    assert (tmp_path / "A" / "genotype.json").read_text() == (tmp_path / "B" / "genotype.json").read_text()


@pytest.mark.slow
def test_kill_9_then_resume_equals_an_uninterrupted_training(tmp_path):
    genotype = str(ROOT / "restoration" / "lowlight" / "ruas_reference.json")
    args = [*TINY, "--genotype", genotype, "--max-steps", "10", "--epochs", "2"]
    subprocess.run(_cmd("train.py", *args, "--out", str(tmp_path / "A")), cwd=ROOT, env=_env(), check=True,
                   capture_output=True)
    _kill_after(_cmd("train.py", *args, "--save-every", "1", "--out", str(tmp_path / "B")), tmp_path / "B", 4)
    done = subprocess.run(_cmd("train.py", *TINY, "--resume", "--out", str(tmp_path / "B")), cwd=ROOT, env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a = torch.load(tmp_path / "A" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "B" / "checkpoint.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 10 and _same_state(a["state_dict"], b["state_dict"])
    ma = torch.load(tmp_path / "A" / "model.pt", weights_only=True)
    mb = torch.load(tmp_path / "B" / "model.pt", weights_only=True)
    assert ma["best_metric"] == mb["best_metric"] and _same_state(ma["state_dict"], mb["state_dict"])


@pytest.mark.slow
def test_sigterm_stops_at_a_step_boundary_and_writes_the_checkpoint(tmp_path):
    out = tmp_path / "R"
    proc = subprocess.Popen(_cmd("search.py", *SEARCH, "--max-steps", "500", "--save-every", "1", "--out", str(out)),
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while _step(out) < 1 and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "SIGTERM" in stderr and "--resume" in stdout
    assert 1 <= _step(out) < 500


def test_save_every_resume_without_checkpoint_and_force(tmp_path, capsys):
    out = tmp_path / "R"
    out.mkdir()
    (out / "config.json").write_text("{}")  # a start killed before its first checkpoint
    assert run(search_main, [*SEARCH, "--max-steps", "2", "--resume", "--out", str(out)]) == 0
    assert "starting the run there" in capsys.readouterr().out and _step(out) == 2
    (out / "notes.txt").write_text("mine")
    assert run(search_main, [*SEARCH, "--max-steps", "1", "--force", "--out", str(out)]) == 0
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and rows[1].startswith("1,")  # header + one row: the old rows are gone
    assert (out / "notes.txt").read_text() == "mine"  # --force removes only what the command writes


def test_lower_optimizer_adam_with_darts2_runs(tmp_path):
    out = tmp_path / "R"
    assert run(search_main, [*SEARCH, "--max-steps", "1", "--lower-optimizer", "adam", "--out", str(out)]) == 0
    assert _step(out) == 1


def test_lower_optimizer_without_a_differentiable_rule_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    import bilevel.lower_step

    monkeypatch.setattr(bilevel.lower_step, "RULES", (torch.optim.SGD,))  # as if Adam had no rule
    code = run(search_main, [*SEARCH, "--max-steps", "1", "--lower-optimizer", "adam", "--out", str(tmp_path / "R")])
    err = capsys.readouterr().err
    (line,) = [x for x in err.splitlines() if "error" in x]
    assert code == 2 and line.startswith("error: ") and "not Adam" in line and "--method darts1" in line
    assert not (tmp_path / "R").exists()  # a start that fails at its first step leaves no folder behind


def test_run_files_follow_the_umask_and_evaluate_does_not_offer_resume(tmp_path):
    from commands.errors import UserError
    from commands.runs import check_folder, write_json

    from datasets.io import write_image
    from nas.genotype import Genotype
    from nas.plot import plot_genotype

    genotype = Genotype("derain", {"cell": (("conv_3x3", 0),)}, {"cell": (1,)})
    for mask, mode in ((0o022, 0o644), (0o077, 0o600)):
        old = os.umask(mask)
        try:  # every writer of a run folder: JSON, images, genotype JSON and its picture
            write_json(tmp_path / "a.json", {})
            write_image(tmp_path / "a.png", torch.zeros(3, 4, 4))
            genotype.save(tmp_path / "g.json")
            assert plot_genotype(genotype, tmp_path / "g.png")
            for name in ("a.json", "a.png", "g.json", "g.png"):
                assert (tmp_path / name).stat().st_mode & 0o777 == mode, name  # mkstemp alone gives 0600
        finally:
            os.umask(old)
        for name in ("a.png", "g.json", "g.png"):
            (tmp_path / name).unlink()
    with pytest.raises(UserError) as info:
        check_folder(tmp_path, resume=False, force=False, can_resume=False)
    assert "--resume" not in str(info.value) and "--force" in str(info.value)
