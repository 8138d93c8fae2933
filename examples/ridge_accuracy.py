"""Accuracy of every method (float64), three tables:

1. ``hypergradient``: relative error of each hypergradient method against the exact hypergradient
   of ridge regression with per-feature weight decay ``exp(lambda)`` (autograd through
   ``torch.linalg.solve``), at the lower solution ``w = w*(lambda)``: the implicit and long-unroll
   methods sit at round-off, the one-step ones show their bias.
2. ``optimum``: every method (the joint ones too) in a small loop on ridge with one shared
   ``lambda`` (finite upper optimum ``lambda* = -1.80``): relative error of the ``lambda`` reached.
3. ``many``: the BDA paper's toy whose lower problem has many solutions (``f = y1^2/2 - x y1``,
   ``F = (x - y2)^2/2 + (y1 - 1)^2/2``): the ``x`` each method reaches; the optimistic solution is
   ``x = 1``, a method that leaves ``y2`` where it starts (0) stalls near ``x = 1/2``.

    python examples/ridge_accuracy.py [--tables hypergradient,optimum,many]
"""
from __future__ import annotations

import argparse
import math
import time
from typing import Any

import torch

import bilevel

DT = torch.float64

SETTINGS = {
    "darts1": {},
    "darts2": {"xi": 0.3},
    "fdhg": {"xi": 0.3},
    "ias": {},
    "rad": {"steps": 300, "lr": 0.3},
    "trad": {"steps": 300, "truncate": 100, "lr": 0.3},
    "fad": {"steps": 300, "lr": 0.3},
    "cg": {"iters": 50},
    "neumann": {"iters": 2000, "alpha": 0.3},
    "bda": {"steps": 300, "lr": 0.3, "upper_lr": 0.3, "mu": 0.5},
    "iaptt": {"steps": 300, "lr": 0.3, "auxiliary_init": False},
}

# (options, upper lr, lower lr, iterations) of the loops of tables 2 and 3
LOOPS: dict[str, tuple[dict[str, Any], float, float, int]] = {
    "darts1": ({}, 1.0, 0.3, 200),
    "darts2": ({"xi": 0.3}, 1.0, 0.3, 200),
    "fdhg": ({"xi": 0.3}, 1.0, 0.3, 200),
    "ias": ({}, 1.0, 0.3, 200),
    "rad": ({"steps": 20, "lr": 0.3}, 1.0, 0.3, 200),
    "trad": ({"steps": 20, "truncate": 5, "lr": 0.3}, 1.0, 0.3, 200),
    "fad": ({"steps": 20, "lr": 0.3}, 1.0, 0.3, 200),
    "cg": ({"iters": 20}, 1.0, 0.3, 200),
    "neumann": ({"iters": 100, "alpha": 0.3}, 1.0, 0.3, 200),
    "bda": ({"steps": 20, "lr": 0.3, "upper_lr": 1.0, "mu": 0.9}, 1.0, 0.3, 200),
    "iaptt": ({"steps": 20, "lr": 0.3, "init_lr": 0.3}, 1.0, 0.3, 200),
    "bvfim": ({"decay": 0.01}, 3.0, 0.3, 1000),
    "bome": ({"steps": 30, "lr": 0.3}, 0.5, 0.05, 300),
    "pbgd": ({"gamma": 10.0, "steps": 30, "lr": 0.3}, 3.0, 0.3, 300),
    "meha": ({"c0": 10.0, "p": 0.25, "steps": 5, "eta": 0.3}, 3.0, 0.3, 1000),
    "f2sa": ({"lam_step": 1.0, "lam_max": 100.0, "steps": 5, "lr": 0.3}, 10.0, 0.3, 1000),
    "soba": ({"v_lr": 0.3}, 1.0, 0.3, 300),
    "saba": ({"v_lr": 0.3}, 1.0, 0.3, 300),
    "ma_soba": ({"v_lr": 0.3, "theta": 0.5}, 1.0, 0.3, 300),
}


