"""Time to target: a whole bilevel loop per library, until the upper objective reaches a target.

On the three problems of ``hypergrad.py`` (``problems.py``), every library (ours, and torchopt,
betty, BOAT, higher where installed) runs its own bilevel loop from the same start point (the
converged lower solution at the initial upper variables): per upper iteration ``T`` lower SGD
steps at ``spec.lr`` on one lower minibatch (4 fixed minibatches of 500 samples on (b), the whole
batch on (a)/(c)), a hypergradient, one Adam step of the upper variables (the same learning rate
for all). Each library runs a small sweep of methods and settings (``sweep``); the table shows
each library's fastest setting:

    time to target (process CPU seconds, one thread; wall seconds beside), upper iterations,
    peak memory, and the ratio to the fastest peer's CPU time (the aim: <= 0.5).

Targets (``FRACTION``; printed with the run), a share of the decrease from the start value F0:

* (a) ridge: the exact upper objective ``F(x, w*(x))`` (closed form) must close 99.9% of the gap to
  the optimum ``F*`` (L-BFGS on the closed form): ``F <= F0 - 0.999 (F0 - F*)``.
* (b) cleaning, (c) CNN: no known optimum. The upper loss at the loop's current variables on the
  whole upper batch must make 99% of the decrease of a long reference run, ``F_ref`` the lowest
  value of our ``cg`` loop (full batch, ``REFERENCE`` lower steps and CG iterations per upper
  iteration, ``--reference-steps`` iterations).

An early target (99% of the gap on (a), 90% of the decrease on (b)/(c)) is timed on the way and
tabled too: there a biased one-step hypergradient does as well as an exact one.

The loops of one problem run round-robin, one upper iteration each per round, so that the load
of a shared machine hits all of them alike; the objective is checked after every iteration,
outside the timed part. A loop stops at the target, at the problem's iteration limit, at
``--max-cpu`` CPU seconds, or once it has used ``--cut`` times the CPU time of the fastest loop
that reached the target; a loop that stops short is shown as "> t" (t: the time it ran, a lower
bound on its time to target), and a ratio against such a bound as "<"/">". Peak memory: a separate
run of the first ``minibatches + 1`` iterations (also the warm-up), as in ``harness.peak_memory``.

    python benchmarks/time_to_target.py --quick                   # ours only (peers: not installed)
    .venv-bench/bin/python benchmarks/time_to_target.py --quick --out runs/ttt   # with the peers
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch.func import functional_call  # noqa: E402

from benchmarks import harness, ours, problems  # noqa: E402
from benchmarks.hypergrad import PEERS  # noqa: E402
from benchmarks.peers import LoopPlan, NotRunnable  # noqa: E402
from benchmarks.target_report import Result, best_per_library, sweep_rows, table, verdicts  # noqa: E402
from benchmarks.warm_start import machine  # noqa: E402

S = problems.Setting
LIBRARIES = {"ours": ours, **PEERS}


@dataclass
class Case:
    """A problem's loop: builder, upper Adam learning rate, lower minibatches, iteration limits."""

    key: str
    build: Callable[[torch.device], problems.Spec]
    upper_lr: float
    minibatches: int
    max_steps: int
    quick_max_steps: int


CASES = {
    "a": Case("a", problems.ridge, 0.05, 1, 3000, 2000),
    "b": Case("b", problems.cleaning, 0.1, 4, 1500, 1000),
    "c": Case("c", problems.cnn, 0.1, 1, 600, 300),
}
#: the share of the decrease from F0 (to F* on (a), to the reference run's lowest value on (b)/(c))
FRACTION = {"a": (0.999, 0.99), "b": (0.99, 0.9), "c": (0.99, 0.9)}  # (the target, the early target)
#: the reference loop of (b)/(c): our cg, full batch, (lower steps T, CG iterations K)
REFERENCE = (10, 50)


