"""Our ``maml`` and ``fomaml`` against higher's and TorchOpt's MAML on the same model and episode.

A 2-layer MLP (``--width`` hidden units, tanh) regresses a random sine episode: ``--shots`` support
and 4x as many query points, ``--steps`` inner SGD steps of ``--lr`` on the support MSE from the
initialisation, the query MSE at the adapted weights. Each side returns the meta-gradient for the
initialisation:

- ours: ``bilevel.hypergradient(problem, "maml", support, query, steps=K, lr=lr)`` (the
  initialisation as upper variables ``init/<name>``);
- higher: ``innerloop_ctx(model, SGD)``, ``diffopt.step`` K times, ``autograd.grad`` of the query loss;
- TorchOpt: ``MetaSGD(model)``, ``step`` K times, ``autograd.grad`` of the query loss with respect to
  the initial weights (then ``recover_state_dict``).

Prints the largest difference of each peer's gradients from ours (float64) and the median time of a
call over ``--repeats`` (float32), as ratios to ours measured in the same run. The peers live outside
the project's dependencies (``.venv-bench`` in ``benchmarks/README.md``)::

    .venv-bench/bin/python benchmarks/maml_peers.py
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from typing import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
from torch import nn  # noqa: E402

import bilevel  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from runtime.threads import add_threads_flag, apply_threads  # noqa: E402

Grads = dict[str, torch.Tensor]


def episode(shots: int, dtype: torch.dtype) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Support ``([shots, 1], [shots, 1])`` and query ``([4 shots, 1], ...)`` of one sine task."""
    g = torch.Generator().manual_seed(0)
    amp, phase = 0.1 + 4.9 * torch.rand(1, generator=g), 3.1416 * torch.rand(1, generator=g)
    x = 10 * torch.rand(5 * shots, 1, generator=g) - 5
    y = amp * torch.sin(x + phase)
    x, y = x.to(dtype), y.to(dtype)
    return (x[:shots], y[:shots]), (x[shots:], y[shots:])


def make_model(width: int, dtype: torch.dtype) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, 1)).to(dtype)


def ours(model: nn.Module, support, query, steps: int, lr: float, method: str) -> Grads:
    lower = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    upper = {f"init/{n}": p for n, p in model.named_parameters()}

    def mse(lo: Grads, up: Grads, batch) -> torch.Tensor:
        return (bilevel.call(model, lo, batch[0]) - batch[1]).pow(2).mean()

    problem = bilevel.BilevelProblem(lower, upper, mse, mse)
    out = bilevel.hypergradient(problem, method, support, query, steps=steps, lr=lr)
    return {k.removeprefix("init/"): v for k, v in out.items()}


def via_higher(model: nn.Module, support, query, steps: int, lr: float, first_order: bool) -> Grads:
    import higher

    opt = torch.optim.SGD(model.parameters(), lr=lr)
    with higher.innerloop_ctx(model, opt, copy_initial_weights=False, track_higher_grads=not first_order) as (fm, diffopt):
        for _ in range(steps):
            diffopt.step((fm(support[0]) - support[1]).pow(2).mean())
        loss = (fm(query[0]) - query[1]).pow(2).mean()
        if first_order:  # the gradient at the adapted weights
            return dict(zip([n for n, _ in model.named_parameters()],
                            torch.autograd.grad(loss, list(fm.parameters()))))
        return dict(zip([n for n, _ in model.named_parameters()], torch.autograd.grad(loss, list(model.parameters()))))


def via_torchopt(model: nn.Module, support, query, steps: int, lr: float, first_order: bool) -> Grads:
    import torchopt

    names, params = zip(*model.named_parameters())
    saved = torchopt.extract_state_dict(model)
    inner = torchopt.MetaSGD(model, lr=lr)
    for _ in range(steps):
        inner.step((model(support[0]) - support[1]).pow(2).mean())
        if first_order:
            torchopt.stop_gradient(model)
    loss = (model(query[0]) - query[1]).pow(2).mean()
    wrt = list(model.parameters()) if first_order else list(params)
    grads = dict(zip(names, torch.autograd.grad(loss, wrt)))
    torchopt.recover_state_dict(model, saved)
    return grads


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, kind, default, text in (("--width", int, 40, "hidden units of the MLP"),
                                      ("--shots", int, 10, "support points (the query has 4x as many)"),
                                      ("--steps", int, 5, "inner SGD steps"), ("--lr", float, 0.01, "inner learning rate"),
                                      ("--repeats", int, 50, "timed calls per side")):
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default {default})")
    add_threads_flag(parser)
    args = parser.parse_args()
    threads = apply_threads(args.threads)
    print(f"machine: {machine()}; {threads}; torch {torch.__version__}; cpu; {datetime.date.today()}")
    print(f"MLP 1-{args.width}-1, {args.shots}-shot sine episode, {args.steps} inner SGD steps of {args.lr}")
    peers = {"higher": via_higher, "torchopt": via_torchopt}
    print(f"{'method':8s} {'peer':9s} {'max |diff| (float64)':>22s} {'time ours (ms)':>15s} {'peer / ours':>12s}")
    for method, first_order in (("maml", False), ("fomaml", True)):
        model64 = make_model(args.width, torch.float64)
        s64, q64 = episode(args.shots, torch.float64)
        ref = ours(model64, s64, q64, args.steps, args.lr, method)
        model32 = make_model(args.width, torch.float32)
        s32, q32 = episode(args.shots, torch.float32)
        t_ours = median_time(lambda: ours(model32, s32, q32, args.steps, args.lr, method), args.repeats)
        for name, peer in peers.items():
            try:
                got = peer(model64, s64, q64, args.steps, args.lr, first_order)
            except ImportError:
                print(f"{method:8s} {name:9s} {'not installed':>22s}")
                continue
            diff = max(float((got[k] - ref[k]).abs().max()) for k in ref)
            t_peer = median_time(lambda: peer(model32, s32, q32, args.steps, args.lr, first_order), args.repeats)
            print(f"{method:8s} {name:9s} {diff:22.2e} {1e3 * t_ours:15.3f} {t_peer / t_ours:12.2f}")


if __name__ == "__main__":
    main()