class Batch(tuple):
    """A whole data set ``(inputs, targets)`` that names itself minibatch 0 (``saba`` keys its memory
    by the minibatch; with one minibatch it takes the same steps as ``soba``)."""

    index = 0


def ridge_data(n: int, m: int, d: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, generator=g, dtype=DT)
    Xt, Xv = torch.randn(n, d, generator=g, dtype=DT), torch.randn(m, d, generator=g, dtype=DT)
    yt = Xt @ w_true + 0.5 * torch.randn(n, generator=g, dtype=DT)
    yv = Xv @ w_true + 0.5 * torch.randn(m, generator=g, dtype=DT)
    lam = torch.randn(d, generator=g, dtype=DT) * 0.5 - 1.0
    return Xt, yt, Xv, yv, lam


def ridge_problem(Xt, yt, lam0, shared: bool):
    d = Xt.shape[1]
    lam = (torch.full((1,), -1.0, dtype=DT) if shared else lam0.clone()).requires_grad_(True)

    def w_star(l):
        return torch.linalg.solve(Xt.T @ Xt / len(yt) + torch.diag(torch.exp(l).expand(d)), Xt.T @ yt / len(yt))

    w = w_star(lam.detach()).clone().requires_grad_(True)
    problem = bilevel.BilevelProblem(
        lower={"w": w}, upper={"lam": lam},
        lower_loss=lambda lo, up, b: ((b[0] @ lo["w"] - b[1]) ** 2).mean() / 2
        + 0.5 * (torch.exp(up["lam"]) * lo["w"] ** 2).sum(),
        upper_loss=lambda lo, up, b: ((b[0] @ lo["w"] - b[1]) ** 2).mean() / 2)
    return problem, lam, w_star


def run_loop(problem: bilevel.BilevelProblem, name: str, options: dict[str, Any], lr_x: float, lr_y: float,
             iters: int, batches: tuple) -> None:
    """Hypergradient + SGD steps; the joint methods' ``.lower`` replaces the lower gradient."""
    method = bilevel.make_method(name, options)
    method.setup(problem)
    upper = torch.optim.SGD(list(problem.upper.values()), lr=lr_x)
    aux = list(problem.auxiliary.values())
    aux_opt = method.auxiliary_optimizer(aux) if aux else None
    lower = torch.optim.SGD(list(problem.lower.values()), lr=lr_y)
    variables = problem.upper_variables()
    for _ in range(iters):
        hg = bilevel.hypergradient(problem, method, *batches)
        for k, g in hg.items():
            variables[k].grad = g
        if hg.lower is not None:
            directions = hg.lower
        else:
            fixed = {k: v.detach() for k, v in problem.upper.items()}
            loss = problem.lower_loss(problem.lower, fixed, batches[0])
            directions = dict(zip(problem.lower, torch.autograd.grad(loss, list(problem.lower.values()))))
        for k, d in directions.items():
            problem.lower[k].grad = d
        for opt in (upper, aux_opt, lower):
            if opt is not None:
                opt.step()


def table_hypergradient(args) -> None:
    Xt, yt, Xv, yv, lam0 = ridge_data(40, 30, args.features, args.seed)
    problem, lam, w_star = ridge_problem(Xt, yt, lam0, shared=False)
    exact = torch.autograd.grad(((Xv @ w_star(lam) - yv) ** 2).mean() / 2, lam)[0]
    print("1. hypergradient at the lower solution, ridge with one lambda per feature")
    print(f"{'method':8s} {'options':45s} {'rel. error':>11s} {'time ms':>8s}")
    for name, options in SETTINGS.items():
        hg = bilevel.hypergradient(problem, name, (Xt, yt), (Xv, yv), **options)
        err = float((hg["lam"] - exact).norm() / exact.norm())
        opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        extra = f"  (k* = {hg.diagnostics['pessimistic_step']})" if name == "iaptt" else ""
        print(f"{name:8s} {opts:45s} {err:11.2e} {hg.diagnostics['time_s'] * 1e3:8.1f}{extra}")
    print("joint methods (" + ", ".join(n for n, c in bilevel.METHODS.items() if c.updates_lower)
          + ") move lambda and w together: see table 2\n")