def sweep(key: str, lr: float, quick: bool) -> dict[str, list[problems.Setting]]:
    """The settings each library tries on problem ``key`` (``lr``: the lower step ``1/L``): ours
    with warm-started solves and the stochastic single-loop methods; each peer its cheap settings
    (one lower step, 3-10 solver iterations from 0, a one-step unroll) and an accurate one (5 lower
    steps, 20 iterations)."""
    warm = {"warm_start": True}
    mine = [S("cg", 1, 5, warm), S("neumann", 1, 3, {**warm, "alpha": lr}), S("amigo", 1, 2),
            S("stocbio", 1, 5), S("soba"), S("ma_soba")]
    if key == "b":
        mine.append(S("saba"))  # SAGA memory over the lower minibatches
    ns = {"alpha": lr}
    peers = {
        "torchopt": [S("cg", 1, 3), S("neumann", 1, 10, ns), S("cg", 5, 20), S("rad", 1)],
        "betty": [S("neumann", 1, 3, ns), S("neumann", 1, 10, ns), S("neumann", 5, 20, ns), S("darts2", 1)],
        "boat": [S("cg", 1, 3), S("neumann", 1, 10, ns), S("cg", 5, 20), S("rad", 1)],
        "higher": [S("rad", 1), S("rad", 5), S("rad", 20)],
    }
    if quick and key == "c":  # a CNN iteration costs 10-100x more: three settings a library
        mine = [s for s in mine if s.method in ("neumann", "amigo", "soba")]
        peers = {lib: ss[:1] + ss[2:4] for lib, ss in peers.items()}
    return {"ours": mine, **peers}


def describe(s: problems.Setting) -> str:
    opts = ours.note(s.opts)
    parts = [s.method] + [f"{k}={v}" for k, v in (("T", s.T), ("K", s.K)) if v] + ([opts] if opts else [])
    return " ".join(parts)


# ----------------------------------------------------------------------------- objective, target
def objective(spec):
    """``value(lower, upper) -> float``: (a) the exact ``F(x, w*(x))``; else the upper loss at the
    given variables on the whole upper batch."""
    if spec.key == "a_ridge":
        X, y = spec.lower_batch["x"], spec.lower_batch["y"]
        Xv, yv = spec.upper_batch["x"], spec.upper_batch["y"]
        A, b = X.T @ X / len(y), X.T @ y / len(y)

        def exact(lower, upper):
            with torch.no_grad():
                w = torch.linalg.solve(A + torch.diag(upper["lam"].detach().exp()), b)
                return float(0.5 * ((Xv @ w - yv) ** 2).mean())
        return exact
    module = spec.lower_module()
    names = [n for n, _ in module.named_parameters()]

    def value(lower, upper):
        with torch.no_grad():
            lo = {n: lower[n].detach() for n in names}
            return float(spec.upper_loss(lambda z: functional_call(module, lo, (z,)), [lo[n] for n in names],
                                         {k: v.detach() for k, v in upper.items()}, spec.upper_batch))
    return value


