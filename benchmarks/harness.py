"""Measurement harness: accuracy, median time after warm-up, peak memory, table and files.

Time: ``time.perf_counter`` around one hypergradient call (CUDA synchronised), after one warm-up
call; the median over at least ``repeats`` calls (more for cheap calls, until each runner has
been timed for ``min_time`` seconds, at most 200 calls). The runners of one setting (ours and
the peers) are timed round-robin, one call each per round, so that load from other processes
hits all of them alike. Beside it, the median process CPU time (``time.process_time``) of the
same calls: with one thread, compute time net of waiting for a core, far steadier than wall
time on a shared machine. ``reset()`` (putting the start point back) runs before every call and
is not timed.

Peak memory, measured the same way for every library, in the warm-up call:
  * CPU: the peak of (bytes allocated - bytes freed) by tensor allocations during the call, read
    from ``torch.profiler``'s memory events (``profile_memory=True``). It counts everything the
    call allocates (graphs kept for backward, activations, solver vectors), nothing allocated
    before it, and no Python objects.
  * CUDA: ``torch.cuda.max_memory_allocated() - memory_allocated()`` before the call.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field

import torch

from datasets.atomic import atomic_write_text


@dataclass
class Row:
    problem: str
    T: int | str
    K: int | str
    method: str
    library: str
    rel_err: float = math.nan  # vs the problem's exact/reference hypergradient
    vs_ours: float = math.nan  # relative difference to ours at the same setting
    time_ms: float = math.nan
    cpu_ms: float = math.nan  # median process CPU time of the same calls
    peak_mem: float = math.nan  # bytes
    x_ours: float = math.nan  # time / ours' time, same setting
    note: str = ""
    times_ms: list = field(default_factory=list)
    cpus_ms: list = field(default_factory=list)


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA; nothing to wait for on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pick_device(ap, choice: str) -> torch.device:
    """``--device auto|cpu|cuda`` of the benchmark scripts (``ap.error`` when cuda is missing)."""
    if choice == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device is available")
    return torch.device("cuda" if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()) else "cpu")


def flat(g: dict, keys) -> torch.Tensor:
    return torch.cat([g[k].detach().double().cpu().reshape(-1) for k in keys])


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


@contextlib.contextmanager
def quiet_stderr():
    """The profiler's C++ side prints device-probe errors on a CUDA build without a GPU."""
    try:
        fd = os.dup(2)
    except OSError:  # pragma: no cover
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)


def peak_memory(call, device: torch.device) -> float:
    """Peak bytes allocated by ``call()`` beyond what was allocated before it (module docstring)."""
    if device.type == "cuda":
        sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        sync(device)
        return float(torch.cuda.max_memory_allocated(device) - base)
    from torch.profiler import ProfilerActivity, profile
    with quiet_stderr():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            call()
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError:  # pragma: no cover - profiler internals moved
        return math.nan
    mem = sorted((e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]")
    cur = peak = 0
    for _, nbytes in mem:
        cur += nbytes
        peak = max(peak, cur)
    return float(peak)


def measure(runners: dict, rows: dict, spec, repeats: int, memory: bool = True,
            min_time: float = 0.5, max_rounds: int = 200) -> None:
    """Fill ``rows[lib]`` for every runner in ``runners`` (lib -> Runner).

    The first (warm-up) call of each runner is the one whose result is checked and whose peak
    memory is recorded; then timed calls, round-robin over the runners: at least ``repeats``
    rounds, more (up to ``max_rounds``) while any runner has spent less than ``min_time`` s, so
    that cheap calls get a median over many samples."""
    dev = spec.device
    keys = list(spec.reference)
    ref = flat(spec.reference, keys)
    outs, alive = {}, {}
    for lib, r in runners.items():
        got = []
        try:
            r.reset()
            if memory:
                rows[lib].peak_mem = peak_memory(lambda: got.append(r()), dev)
            else:
                got.append(r())
            outs[lib] = flat(got[0], keys)
            sync(dev)
            alive[lib] = r
        except Exception as e:  # a peer failing at run time gets a row saying so
            rows[lib].note = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:90]}"
    rounds = 0
    while alive and (rounds < repeats or (rounds < max_rounds and min(
            sum(rows[lib].times_ms) for lib in alive) < 1e3 * min_time)):
        rounds += 1
        for lib, r in alive.items():
            r.reset()
            sync(dev)
            t0, c0 = time.perf_counter(), time.process_time()
            r()
            sync(dev)
            rows[lib].times_ms.append(1e3 * (time.perf_counter() - t0))
            rows[lib].cpus_ms.append(1e3 * (time.process_time() - c0))
    for lib in alive:
        row = rows[lib]
        row.rel_err = rel(outs[lib], ref)
        row.time_ms = statistics.median(row.times_ms)
        row.cpu_ms = statistics.median(row.cpus_ms)
        if "ours" in outs and lib != "ours":
            row.vs_ours = rel(outs[lib], outs["ours"])
    if "ours" in alive:
        for lib in alive:
            rows[lib].x_ours = rows[lib].time_ms / rows["ours"].time_ms


