"""The bilevel search loop: hypergradient + upper step, then lower step(s). Writes nothing itself."""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from .hypergradient import hypergradient, make_method
from .problem import BilevelProblem
from .tensors import cloned

Hook = Callable[["BilevelLoop", dict[str, Any]], None]
#: ``reduce(tensors)``: replace each tensor by its mean over the processes of a data-parallel run.
Reduce = Callable[[list[Tensor]], None]


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
        shared: a dict shared by loops over the same lower variables (``GroupedLoop`` passes one
            per lower level) so that a method's auxiliary variables get one optimizer.
        reduce: data parallelism (None: one process). ``reduce(tensors)`` averages tensors in place
            over the processes; it is called on the hypergradient (with a joint method's lower
            direction and its ``replicated_state()``) before the checks, clipping and upper step,
            and on the lower gradients right after their backward, so that every process steps
            with the same gradients and keeps the same variables. Each process computes the
            hypergradient on its own shard of the batches: the mean equals the hypergradient of
            the whole batch only where the method is linear in the batch loss (``darts1``); the
            lower steps are the whole batch's exactly (a gradient of a mean loss).

    Auxiliary upper variables a method adds (IAPTT-GM's initial point) get the optimizer the method
    asks for (``method.auxiliary_optimizer(params)``), else they join ``upper_optimizer``.
    A method that ``updates_lower`` (first-order / value-function methods) hands its own direction
    for the lower variables with the hypergradient; the next ``lower_step`` applies it instead of
    the lower loss gradient. A method with ``lower_values`` (meta-learning) has the lower step set the
    lower variables to them (the learned initialisation) and report the last hypergradient's lower loss.

    ``step`` returns floats: step, lower_loss, upper_loss, hypergrad_norm, hypergrad_time_s, and
    lower_grad_norm when ``lower_grad_clip`` is set. A NaN/Inf loss or gradient raises
    ``NonFiniteError`` naming the step. ``state_dict``/``load_state_dict``: step count, auxiliary
    variables, their optimizer and the method's own state (the optimizers passed in are the
    caller's to save).
    """

    def __init__(self, problem: BilevelProblem, method: str, upper_optimizer: torch.optim.Optimizer,
                 lower_optimizer: torch.optim.Optimizer, method_options: dict[str, Any] | None = None,
                 lower_steps: int = 1, grad_clip: float | None = None, lower_grad_clip: float | None = None,
                 amp: bool = False, hooks: Iterable[Hook] = (), shared: dict[str, Any] | None = None,
                 reduce: Reduce | None = None) -> None:
        self.problem = problem
        self.reduce = reduce
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
        self.shared: dict[str, Any] = {} if shared is None else shared
        self._lower_direction: dict[str, Tensor] | None = None
        self._lower_loss = float("nan")  # the last hypergradient's lower loss (reported by a set lower step)

    @property
    def auxiliary_optimizer(self) -> torch.optim.Optimizer:
        """The optimizer of the auxiliary variables (the method's own, or the upper optimizer)."""
        return self.shared.get("auxiliary_optimizer", self.upper_optimizer)

    def adopt_auxiliary(self) -> None:
        """Give auxiliary upper variables a method created (IAPTT-GM's initial point) an optimizer:
        the one the method asks for, else the upper optimizer's new param group."""
        aux = list(self.problem.auxiliary.values())
        if not aux:
            return
        if "auxiliary_optimizer" not in self.shared:
            own = self.method.auxiliary_optimizer(aux)
            self.shared["own_auxiliary_optimizer"] = own is not None
            self.shared["auxiliary_optimizer"] = self.upper_optimizer if own is None else own
        opt = self.shared["auxiliary_optimizer"]
        held = {id(p) for g in opt.param_groups for p in g["params"]}
        new = [t for t in aux if id(t) not in held]
        if new:
            opt.add_param_group({"params": new})

    def upper_step(self, lower_batch: Any, upper_batch: Any) -> dict[str, Any]:
        """Hypergradient of the upper variables, written to ``.grad``, then one upper step."""
        hg = hypergradient(self.problem, self.method, lower_batch, upper_batch, self.lower_optimizer)
        self.adopt_auxiliary()
        if self.reduce is not None:
            self.reduce([*hg.values(), *(hg.lower or {}).values(), *self.method.replicated_state()])
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
        aux_opt = self.auxiliary_optimizer
        if aux_opt is not self.upper_optimizer:
            aux_opt.step()
            aux_opt.zero_grad(set_to_none=True)
        self._lower_direction = hg.lower if self.method.updates_lower else None
        self._lower_loss = float(d.get("lower_loss", float("nan")))
        return {"upper_loss": d.get("upper_loss", float("nan")), "hypergrad_norm": norm,
                "hypergrad_time_s": d["time_s"]}

    def lower_step(self, lower_batch: Any) -> dict[str, Any]:
        """``lower_steps`` optimizer steps on the lower loss (upper variables held fixed)."""
        p = self.problem
        if self._lower_direction is not None:
            return self._apply_lower_direction()
        values = self.method.lower_values(p)
        if values is not None:  # meta-learning: the lower variables hold the learned initialisation
            with torch.no_grad():
                for name, t in p.lower.items():
                    t.copy_(values[name])
            return {"lower_loss": self._lower_loss}
        upper = {k: v.detach() for k, v in p.upper.items()}
        loss_value, norm = float("nan"), float("nan")
        for _ in range(self.lower_steps):
            self.lower_optimizer.zero_grad(set_to_none=True)
            # without amp the caller's autocast (if any, e.g. bf16 around the whole step) holds
            with torch.autocast("cuda", dtype=torch.float16) if self.amp else contextlib.nullcontext():
                loss = p.lower_loss({**p.lower, **p.buffers}, upper, lower_batch)
            loss_value = float(loss.detach())
            _check("lower loss", loss_value, self.step_count)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self._reduce_lower_grads()
                self.scaler.unscale_(self.lower_optimizer)
                norm = _clip(p.lower.values(), self.lower_grad_clip)
                self.scaler.step(self.lower_optimizer)
                self.scaler.update()
            else:
                loss.backward()
                self._reduce_lower_grads()
                if self.lower_grad_clip is not None:  # the norm costs a pass and a sync: only when clipping
                    norm = _clip(p.lower.values(), self.lower_grad_clip)
                    _check("lower gradient norm", norm, self.step_count)
                self.lower_optimizer.step()
        self.lower_optimizer.zero_grad(set_to_none=True)
        out = {"lower_loss": loss_value}
        if norm == norm:  # a norm is only computed when clipping (or under AMP)
            out["lower_grad_norm"] = norm
        return out

    def _reduce_lower_grads(self) -> None:
        """Average the lower gradients over the processes (data parallelism; no-op without)."""
        if self.reduce is not None:
            self.reduce([t.grad for t in self.problem.lower.values() if t.grad is not None])

    def _apply_lower_direction(self) -> dict[str, Any]:
        """One lower optimizer step along the direction a joint method returned."""
        direction, self._lower_direction = self._lower_direction, None
        self.lower_optimizer.zero_grad(set_to_none=True)
        for name, t in self.problem.lower.items():
            g = direction.get(name)
            t.grad = None if g is None else g.to(t.dtype)
            if g is not None:
                _check(f"lower direction of {name!r}", t.grad, self.step_count)
        out: dict[str, Any] = {"lower_loss": float("nan")}
        if self.lower_grad_clip is not None:
            out["lower_grad_norm"] = _clip(self.problem.lower.values(), self.lower_grad_clip)
        self.lower_optimizer.step()
        self.lower_optimizer.zero_grad(set_to_none=True)
        return out

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

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Step count, auxiliary variables (detached), their own optimizer and the method's state."""
        aux_opt = self.shared.get("auxiliary_optimizer") if self.shared.get("own_auxiliary_optimizer") else None
        return {"step": self.step_count,
                "auxiliary": cloned(self.problem.auxiliary),
                "auxiliary_optimizer": None if aux_opt is None else aux_opt.state_dict(),
                "method": self.method.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` saved (call before the first step of a resumed run)."""
        self.step_count = int(state["step"])
        aux = self.problem.auxiliary
        device = next(iter(self.problem.lower.values())).device
        for k, v in state["auxiliary"].items():
            if k in aux:
                with torch.no_grad():
                    aux[k].copy_(v)
            else:
                aux[k] = v.to(device).requires_grad_(True)
        self.adopt_auxiliary()
        if state.get("auxiliary_optimizer") is not None and self.shared.get("own_auxiliary_optimizer"):
            self.shared["auxiliary_optimizer"].load_state_dict(state["auxiliary_optimizer"])
        if state.get("method"):
            self.method.load_state_dict(state["method"])
