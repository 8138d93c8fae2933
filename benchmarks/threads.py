"""CPU threads: the same tiny search alone and beside a concurrent job, for several thread settings.

    python benchmarks/threads.py                 # 4 settings x (alone, loaded), 1 repeat each
    python benchmarks/threads.py --repeats 3 --steps 6

Each row runs ``search.py --task classification --channels 4 --layers 3 --batch-size 4
--max-steps STEPS --device cpu`` in a fresh process and reports its wall time and CPU time (user +
system of the child). "loaded" runs it while a concurrent job keeps every core busy (one process
per core multiplying 256x256 matrices with numpy in a loop, single-threaded each; the job is
stopped when the search ends). Settings:

* ``torch default``: no flag, no environment variable (torch uses one thread per core, OpenMP's
  default wait policy: idle threads spin before they sleep);
* ``--threads 1``, ``--threads N`` (N = cores): the flag of the commands;
* ``--threads auto``: the commands' default (see ``runtime.threads``).

Every "alone" cell runs before the first "loaded" one, so the concurrent job's trace in the load
average does not fall on them; the table shows the thread count each run chose (``auto`` reads the
load average, which still holds the earlier runs for a minute or so). Times vary with the machine's
load; compare rows of one run, side by side.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BURNER = ("import numpy as np, time\n"
          "a = np.random.rand(256, 256)\n"
          "end = time.time() + {seconds}\n"
          "while time.time() < end:\n"
          "    a = (a @ a) / 256.0\n")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run(flags: list[str], steps: int, loaded: bool, env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s, threads it ran with) of one tiny search."""
    burners = []
    clean = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if loaded:
        burners = [subprocess.Popen([sys.executable, "-c", BURNER.format(seconds=1200)], env={**os.environ, **clean},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(_cores())]
        time.sleep(1.0)
    try:
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, str(ROOT / "search.py"), "--task", "classification", "--channels", "4",
                   "--layers", "3", "--batch-size", "4", "--max-steps", str(steps), "--device", "cpu",
                   "--out", str(Path(out) / "run"), *flags]
            cpu0, t0 = _child_cpu(), time.perf_counter()
            done = subprocess.run(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            wall, cpu = time.perf_counter() - t0, _child_cpu() - cpu0
            if done.returncode != 0:
                raise SystemExit(f"error: {' '.join(cmd)} failed: {done.stderr.strip().splitlines()[-1:]}")
    finally:
        for b in burners:
            b.kill()
            b.wait()
    found = re.search(r"\((\d+) threads?\b", done.stdout)  # the run's first line: "(2 threads (auto), ..."
    return wall, cpu, found.group(1) if found else "?"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4, help="search steps per run (default 4)")
    p.add_argument("--repeats", type=int, default=1, help="runs per cell; the median is shown (default 1)")
    a = p.parse_args(argv)
    n = _cores()
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    settings = [("torch default", ["--threads", "torch"]), ("--threads 1", ["--threads", "1"]),
                (f"--threads {n}", ["--threads", str(n)]), ("--threads auto (the default)", [])]
    print(f"{n} cores; tiny classification search, {a.steps} steps; wall / CPU seconds (median of {a.repeats})")
    cells: dict[str, list[str]] = {name: [] for name, _ in settings}
    for loaded in (False, True):  # all alone cells first
        for name, flags in settings:
            runs = sorted(_run(flags, a.steps, loaded, base) for _ in range(a.repeats))
            wall, cpu, _ = runs[len(runs) // 2]
            threads = "/".join(sorted({r[2] for r in runs}))
            cells[name] += [threads, f"{wall:.1f}", f"{cpu:.1f}"]
            print(f"  {name}, {'loaded' if loaded else 'alone'}: {threads} threads, wall {wall:.1f} s, CPU {cpu:.1f} s",
                  file=sys.stderr, flush=True)
    print("| setting | alone: threads | wall | CPU | loaded: threads | wall | CPU |\n|---|---|---|---|---|---|---|")
    for name, _ in settings:
        print(f"| {name} | " + " | ".join(cells[name]) + " |", flush=True)


if __name__ == "__main__":
    main()