# ----------------------------------------------------------------------------- output
def _fmt(v, kind: str) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "-"
    if kind == "e":
        return f"{v:.1e}"
    if kind == "ms":
        return f"{v:.3g}" if v < 100 else f"{v:.0f}"
    if kind == "mem":
        for unit, s in (("G", 2**30), ("M", 2**20), ("K", 2**10)):
            if v >= s:
                return f"{v / s:.1f}{unit}"
        return f"{v:.0f}B"
    if kind == "x":
        return f"{v:.2f}"
    return str(v)


COLS = [("problem", "problem", "s", 9), ("T", "T", "s", 4), ("K", "K", "s", 4),
        ("method", "method", "s", 8), ("library", "library", "s", 8),
        ("rel_err", "rel.err", "e", 8), ("vs_ours", "vs ours", "e", 8),
        ("time_ms", "ms", "ms", 7), ("cpu_ms", "cpu ms", "ms", 7), ("x_ours", "x ours", "x", 6), ("peak_mem", "peak mem", "mem", 8),
        ("note", "note", "s", 0)]


def table(rows: list[Row]) -> str:
    head = " ".join(f"{title:<{w}}" if kind == "s" else f"{title:>{w}}" for _, title, kind, w in COLS)
    lines = [head.rstrip(), "-" * len(head)]
    last = None
    for r in rows:
        if last is not None and (r.problem, r.method, r.T) != last:
            lines.append("")
        last = (r.problem, r.method, r.T)
        cells = []
        for key, _, kind, w in COLS:
            v = getattr(r, key)
            text = _fmt(v, kind) if kind != "s" else str(v)
            cells.append(f"{text:<{w}}" if kind == "s" else f"{text:>{w}}")
        lines.append(" ".join(cells).rstrip())
    return "\n".join(lines)


def slopes(rows: list[Row], problem: str) -> list[dict]:
    """Least-squares slope of time and peak memory vs T, per (method, library)."""
    groups: dict = {}
    for r in rows:
        if r.problem == problem and isinstance(r.T, int) and not math.isnan(r.time_ms):
            groups.setdefault((r.method, r.library), []).append(r)
    out = []
    for (m, lib), rs in groups.items():
        if len({r.T for r in rs}) < 2:
            continue
        ts = [float(r.T) for r in rs]
        tbar = sum(ts) / len(ts)
        den = sum((t - tbar) ** 2 for t in ts)

        def fit(vals):
            if any(math.isnan(v) for v in vals):
                return math.nan
            vbar = sum(vals) / len(vals)
            return sum((t - tbar) * (v - vbar) for t, v in zip(ts, vals)) / den
        out.append({"method": m, "library": lib, "T": sorted({r.T for r in rs}),
                    "ms_per_step": fit([r.time_ms for r in rs]),
                    "cpu_ms_per_step": fit([r.cpu_ms for r in rs]),
                    "bytes_per_step": fit([r.peak_mem for r in rs])})
    return out


def slope_table(fits: list[dict]) -> str:
    lines = [f"{'method':8} {'library':8} {'ms/step':>8} {'cpu ms/step':>11} {'mem/step':>9}  T values", "-" * 62]
    for f in fits:
        mem = f["bytes_per_step"]
        mtxt = "-" if math.isnan(mem) else (_fmt(mem, "mem") if mem >= 0 else "-" + _fmt(-mem, "mem"))
        lines.append(f"{f['method']:8} {f['library']:8} {f['ms_per_step']:8.3f} {f['cpu_ms_per_step']:11.3f} "
                     f"{mtxt:>9}  {f['T']}")
    return "\n".join(lines)


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def write(out_dir: str, rows: list[Row], meta: dict) -> None:
    flat_rows = []
    for r in rows:
        d = asdict(r)
        d["times_ms"] = " ".join(f"{t:.3f}" for t in r.times_ms)
        d["cpus_ms"] = " ".join(f"{t:.3f}" for t in r.cpus_ms)
        flat_rows.append(d)
    write_rows(out_dir, "hypergrad", [k for k, *_ in COLS] + ["times_ms", "cpus_ms"], flat_rows,
               {**meta, "rows": [asdict(r) for r in rows]})


def write_rows(out_dir: str, name: str, fields: list[str], rows: list[dict], meta: dict) -> None:
    """``name.csv`` (``fields`` of each row dict) and ``name.json`` (``meta``, NaN/inf as null)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(os.path.join(out_dir, f"{name}.csv"), buf.getvalue(), parents=True)
    text = json.dumps(_clean(meta), indent=1, default=str)
    atomic_write_text(os.path.join(out_dir, f"{name}.json"), text, parents=True)
