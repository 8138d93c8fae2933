"""``--threads``: the auto rule, the flag's values, and that the commands apply it."""
import argparse

import pytest
import torch

from commands.threads import add_threads_flag, apply_threads, auto_threads


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
