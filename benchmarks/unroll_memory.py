"""Memory and time of checkpointed unrolling (``checkpoint_every``) against the whole graph.

On problem (c) of ``benchmarks/problems.py`` (small CNN, per-tensor log weight decays, float32)
it computes the hypergradient of each unrolled method at ``T`` lower steps with
``checkpoint_every=None`` (every step's graph kept) and ``checkpoint_every=K`` (``K`` = round(sqrt
T) and T/5 unless given), and prints one table:

    method, T, K, saved peak (the most bytes autograd graphs held at once, ``saved_tensor_bytes``),
    x less (whole-graph peak / this peak), checkpoints (bytes of the lower states kept between
    segments, which autograd does not hold), ms (median wall time), x time (median of the per-round
    ratios to the whole-graph run of the same round: the variants run in turn, side by side),
    cpu ms and x cpu (the same for the process's CPU time: steadier on a shared machine; on CUDA
    only the wall time means anything),
    rel.diff (relative difference of the hypergradient to the whole-graph one), and, on CUDA, the
    allocator's peak over the call.

Usage::

    python benchmarks/unroll_memory.py --threads 1           # rad at T = 50, 200, K = sqrt(T) and T/5
    python benchmarks/unroll_memory.py --methods rad,bda,iaptt,trad --lower-optimizer adam --rounds 7
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

import bilevel  # noqa: E402
from benchmarks.machine import cpu_model  # noqa: E402
from benchmarks import problems  # noqa: E402
from benchmarks.harness import sync  # noqa: E402
from bilevel.memory import saved_tensor_bytes  # noqa: E402


def build(spec: problems.Spec, lower_optimizer: str):
    """The CNN problem as a ``BilevelProblem`` (fresh tensors at the start point) and its lower optimizer."""
    module = spec.lower_module()
    names = [n for n, _ in module.named_parameters()]
    lower = {n: spec.y0[n].detach().clone().requires_grad_(True) for n in names}
    upper = {k: v.detach().clone().requires_grad_(True) for k, v in spec.x0.items()}

    def f(lo, up, batch):
        return spec.lower_loss(lambda z: bilevel.call(module, lo, z), [lo[n] for n in names], up, batch)

    def F(lo, up, batch):
        return spec.upper_loss(lambda z: bilevel.call(module, lo, z), [lo[n] for n in names], up, batch)

    problem = bilevel.BilevelProblem(lower=lower, upper=upper, lower_loss=f, upper_loss=F)
    opt = None
    if lower_optimizer == "sgd":
        opt = torch.optim.SGD(list(lower.values()), lr=spec.lr, momentum=0.9)
    elif lower_optimizer == "adam":
        opt = torch.optim.Adam(list(lower.values()), lr=1e-3)
    if opt is not None:  # one real step, so the rule starts from a non-empty state
        opt.zero_grad()
        f(lower, {k: v.detach() for k, v in upper.items()}, spec.lower_batch).backward()
        opt.step()
        opt.zero_grad()
    return problem, opt


def options(method: str, T: int, K: int | None, lr: float | None) -> dict:
    opts = {"steps": T, "lr": lr, "checkpoint_every": K}
    if method == "trad":
        opts["truncate"] = T  # every step differentiated, the first run without a graph: none
    if method == "bda":
        opts.update(upper_lr=lr or 1e-3, mu=0.5)
    if method == "iaptt":
        opts["auxiliary_init"] = False
    return opts


def measure(spec, method: str, T: int, K: int | None, args, device) -> dict:
    """One call metered (saved bytes, CUDA peak) and the hypergradient, on a fresh problem."""
    problem, opt = build(spec, args.lower_optimizer)
    lr = None if opt is not None else spec.lr
    m = bilevel.make_method(method, options(method, T, K, lr))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    with saved_tensor_bytes() as meter:
        g = bilevel.hypergradient(problem, m, spec.lower_batch, spec.upper_batch, lower_optimizer=opt)
    sync(device)
    cuda_peak = torch.cuda.max_memory_allocated(device) - base if device.type == "cuda" else None
    state = sum(t.numel() * t.element_size() for t in problem.lower.values())
    if opt is not None:
        state += sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
                     if torch.is_tensor(v) and v.dim() > 0)
    steps = int(g.diagnostics.get("pessimistic_step", T))  # iaptt differentiates its first k* steps
    kept = 0 if K is None or K >= steps else (math.ceil(steps / K) - 1) * state  # all segments' starts but the last
    return {"grad": {k: v.detach().double().cpu() for k, v in g.items()}, "peak": meter.peak,
            "cuda": cuda_peak, "kept": kept, "problem": (problem, opt, m)}


def timed(entry: dict, spec, device) -> tuple[float, float]:
    """Wall and process CPU seconds of one call."""
    problem, opt, m = entry["problem"]
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    bilevel.hypergradient(problem, m, spec.lower_batch, spec.upper_batch, lower_optimizer=opt)
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0


def interval(token: str, T: int) -> int:
    """``K`` from ``sqrt`` (round(sqrt(T))), ``T/N`` (T // N) or a number."""
    if token == "sqrt":
        return max(1, round(math.sqrt(T)))
    if token.startswith("T/"):
        return max(1, T // int(token[2:]))
    return int(token)


def rel_diff(a: dict, b: dict) -> float:
    num = sum(float((a[k] - b[k]).pow(2).sum()) for k in b) ** 0.5
    den = sum(float(b[k].pow(2).sum()) for k in b) ** 0.5
    return num / max(den, 1e-300)


def header(device: torch.device) -> str:
    cpu = cpu_model()
    gpu = f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""
    return (f"machine: {platform.node()} ({cpu}, {os.cpu_count()} logical CPUs{gpu}); torch {torch.__version__}; "
            f"threads: {torch.get_num_threads()}; device: {device}; "
            f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="rad", help="comma-separated: rad, trad, bda, iaptt (default rad)")
    ap.add_argument("--steps", default="50,200", help="comma-separated T (default 50,200)")
    ap.add_argument("--every", default="sqrt,T/5",
                    help="comma-separated K: a number, 'sqrt' (round(sqrt(T))) or 'T/N' (default sqrt,T/5)")
    ap.add_argument("--lower-optimizer", choices=("none", "sgd", "adam"), default="none",
                    help="none: plain steps of 1/L (default); sgd (momentum 0.9, lr 1/L) or adam (lr 1e-3)")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds, each both variants (default 5)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default torch's)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    spec = problems.cnn(device)
    print(header(device))
    print(f"problem: {spec.title} ({spec.info}); lower optimizer: {args.lower_optimizer}; rounds: {args.rounds}")
    cols = ["method", "T", "K", "saved peak", "x less", "checkpoints", "ms", "x time", "cpu ms", "x cpu",
            "rel.diff"]
    if device.type == "cuda":
        cols.append("cuda peak")
    rows = [cols]
    for method in args.methods.split(","):
        for T in (int(t) for t in args.steps.split(",")):
            ks = list(dict.fromkeys(interval(k, T) for k in args.every.split(",")))
            runs = {None: measure(spec, method, T, None, args, device)}
            runs.update({k: measure(spec, method, T, k, args, device) for k in ks})
            times: dict[int | None, list[tuple[float, float]]] = {k: [] for k in runs}
            for k in runs:  # warm-up
                timed(runs[k], spec, device)
            for _ in range(args.rounds):  # each round: every variant once, side by side
                for k in runs:
                    times[k].append(timed(runs[k], spec, device))
            whole = runs[None]
            for k, e in runs.items():
                row = [method, str(T), str(k), f"{e['peak'] / 2**20:.2f} MB",
                       f"{whole['peak'] / max(e['peak'], 1):.1f}", f"{e['kept'] / 2**10:.1f} KB"]
                for i in (0, 1):  # wall, then CPU: median time, median of the per-round ratios
                    row.append(f"{1e3 * statistics.median(t[i] for t in times[k]):.0f}")
                    row.append(f"{statistics.median(c[i] / w[i] for c, w in zip(times[k], times[None])):.2f}")
                row.append("-" if k is None else f"{rel_diff(e['grad'], whole['grad']):.1e}")
                if device.type == "cuda":
                    row.append(f"{e['cuda'] / 2**20:.1f} MB")
                rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
