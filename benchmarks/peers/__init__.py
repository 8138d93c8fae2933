"""Adapters: one small module per library, each exposing the same three names.

    LIBRARY: str                      # the name printed in the table
    available() -> (bool, str)        # (importable?, version or reason)
    build(spec, setting) -> Runner    # raises NotRunnable(reason) when it cannot run the method

A ``Runner`` has ``reset()`` (restores the start point; not timed), ``__call__()`` (one
hypergradient; timed) returning ``dict[upper name, Tensor]``, and a ``note`` string. A peer
library is imported only inside ``available``/``build``/``loop``, so the script runs without it.

For ``time_to_target.py`` each module also has ``loop(spec, setting, plan) -> LoopRunner``: a whole
bilevel loop from the start point, one upper iteration per ``step(i)`` (``T`` lower SGD steps at
``spec.lr`` on lower minibatch ``plan.lower(i)``, the hypergradient, one Adam step of the upper
variables at ``plan.upper_lr``), written as the library's documentation shows.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


class NotRunnable(Exception):
    """The library cannot run this method/setting; the message says why."""


class UpperModule(nn.Module):
    """The upper variables as an ``nn.Module`` (for peers that want modules)."""

    def __init__(self, x0: dict[str, Tensor]) -> None:
        super().__init__()
        for k, v in x0.items():
            self.register_parameter(k, nn.Parameter(v.detach().clone()))

    def as_dict(self) -> dict[str, Tensor]:
        return dict(self.named_parameters())


class Runner:
    def __init__(self, fn: Callable[[], dict[str, Tensor]], reset: Callable[[], None], note: str = ""):
        self._fn, self._reset, self.note = fn, reset, note

    def reset(self) -> None:
        self._reset()

    def __call__(self) -> dict[str, Tensor]:
        return self._fn()


JOINT = ("bvfim", "bome", "pbgd", "meha", "f2sa")


def start_point(spec, method: str) -> dict[str, Tensor]:
    """The lower start point of a row: ``spec.y0`` (the converged lower solution), except for the
    joint methods, which start from ``y0`` plus a fixed perturbation (``0.1 * rms(y0)`` per entry,
    seed 0): at the lower solution their upper directions reduce to ``d_x F / weight`` (0 on the
    three problems) and comparing libraries would compare round-off."""
    if method not in JOINT:
        return spec.y0
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, v in spec.y0.items():
        rms = float(v.detach().double().pow(2).mean().sqrt()) or 1.0
        noise = torch.randn(v.shape, generator=g, dtype=torch.float64).to(v.device, v.dtype)
        out[k] = v.detach() + 0.1 * rms * noise
    return out


def load_(module: nn.Module, y0: dict[str, Tensor]) -> None:
    """Copy the start point into ``module``'s parameters, in place."""
    with torch.no_grad():
        for n, p in module.named_parameters():
            p.copy_(y0[n])


class LoopPlan:
    """What every library's loop shares: the lower minibatches (iteration ``i`` uses
    ``lower(i)``, cycling), the upper batch, and the upper optimizer's (Adam) learning rate."""

    def __init__(self, lower_batches: list[dict], upper_batch: dict, upper_lr: float) -> None:
        self.lower_batches, self.upper_batch, self.upper_lr = lower_batches, upper_batch, upper_lr

    def lower(self, i: int) -> dict:
        return self.lower_batches[i % len(self.lower_batches)]

    def upper(self, i: int) -> dict:
        return self.upper_batch


class LoopRunner:
    """``step(i)``: one upper iteration (timed). ``state()``: the current lower variables (module
    parameter names) and upper variables, detached, for the untimed check of the target."""

    def __init__(self, step: Callable[[int], None], state: Callable[[], tuple[dict, dict]], note: str = ""):
        self.step, self.state, self.note = step, state, note


def upper_adam(params, plan: LoopPlan) -> torch.optim.Optimizer:
    """The upper optimizer of every loop."""
    return torch.optim.Adam(list(params), lr=plan.upper_lr)


def upper_grads(F: Tensor, hp: dict[str, Tensor]) -> dict[str, Tensor]:
    """``dF / d hp`` by name (a variable ``F`` does not depend on: zeros)."""
    grads = torch.autograd.grad(F, list(hp.values()), allow_unused=True)
    return {k: torch.zeros_like(v) if g is None else g for (k, v), g in zip(hp.items(), grads)}


def set_grads(params, grads) -> None:
    """Write ``grads`` (``None``: zero) into the ``.grad`` of ``params``."""
    for p, g in zip(params, grads):
        p.grad = torch.zeros_like(p) if g is None else g
