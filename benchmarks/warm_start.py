"""Warm-started linear solves: Hessian-vector products saved over a search's slowly moving problems.

One trajectory of a hyper-parameter search: ridge regression with one ``exp(lambda)`` weight decay
per feature (``n`` training rows, ``m`` validation rows, ``d`` features, float64); at each step a
``cg`` hypergradient, an upper SGD step on ``lambda``, then a few lower SGD steps on ``w``. Each
point of the trajectory is one linear system ``H_yy v = d_y F``, close to the previous one.

At every point, on the same problem:

* ``cg`` to a relative residual ``tol``, started from 0 (cold) and from the previous point's
  solution (``warm_start=True``; its initial residual costs one product more);
* ``neumann`` with ``K`` terms, cold and warm (fixed cost; the warm series continues the previous
  Richardson steps, so its error shrinks instead of staying at the truncation error).

Printed: per setting, the Hessian-vector products summed over the trajectory (cold, warm, warm /
cold) and the largest relative error of the hypergradients against a cg solve to 1e-13.

    python benchmarks/warm_start.py                       # defaults: d=100, 100 steps
    python benchmarks/warm_start.py --steps 50 --d 40     # quick
"""
from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bilevel  # noqa: E402
from benchmarks.machine import machine  # noqa: E402


def ridge_problem(d: int, n: int, m: int, seed: int) -> tuple[bilevel.BilevelProblem, torch.Tensor, torch.Tensor]:
    """Ridge with per-feature decay ``exp(lam)`` (lam starts at -2), ``w`` at its solution."""
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    w_true = torch.randn(d, generator=g, dtype=dt)
    Xt, Xv = torch.randn(n, d, generator=g, dtype=dt), torch.randn(m, d, generator=g, dtype=dt)
    yt = Xt @ w_true + torch.randn(n, generator=g, dtype=dt)
    yv = Xv @ w_true + torch.randn(m, generator=g, dtype=dt)
    lam = torch.full((d,), -2.0, dtype=dt, requires_grad=True)
    with torch.no_grad():
        w0 = torch.linalg.solve(Xt.T @ Xt / n + torch.diag(torch.exp(lam)), Xt.T @ yt / n)
    w = w0.clone().requires_grad_(True)
    problem = bilevel.BilevelProblem(
        lower={"w": w}, upper={"lam": lam},
        lower_loss=lambda lo, up, b: (((Xt @ lo["w"] - yt) ** 2).mean() / 2
                                      + 0.5 * (torch.exp(up["lam"]) * lo["w"] ** 2).sum()),
        upper_loss=lambda lo, up, b: ((Xv @ lo["w"] - yv) ** 2).mean() / 2)
    return problem, lam, w


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--d", type=int, default=100, help="features (lower variables)")
    parser.add_argument("--n", type=int, default=400, help="training rows")
    parser.add_argument("--m", type=int, default=200, help="validation rows")
    parser.add_argument("--steps", type=int, default=100, help="upper steps of the trajectory")
    parser.add_argument("--lower-steps", type=int, default=5, help="lower SGD steps per upper step")
    parser.add_argument("--lr", type=float, default=0.3, help="upper SGD step on lambda")
    parser.add_argument("--lower-lr", type=float, default=0.3, help="lower SGD step on w")
    parser.add_argument("--tols", default="1e-4,1e-6,1e-8", help="cg relative residual tolerances")
    parser.add_argument("--neumann", default="10,40", help="neumann terms K (alpha 0.2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tols = [float(t) for t in args.tols.split(",")]
    ks = [int(k) for k in args.neumann.split(",")]

    problem, lam, w = ridge_problem(args.d, args.n, args.m, args.seed)
    loop = bilevel.BilevelLoop(problem, "cg", torch.optim.SGD([lam], lr=args.lr),
                               torch.optim.SGD([w], lr=args.lower_lr), method_options=dict(iters=1000, tol=1e-8),
                               lower_steps=args.lower_steps)
    # warm only so that it keeps v (for the printed change per step); solved to 1e-13 either way
    reference = bilevel.make_method("cg", dict(iters=10 * args.d, tol=1e-13, warm_start=True))
    settings = [(f"cg tol={t:g}", "cg", dict(iters=10 * args.d, tol=t)) for t in tols]
    settings += [(f"neumann K={k}", "neumann", dict(iters=k, alpha=0.2)) for k in ks]
    methods = {label: (bilevel.make_method(name, opts), bilevel.make_method(name, {**opts, "warm_start": True}))
               for label, name, opts in settings}
    totals = {label: [0, 0, 0.0, 0.0] for label in methods}  # cold hvps, warm hvps, cold err, warm err
    moves = []  # |v_k - v_{k-1}| / |v_k| of the exact solutions
    previous = None
    for _ in range(args.steps):
        exact = bilevel.hypergradient(problem, reference, None, None)["lam"]
        v = reference.v["w"].clone()
        if previous is not None:
            moves.append(rel(previous, v))
        previous = v
        for label, (cold, warm) in methods.items():
            for i, m in enumerate((cold, warm)):
                hg = bilevel.hypergradient(problem, m, None, None)
                totals[label][i] += hg.diagnostics["hvps"]
                totals[label][2 + i] = max(totals[label][2 + i], rel(hg["lam"], exact))
        loop.step(None, None)

    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    print(f"# {now}; {machine()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    lam_end = lam.detach()
    print(f"# ridge d={args.d} n={args.n} m={args.m}, {args.steps} upper steps (lr {args.lr}), "
          f"{args.lower_steps} lower steps (lr {args.lower_lr}) each; lambda {float(lam_end.min()):.2f}.."
          f"{float(lam_end.max()):.2f} at the end; the exact v moves {sum(moves) / max(len(moves), 1):.1e} "
          f"(relative) per step on average, {max(moves, default=0.0):.1e} at most")
    print(f"{'setting':<16} {'HVPs cold':>10} {'HVPs warm':>10} {'warm/cold':>10} "
          f"{'max err cold':>13} {'max err warm':>13}")
    for label, (hc, hw, ec, ew) in totals.items():
        print(f"{label:<16} {hc:>10d} {hw:>10d} {hw / max(hc, 1):>10.2f} {ec:>13.2e} {ew:>13.2e}")


if __name__ == "__main__":
    main()