def table_optimum(args) -> None:
    Xt, yt, Xv, yv, lam0 = ridge_data(20, 30, 8, 1)
    _, lam, w_star = ridge_problem(Xt, yt, lam0, shared=True)
    opt = torch.optim.LBFGS([lam], lr=1, max_iter=200, tolerance_grad=1e-13, tolerance_change=1e-15,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        F = ((Xv @ w_star(lam) - yv) ** 2).mean() / 2
        F.backward()
        return F
    for _ in range(3):
        opt.step(closure)
    lam_star = lam.detach().clone()
    print(f"2. upper optimum, ridge with one shared lambda (lambda* = {float(lam_star):.4f}), start -1")
    print(f"{'method':8s} {'options':52s} {'lr x/y':>9s} {'iters':>5s} {'rel. error':>11s} {'s':>6s}")
    for name, (options, lr_x, lr_y, iters) in LOOPS.items():
        problem, lam, _ = ridge_problem(Xt, yt, lam0, shared=True)
        t = time.perf_counter()
        run_loop(problem, name, options, lr_x, lr_y, iters, (Batch((Xt, yt)), Batch((Xv, yv))))
        err = float((lam.detach() - lam_star).abs() / lam_star.abs())
        opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        shown = f"{err:11.2e}" if math.isfinite(err) else f"{'diverges':>11s}"
        print(f"{name:8s} {opts:52s} {lr_x:4g}/{lr_y:<4g} {iters:5d} {shown} {time.perf_counter() - t:6.1f}")
    print()


def table_many(args) -> None:
    print("3. many lower solutions (BDA toy): x reached from x = 3, y = (0, 0); optimistic x* = 1")
    print(f"{'method':8s} {'x':>10s} {'|x - 1|':>9s}")
    for name, (options, _, _, iters) in LOOPS.items():
        x = torch.tensor([3.0], dtype=DT, requires_grad=True)
        y = torch.zeros(2, dtype=DT, requires_grad=True)
        problem = bilevel.BilevelProblem(
            lower={"y": y}, upper={"x": x},
            lower_loss=lambda lo, up, _: 0.5 * lo["y"][0] ** 2 - up["x"][0] * lo["y"][0],
            upper_loss=lambda lo, up, _: 0.5 * (up["x"][0] - lo["y"][1]) ** 2 + 0.5 * (lo["y"][0] - 1) ** 2)
        lr = 0.1 if name == "bome" else 0.3
        opts = dict(options, decay=0.0, mu=0.003) if name == "bvfim" else options
        try:
            run_loop(problem, name, opts, lr, lr, 300, (None, None))
            value = float(x.detach())
        except Exception as e:  # a method that breaks on the singular lower Hessian is reported
            print(f"{name:8s} fails: {type(e).__name__}: {str(e).splitlines()[0][:60]}")
            continue
        shown = f"{value:10.5f} {abs(value - 1):9.2e}" if math.isfinite(value) else f"{'diverges':>10s}"
        print(f"{name:8s} {shown}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=5, help="table 1: number of features (= upper variables)")
    ap.add_argument("--seed", type=int, default=0, help="table 1: data seed")
    ap.add_argument("--tables", default="hypergradient,optimum,many", help="comma list of the tables to print")
    args = ap.parse_args()
    tables = {"hypergradient": table_hypergradient, "optimum": table_optimum, "many": table_many}
    chosen = [t.strip() for t in args.tables.split(",") if t.strip()]
    bad = sorted(set(chosen) - set(tables))
    if bad:
        ap.error(f"--tables: unknown {', '.join(bad)}; choose from {', '.join(tables)}")
    for t in chosen:
        tables[t](args)


if __name__ == "__main__":
    main()
