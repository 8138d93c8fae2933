"""``--threads``: how many CPU threads torch uses, chosen so that a shared machine is not oversubscribed.

``auto`` (the default): ``OMP_NUM_THREADS`` when the environment sets it, else the cores this
process may run on, less the cores other processes keep busy, at least 1. Busy cores: the larger of
the 1-minute load average (rounded) and the runnable threads of other processes right now (the
median of a few reads of ``/proc/loadavg`` over 50 ms, where it exists): the load average lags a
job that started seconds ago. A run on an idle machine gets every
core; a run beside other jobs does not spin threads that wait for cores those jobs hold (torch's
OpenMP threads spin while they wait: on a busy 2-core machine two threads ran a tiny search 5x
slower than one). ``torch``: leave torch's own default (one thread per core). A number: exactly
that many threads. ``benchmarks/threads.py`` measures the choices side by side.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

__all__ = ["add_threads_flag", "apply_threads", "auto_threads"]

HELP = ("CPU threads of torch: a number, 'auto' (default: the cores not kept busy by other processes, by the "
        "load average and the threads running at start; every core on an idle machine) or 'torch' "
        "(torch's default, one per core)")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def runnable_now(path: str = "/proc/loadavg", reads: int = 5, pause: float = 0.01) -> int | None:
    """Runnable threads of other processes now: median over ``reads`` of ``/proc/loadavg``'s 4th field
    (``running/total``) less this thread; None where the file does not exist or cannot be parsed."""
    counts = []
    for k in range(reads):
        try:
            with open(path) as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)
        except (OSError, ValueError, IndexError):
            return None
        if k + 1 < reads:
            time.sleep(pause)
    return max(0, int(statistics.median(counts)))


def auto_threads(cores: int | None = None, load: float | None = None) -> int:
    """``cores - round(load)``, clipped to ``[1, cores]`` (defaults: this process's cores; busy cores:
    the larger of the 1-minute load average and ``runnable_now()``)."""
    cores = _cores() if cores is None else cores
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average on this platform
            load = 0.0
        load = max(load, runnable_now() or 0)
    return max(1, min(cores, cores - int(round(load))))


def _threads_value(text: str) -> str:
    if text in ("auto", "torch"):
        return text
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, 'auto' or 'torch', got {text!r}")
    return str(n)


def add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=_threads_value, default="auto", metavar="N|auto|torch", help=HELP)


def _from_environment() -> int | None:
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return None
    return n if n >= 1 else None


def apply_threads(value: str) -> str:
    """Set torch's intra-op threads from a ``--threads`` value; returns a phrase for the run's first line."""
    if value == "torch":
        return f"{torch.get_num_threads()} threads (torch default)"
    n = (_from_environment() or auto_threads()) if value == "auto" else int(value)
    torch.set_num_threads(n)
    return f"{n} thread{'s' if n > 1 else ''}" + (" (auto)" if value == "auto" else "")
