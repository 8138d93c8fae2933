"""Relative error of every hypergradient method against the exact hypergradient of ridge
regression with per-feature weight decay ``exp(lambda)`` (float64; exact = autograd through
``torch.linalg.solve``). The lower problem is solved (``w = w*(lambda)``) before each call, so the
implicit and long-unroll methods should sit at round-off, the one-step ones show their bias.

    python examples/ridge_accuracy.py
"""
from __future__ import annotations

import argparse

import torch

import bilevel

SETTINGS = {
    "darts1": {},
    "darts2": {"xi": 0.3},
    "rad": {"steps": 300, "lr": 0.3},
    "trad": {"steps": 300, "truncate": 100, "lr": 0.3},
    "fad": {"steps": 300, "lr": 0.3},
    "cg": {"iters": 50},
    "neumann": {"iters": 2000, "alpha": 0.3},
    "bda": {"steps": 300, "lr": 0.3, "upper_lr": 0.3, "mu": 0.5},
    "iaptt": {"steps": 300, "lr": 0.3, "auxiliary_init": False},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", type=int, default=5, help="number of features (= upper variables)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    dt = torch.float64
    g = torch.Generator().manual_seed(args.seed)
    d = args.features
    w_true = torch.randn(d, generator=g, dtype=dt)
    Xt, Xv = torch.randn(40, d, generator=g, dtype=dt), torch.randn(30, d, generator=g, dtype=dt)
    yt = Xt @ w_true + 0.5 * torch.randn(40, generator=g, dtype=dt)
    yv = Xv @ w_true + 0.5 * torch.randn(30, generator=g, dtype=dt)
    lam = (torch.randn(d, generator=g, dtype=dt) * 0.5 - 1.0).requires_grad_(True)

    def w_star(l):
        return torch.linalg.solve(Xt.T @ Xt / 40 + torch.diag(torch.exp(l)), Xt.T @ yt / 40)

    exact = torch.autograd.grad(((Xv @ w_star(lam) - yv) ** 2).mean() / 2, lam)[0]
    w = w_star(lam.detach()).clone().requires_grad_(True)
    problem = bilevel.BilevelProblem(
        lower={"w": w}, upper={"lam": lam},
        lower_loss=lambda lo, up, b: ((b[0] @ lo["w"] - b[1]) ** 2).mean() / 2
        + 0.5 * (torch.exp(up["lam"]) * lo["w"] ** 2).sum(),
        upper_loss=lambda lo, up, b: ((b[0] @ lo["w"] - b[1]) ** 2).mean() / 2)
    print(f"{'method':8s} {'options':45s} {'rel. error':>11s} {'time ms':>8s}")
    for name, options in SETTINGS.items():
        hg = bilevel.hypergradient(problem, name, (Xt, yt), (Xv, yv), **options)
        err = float((hg["lam"] - exact).norm() / exact.norm())
        opts = ", ".join(f"{k}={v}" for k, v in options.items()) or "-"
        print(f"{name:8s} {opts:45s} {err:11.2e} {hg.diagnostics['time_s'] * 1e3:8.1f}")


if __name__ == "__main__":
    main()