def ridge_optimum(spec) -> float:
    """``F*`` of (a): L-BFGS on the closed-form upper objective (some decays go to 0)."""
    X, y = spec.lower_batch["x"], spec.lower_batch["y"]
    Xv, yv = spec.upper_batch["x"], spec.upper_batch["y"]
    lam = spec.x0["lam"].detach().clone().requires_grad_()

    def F():
        w = torch.linalg.solve(X.T @ X / len(y) + torch.diag(lam.exp()), X.T @ y / len(y))
        return 0.5 * ((Xv @ w - yv) ** 2).mean()
    opt = torch.optim.LBFGS([lam], lr=1, max_iter=500, tolerance_grad=1e-12, tolerance_change=0,
                            history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F()
        loss.backward()
        return loss
    for _ in range(5):
        opt.step(closure)
    return float(F().detach())


def target_value(f0: float, best: float, fraction: float) -> float:
    """The objective value that makes ``fraction`` of the decrease from ``f0`` to ``best``."""
    if not (math.isfinite(f0) and math.isfinite(best)) or best >= f0:
        raise ValueError(f"no decrease to aim at: start {f0!r}, best {best!r}")
    return f0 - fraction * (f0 - best)


def reference_best(spec, plan_full: LoopPlan, steps: int) -> tuple[float, float, str]:
    """(F0, F_ref, how) for a problem without a known optimum: the lowest upper loss of our cg
    loop (full batch, ``REFERENCE`` lower steps and CG iterations) in ``steps`` iterations."""
    T, K = REFERENCE
    r = ours.loop(spec, S("cg", T, K, {"tol": 1e-8}), plan_full)
    value = objective(spec)
    f0 = best = value(*r.state())
    for i in range(steps):
        r.step(i)
        best = min(best, value(*r.state()))
    return f0, best, (f"upper loss at the loop's variables; F_ref = {best:.5g}: the lowest of our cg loop "
                      f"(full batch, T={T}, K={K}, tol 1e-8) in {steps} iterations")


# ----------------------------------------------------------------------------- the race
def race(spec, case: Case, plan: LoopPlan, settings: dict, avail: dict, target: float, early: float,
         args) -> list[Result]:
    """Every (library, setting) loop, round-robin, until ``target`` or its limit (``early``: the
    looser target whose first crossing is recorded on the way)."""
    value = objective(spec)
    max_steps = case.quick_max_steps if args.quick else case.max_steps
    results, live = [], []
    for lib, ss in settings.items():
        for s in ss:
            res = Result(spec.key, lib, describe(s), s.method, s.T, s.K)
            results.append(res)
            if not avail[lib][0]:
                res.note = "not installed" if lib != "ours" else avail[lib][1]
                continue
            mod = LIBRARIES[lib]
            try:
                warm = mod.loop(spec, s, plan)  # warm-up and peak memory: the first iterations
                n_warm = len(plan.lower_batches) + 1

                def first():
                    for i in range(n_warm):
                        warm.step(i)
                res.peak_mem = harness.peak_memory(first, spec.device) if args.memory else math.nan
                if not args.memory:
                    first()
                runner = mod.loop(spec, s, plan)
                res.note = runner.note
            except NotRunnable as e:
                res.note = f"not runnable: {e}"
                continue
            except Exception as e:  # a library that breaks is reported, not fatal
                res.note = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
                continue
            res.cpu_s = res.wall_s = 0.0
            res.final = value(*runner.state())
            live.append((res, runner))
    best = math.inf
    while live:
        for res, runner in list(live):
            try:
                harness.sync(spec.device)
                t0, c0 = time.perf_counter(), time.process_time()
                runner.step(res.steps)
                harness.sync(spec.device)
                res.wall_s += time.perf_counter() - t0
                res.cpu_s += time.process_time() - c0
                res.steps += 1
                res.final = value(*runner.state())
            except Exception as e:
                res.note = f"failed at iteration {res.steps}: {type(e).__name__}: {str(e).splitlines()[0][:70]}"
                live.remove((res, runner))
                continue
            if res.steps % 10 == 0:
                res.trace.append((res.steps, res.cpu_s, res.final))
            if math.isnan(res.early_cpu_s) and res.final <= early:
                res.early_steps, res.early_cpu_s, res.early_wall_s = res.steps, res.cpu_s, res.wall_s
            stop = ""
            if res.final <= target:
                res.reached = True
                best = min(best, res.cpu_s)
                stop = "reached"
            elif not math.isfinite(res.final):
                stop = "diverged"
            elif res.steps >= max_steps:
                stop = f"not reached in {max_steps} iterations"
            elif res.cpu_s > args.max_cpu:
                stop = f"not reached in {args.max_cpu:g} CPU s"
            elif res.cpu_s > args.cut * best:
                stop = f"cut at {args.cut:g}x the fastest loop's time"
            if stop:
                if stop != "reached":
                    res.note = (res.note + "; " if res.note else "") + stop
                live.remove((res, runner))
                print(f"  {spec.key} {res.library:8s} {res.setting:38s} {stop:34s} {res.steps:5d} it "
                      f"{res.cpu_s:7.2f} cpu s  F={res.final:.5g}", file=sys.stderr, flush=True)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="Peers: benchmarks/README.md (their own virtual environment).")
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--quick", action="store_true",
                    help="fewer iterations, three settings a library on (c) (about 6 min on 2 busy cores)")
    ap.add_argument("--out", default=None, help="folder for time_to_target.csv and time_to_target.json")
    ap.add_argument("--problems", default="a,b,c", help="comma list of a,b,c (default all)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads for every library (default 1)")
    ap.add_argument("--max-cpu", type=float, default=None, help="CPU seconds a loop may use (default 60, quick 20)")
    ap.add_argument("--cut", type=float, default=4.0, help="stop a loop at this multiple of the fastest reached time")
    ap.add_argument("--reference-steps", type=int, default=None,
                    help="(b)/(c) reference iterations (default 300/100, quick 150/40)")
    ap.add_argument("--fraction", type=float, default=None,
                    help="share of the decrease to the optimum / reference a loop must make "
                         "(default 0.999 on (a), 0.99 on (b)/(c))")
    ap.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory warm-up profile")
    args = ap.parse_args(argv)
    if args.max_cpu is None:
        args.max_cpu = 20.0 if args.quick else 60.0
    dev = harness.pick_device(ap, args.device)
    keys = [k.strip() for k in args.problems.split(",") if k.strip()]
    if not keys or set(keys) - set(CASES):
        ap.error(f"--problems: choose from a,b,c, got {args.problems!r}")
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    avail = {lib: mod.available() for lib, mod in LIBRARIES.items()}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = (f"{now}; {machine()}; load average {os.getloadavg()[0]:.1f}; torch {torch.__version__} on {dev}, "
            f"{torch.get_num_threads()} thread(s); python {platform.python_version()}")
    print(head)
    for lib, (ok, why) in avail.items():
        print(f"  {lib:9s} {why}")
    results, meta = [], {"header": head, "quick": args.quick, "libraries": {k: v[1] for k, v in avail.items()},
                         "problems": {}}
    for key in keys:
        case = CASES[key]
        spec = case.build(dev)
        # the upper batch is one minibatch (0) of the upper data, for saba's memory
        plan = LoopPlan(problems.minibatches(spec.lower_batch, case.minibatches),
                        {**spec.upper_batch, "index": 0}, case.upper_lr)
        if key == "a":
            f0, fbest = objective(spec)(spec.y0, spec.x0), ridge_optimum(spec)
            how = f"exact F(x, w*(x)); F* = {fbest:.6g} (L-BFGS on the closed form)"
        else:
            n_ref = args.reference_steps or {"b": 150 if args.quick else 300, "c": 40 if args.quick else 100}[key]
            f0, fbest, how = reference_best(spec, LoopPlan([spec.lower_batch], spec.upper_batch, case.upper_lr), n_ref)
        frac, frac_early = FRACTION[key]
        frac = args.fraction or frac
        tgt, early = target_value(f0, fbest, frac), target_value(f0, fbest, frac_early)
        how = (f"F <= F0 - {frac:g} (F0 - F_best) = {tgt:.6g} (early target: {frac_early:g} of the decrease, "
               f"{early:.6g}); F0 = {f0:.6g}; {how}")
        line = (f"{spec.title}: {spec.info}; lower lr 1/L = {spec.lr:.4g}; upper Adam lr {case.upper_lr:g}; "
                f"{case.minibatches} lower minibatch(es)\n  target: {how}")
        print(line, flush=True)
        meta["problems"][spec.key] = line
        results += race(spec, case, plan, sweep(key, spec.lr, args.quick), avail, tgt, early, args)
    best = best_per_library(results)
    print("\nTime to target, each library at its fastest setting (cpu s: process CPU time, one thread, the loops "
          "interleaved round-robin; x peer: CPU time / the fastest peer's; '> t': not reached, ran t s):")
    print(table(best))
    best_early = best_per_library(results, early=True)
    print("\nThe same at the early target:")
    print(table(best_early))
    print("\nThe whole sweep (at the target):")
    print(table(sweep_rows(results)))
    goals = verdicts(best)
    print("\naim (ours <= 0.5x the fastest peer's time to target):")
    print("\n".join("  " + g for g in goals))
    print("at the early target:")
    print("\n".join("  " + g for g in verdicts(best_early)))
    wall = time.perf_counter() - start
    if args.out:
        fields = [k for k in asdict(results[0]) if k != "trace"]
        meta.update(aims=goals, wall_s=wall, best=best, best_early=best_early, rows=[asdict(r) for r in results])
        harness.write_rows(args.out, "time_to_target", fields, [asdict(r) for r in results], meta)
        print(f"\nwrote {os.path.join(args.out, 'time_to_target.csv')} and time_to_target.json")
    print(f"total {wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
