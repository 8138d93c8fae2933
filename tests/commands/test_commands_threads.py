"""``--threads``: the auto rule, the flag's values, and that the commands apply it."""
import argparse

import pytest
import torch

from runtime.threads import add_threads_flag, apply_threads, auto_threads


@pytest.mark.parametrize("cores,load,expected", [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 5.0, 1), (16, 3.2, 13),
                                                 (4, -1.0, 4)])
def test_auto_uses_the_cores_other_processes_leave_free(cores, load, expected):
    assert auto_threads(cores, load) == expected


def test_flag_values_and_apply(monkeypatch):
    parser = argparse.ArgumentParser()
    add_threads_flag(parser)
    assert parser.parse_args([]).threads == "auto"
    assert parser.parse_args(["--threads", "3"]).threads == "3"
    for bad in ("0", "x", "-2"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--threads", bad])
    before = torch.get_num_threads()
    try:
        assert apply_threads("1") == "1 thread" and torch.get_num_threads() == 1
        assert apply_threads("torch").endswith("(torch default)") and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        assert apply_threads("auto").endswith("(auto)")
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert apply_threads("auto") == "3 threads (auto)" and torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_runnable_now_reads_the_running_field_less_this_thread(tmp_path):
    from runtime.threads import runnable_now
    f = tmp_path / "loadavg"
    f.write_text("0.10 0.20 0.30 3/120 999\n")
    assert runnable_now(str(f), reads=3, pause=0.0) == 2
    f.write_text("garbage\n")
    assert runnable_now(str(f)) is None
    assert runnable_now(str(tmp_path / "missing")) is None


def test_auto_counts_a_job_started_seconds_ago(monkeypatch):
    """The 1-minute load average is still 0 seconds after a job starts; the running count is not."""
    import runtime.threads as th
    monkeypatch.setattr(th.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(th, "runnable_now", lambda *a, **k: 2)
    assert th.auto_threads(cores=2) == 1
    monkeypatch.setattr(th, "runnable_now", lambda *a, **k: 0)
    assert th.auto_threads(cores=2) == 2
