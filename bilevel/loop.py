"""The bilevel search loop: hypergradient + upper step, then lower step(s). Writes nothing itself."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from .hypergradient import hypergradient, make_method
from .problem import BilevelProblem

Hook = Callable[["BilevelLoop", dict[str, Any]], None]


class NonFiniteError(FloatingPointError):
    """A loss or gradient became NaN/Inf; the message names the step and the quantity."""


def _check(name: str, value: float | Tensor, step: int) -> None:
    bad = not math.isfinite(value) if isinstance(value, float) else not bool(torch.isfinite(value).all())
    if bad:
        raise NonFiniteError(
            f"step {step}: {name} is not finite; lower the learning rates, clip gradients "
            "(grad_clip), or check the data for NaN/Inf")


def _clip(tensors: Iterable[Tensor], max_norm: float | None) -> float:
    params = [t for t in tensors if t.grad is not None]
    if not params:
        return 0.0
    if max_norm is None:
        return float(torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params)))
    return float(torch.nn.utils.clip_grad_norm_(params, max_norm))


class BilevelLoop:
    """Alternates an upper step on the hypergradient and lower optimizer step(s).

    Args:
        problem: the bilevel problem (its variables are the ones the optimizers hold).
        method: name of a hypergradient method; ``method_options`` its config fields.
        upper_optimizer: optimizer over ``problem.upper`` (auxiliary variables a method adds,
            such as IAPTT-GM's initial point, join it as a new param group).
        lower_optimizer: optimizer over ``problem.lower``; also handed to the method so the
            virtual/unrolled steps follow it (SGD).
        lower_steps: lower optimizer steps per ``step`` call (all on ``lower_batch``).
        grad_clip, lower_grad_clip: max gradient norm of the upper / lower step (None: no clip).
        amp: mixed precision (CUDA only) for the lower training step; hypergradients stay in the
            variables' precision, where second derivatives are safe.
        hooks: ``hook(loop, stats)`` called after every step (logging, checkpointing).

    ``step`` returns floats: step, lower_loss, upper_loss, hypergrad_norm, lower_grad_norm (NaN
    unless ``lower_grad_clip`` is set), hypergrad_time_s. A NaN/Inf loss or gradient raises ``NonFiniteError`` naming the step.
    """

    def __init__(self, problem: BilevelProblem, method: str, upper_optimizer: torch.optim.Optimizer,
                 lower_optimizer: torch.optim.Optimizer, method_options: dict[str, Any] | None = None,
                 lower_steps: int = 1, grad_clip: float | None = None, lower_grad_clip: float | None = None,
                 amp: bool = False, hooks: Iterable[Hook] = ()) -> None:
        self.problem = problem
        self.method = make_method(method, method_options)
        self.upper_optimizer = upper_optimizer
        self.lower_optimizer = lower_optimizer
        self.lower_steps = lower_steps
        self.grad_clip = grad_clip
        self.lower_grad_clip = lower_grad_clip
        device_types = {t.device.type for t in problem.lower.values()}
        self.amp = bool(amp) and device_types == {"cuda"}
        self.scaler = torch.amp.GradScaler("cuda") if self.amp else None
        self.hooks = list(hooks)
        self.step_count = 0

    def adopt_auxiliary(self) -> None:
        """Add auxiliary upper variables a method created (IAPTT-GM's initial point) to the upper optimizer."""
        held = {id(p) for g in self.upper_optimizer.param_groups for p in g["params"]}
        new = [t for t in self.problem.auxiliary.values() if id(t) not in held]
        if new:
            self.upper_optimizer.add_param_group({"params": new})

    def upper_step(self, lower_batch: Any, upper_batch: Any) -> dict[str, Any]:
        """Hypergradient of the upper variables, written to ``.grad``, then one upper step."""
        hg = hypergradient(self.problem, self.method, lower_batch, upper_batch, self.lower_optimizer)
        self.adopt_auxiliary()
        d = hg.diagnostics
        for key in ("upper_loss", "lower_loss"):
            if key in d:
                _check(key, float(d[key]), self.step_count)
        variables = self.problem.upper_variables()
        for name, g in hg.items():
            _check(f"hypergradient of {name!r}", g, self.step_count)
            variables[name].grad = g.to(variables[name].dtype)
        norm = _clip(variables.values(), self.grad_clip)
        self.upper_optimizer.step()
        self.upper_optimizer.zero_grad(set_to_none=True)
        return {"upper_loss": d.get("upper_loss", float("nan")), "hypergrad_norm": norm,
                "hypergrad_time_s": d["time_s"]}

    def lower_step(self, lower_batch: Any) -> dict[str, Any]:
        """``lower_steps`` optimizer steps on the lower loss (upper variables held fixed)."""
        p = self.problem
        upper = {k: v.detach() for k, v in p.upper.items()}
        loss_value, norm = float("nan"), float("nan")
        for _ in range(self.lower_steps):
            self.lower_optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cuda", enabled=self.amp):
                loss = p.lower_loss({**p.lower, **p.buffers}, upper, lower_batch)
            loss_value = float(loss.detach())
            _check("lower loss", loss_value, self.step_count)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.lower_optimizer)
                norm = _clip(p.lower.values(), self.lower_grad_clip)
                self.scaler.step(self.lower_optimizer)
                self.scaler.update()
            else:
                loss.backward()
                if self.lower_grad_clip is not None:  # the norm costs a pass and a sync: only when clipping
                    norm = _clip(p.lower.values(), self.lower_grad_clip)
                    _check("lower gradient norm", norm, self.step_count)
                self.lower_optimizer.step()
        self.lower_optimizer.zero_grad(set_to_none=True)
        return {"lower_loss": loss_value, "lower_grad_norm": norm}

    def step(self, lower_batch: Any, upper_batch: Any, update_upper: bool = True,
             update_lower: bool = True) -> dict[str, Any]:
        """One search step: upper step (if ``update_upper``), then lower step(s) (if ``update_lower``)."""
        stats: dict[str, Any] = {"step": self.step_count}
        if update_upper:
            stats.update(self.upper_step(lower_batch, upper_batch))
        if update_lower:
            stats.update(self.lower_step(lower_batch))
        for hook in self.hooks:
            hook(self, stats)
        self.step_count += 1
        return stats
