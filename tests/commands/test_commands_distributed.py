"""Data-parallel search and training under torchrun (gloo on CPU): N processes with batch B end where
one process with batch N*B ends, a Ctrl-C'd run resumes under torchrun, evaluate.py refuses
torchrun; the shards of a seeded order are that order; without torchrun nothing changes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from commands.data import EpochSampler, loader
from commands.distributed import SharedStop, World, data_parallel
from commands.errors import run
from commands.evaluate import main as evaluate_main
from commands.search import main as search_main
from commands.train import main as train_main

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--task", "lowlight", "--crop", "16", "--iem-stages", "1", "--nrm-cells", "1", "--nrm-channels", "3",
        "--seed", "0", "--nrm-every", "2", "--threads", "1"]
GENOTYPE = str(ROOT / "restoration" / "lowlight" / "ruas_reference.json")


def _torchrun(script: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            str(ROOT / script), *args]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _step(folder: Path) -> int:
    try:
        return int(torch.load(folder / "checkpoint.pt", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - not written yet
        return -1


def _close(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.slow
def test_torchrun_search_stopped_and_resumed_equals_one_process_with_the_doubled_batch(tmp_path):
    """darts1 (linear in the batch): 2 processes x batch 2, Ctrl-C'd then --resume'd, = 1 x batch 4."""
    args = [*TINY, "--method", "darts1", "--max-steps", "16"]
    out = tmp_path / "ddp"
    proc = subprocess.Popen(_torchrun("search.py", *args, "--batch-size", "2", "--save-every", "1", "--out", str(out)),
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _step(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # Ctrl-C: torchrun forwards it to every process
    stdout, stderr = proc.communicate(timeout=120)
    assert "stopped at step" in stdout and "--resume" in stdout, stderr
    assert stdout.count("stopped at step") == 1  # rank 0 alone prints
    stopped = _step(out)
    assert 2 <= stopped < 16, "the run ended before it could be stopped"
    done = subprocess.run(_torchrun("search.py", *TINY, "--resume", "--out", str(out)), cwd=ROOT, env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "2 processes (gloo): batch 2 per process, 4 in all" in done.stdout.splitlines()[0]
    assert run(search_main, [*args, "--batch-size", "4", "--out", str(tmp_path / "one")]) == 0
    a = torch.load(out / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 16
    _close(a["supernet"], b["supernet"], atol=1e-6)


@pytest.mark.slow
def test_torchrun_training_equals_one_process_with_the_doubled_batch(tmp_path):
    args = [*TINY, "--genotype", GENOTYPE, "--max-steps", "6"]
    done = subprocess.run(_torchrun("train.py", *args, "--batch-size", "2", "--out", str(tmp_path / "ddp")),
                          cwd=ROOT, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in (tmp_path / "ddp").iterdir()} == {"model.pt", "checkpoint.pt", "config.json",
                                                               "metrics.csv", "samples.png"}
    assert run(train_main, [*args, "--batch-size", "4", "--out", str(tmp_path / "one")]) == 0
    a = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)
    _close(a["state_dict"], b["state_dict"], atol=1e-5)  # Adam divides by the gradient's size: round-off grows


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("start", [0, 6])
def test_shards_of_a_seeded_order_are_that_order(world, start):
    batch, n = 2, 23
    single = list(EpochSampler(n, seed=5, epoch=1, start=start))
    shards = [list(EpochSampler(n, seed=5, epoch=1, start=start, rank=r, world=world)) for r in range(world)]
    assert all(len(s) == len(single) // world for s in shards)
    for k in range(len(single) // (batch * world)):  # batch k of every shard = batch k of world*batch items
        together = [shards[r][k * batch + j] for j in range(batch) for r in range(world)]
        assert together == single[k * batch * world:(k + 1) * batch * world]


def test_sharded_loaders_resume_inside_an_epoch():
    data = TensorDataset(torch.arange(20))
    one = [b[0].tolist() for b in loader(data, 4, seed=1, epoch=0, skip_batches=1)]
    two = [[b[0].tolist() for b in loader(data, 2, seed=1, epoch=0, skip_batches=1, shard=(r, 2))] for r in (0, 1)]
    assert len(one) == len(two[0]) == len(two[1]) == 4
    for k, batch in enumerate(one):
        assert sorted(batch) == sorted(two[0][k] + two[1][k])


def test_without_torchrun_the_world_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with data_parallel(torch.device("cpu")) as world:
        assert not world.active and world.main and world.size == 1 and world.note(4) == ""
        t = torch.tensor([1.0, 2.0])
        world.average([t, None])
        world.barrier()
        assert t.tolist() == [1.0, 2.0] and world.any(True) and not world.any(False)

    class Signals:
        requested = False
    signals = Signals()
    stop = SharedStop(signals, World())
    signals.requested = True
    assert stop.requested  # one process: the signal counts at once, as before


def test_evaluate_under_torchrun_is_a_one_line_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run(evaluate_main, ["--checkpoint", str(tmp_path / "model.pt")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: evaluate.py runs in one process") and "torchrun" in line
