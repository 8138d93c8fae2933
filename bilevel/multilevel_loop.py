"""A loop over more than two levels: every level stepped on its schedule by its own optimizer.

    levels = [LoopLevel("hparams", Level({"h": h}, top_loss), Adam([h])),          # top first
              LoopLevel("arch", Level(alphas, arch_loss), Adam(alphas.values())),
              LoopLevel("weights", Level(weights, train_loss), SGD(weights.values()), batch="lower")]
    loop = MultilevelLoop(levels, "one_step", {"lr": 0.01})
    stats = loop.step(lower_batch, upper_batch)

A step visits the levels top first (as a bilevel loop steps the upper variables, then the lower):
level ``i`` is due when ``step % every == 0``; when due, its variables get the total derivative of
its loss through the best responses of the levels below it (``multilevel_hypergradient`` over levels
``i..n-1``, the levels above held at their values), clipped to ``grad_clip``, and its optimizer
steps. The bottom level's derivative is its loss's plain gradient (no level below). Each level's
loss reads the batch it names: ``"lower"`` (the training batch) or ``"upper"`` (the validation
batch). ``method`` and its options apply to every level with levels below (numbers, not per-level
lists: the chains differ in length). The loop knows no application.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

from .loop import NonFiniteError
from .multilevel import MULTILEVEL_METHODS, Level, multilevel_hypergradient, resolve_options
from .tensors import TensorDict, detached, grad

Hook = Callable[["MultilevelLoop", dict[str, Any]], None]


@dataclass(eq=False)
class LoopLevel:
    """One level of a ``MultilevelLoop``: its ``Level`` (variables and loss), the optimizer over its
    variables, its period ``every``, the batch its loss reads (``"lower"`` or ``"upper"``) and the
    norm its derivative is clipped to (None: no clip)."""

    name: str
    level: Level
    optimizer: torch.optim.Optimizer
    every: int = 1
    batch: str = "upper"
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise ValueError(f"level {self.name!r}: every must be >= 1, got {self.every}")
        if self.batch not in ("lower", "upper"):
            raise ValueError(f"level {self.name!r}: batch must be 'lower' or 'upper', got {self.batch!r}")


class MultilevelLoop:
    """Steps every level of a multilevel problem on its schedule (module docstring).

    ``step(lower_batch, upper_batch)`` returns floats: ``step``, and per level that stepped
    ``loss/NAME`` (its loss at the values before the step) and ``grad_norm/NAME``; levels with levels
    below also ``hypergrad_time_s/NAME``. ``state_dict``/``load_state_dict``: the step count and the
    optimizers' states (the variables are the caller's to save).
    """

    def __init__(self, levels: Sequence[LoopLevel], method: str, method_options: dict[str, Any] | None = None,
                 hooks: Iterable[Hook] = ()) -> None:
        if len(levels) < 2:
            raise ValueError(f"a multilevel loop needs at least 2 levels, got {len(levels)}")
        names = [lv.name for lv in levels]
        if len(set(names)) != len(names):
            raise ValueError(f"level names must be unique, got {names}")
        if method not in MULTILEVEL_METHODS:
            raise ValueError(f"method {method!r} cannot differentiate through more than one level; choose one of "
                             f"{', '.join(MULTILEVEL_METHODS)}")
        options = dict(method_options or {})
        lists = sorted(k for k, v in options.items() if isinstance(v, (list, tuple)))
        if lists:
            raise ValueError(f"option {lists[0]} of a multilevel loop takes one number for every level")
        self.levels = list(levels)
        self.method, self.options = method, options
        self.hooks = list(hooks)
        self.step_count = 0
        resolve_options(method, options, len(self.levels))  # a bad option fails here, before the first step

    def _chain(self, i: int) -> list[Level]:
        """Levels ``i..n-1`` with the variables of the levels above ``i`` held at their values."""
        above = detached({k: v for lv in self.levels[:i] for k, v in lv.level.variables.items()})

        def held(loss: Callable[[TensorDict, Any], torch.Tensor]) -> Callable[[TensorDict, Any], torch.Tensor]:
            return lambda values, batch: loss({**above, **values}, batch)

        return [Level(lv.level.variables, held(lv.level.loss)) for lv in self.levels[i:]]

    def step(self, lower_batch: Any, upper_batch: Any) -> dict[str, Any]:
        """One step of every level that is due, top first."""
        s = self.step_count
        stats: dict[str, Any] = {"step": s}
        batches = [lower_batch if lv.batch == "lower" else upper_batch for lv in self.levels]
        for i, lv in enumerate(self.levels):
            if s % lv.every:
                continue
            variables = lv.level.variables
            chain = self._chain(i)
            if len(chain) == 1:  # the bottom: its loss's own gradient, the levels above fixed
                leaves = detached(variables, requires_grad=True)
                loss = chain[0].loss(leaves, batches[i])
                grads = grad(loss, leaves)
                value = float(loss.detach())
            else:
                hg = multilevel_hypergradient(chain, self.method, batches[i:], **self.options)
                grads, value = dict(hg), float(hg.diagnostics["top_loss"])
                stats[f"hypergrad_time_s/{lv.name}"] = hg.diagnostics["time_s"]
            if not math.isfinite(value):
                raise NonFiniteError(f"step {s}: the loss of level {lv.name!r} is not finite; lower the learning "
                                     "rates, clip gradients, or check the data for NaN/Inf")
            for name, t in variables.items():
                t.grad = grads[name].to(t.dtype)
            norm = float(torch.nn.utils.clip_grad_norm_(list(variables.values()), lv.grad_clip or math.inf))
            if not math.isfinite(norm):
                raise NonFiniteError(f"step {s}: the derivative of level {lv.name!r} is not finite")
            lv.optimizer.step()
            lv.optimizer.zero_grad(set_to_none=True)
            stats[f"loss/{lv.name}"], stats[f"grad_norm/{lv.name}"] = value, norm
        for hook in self.hooks:
            hook(self, stats)
        self.step_count += 1
        return stats

    def state_dict(self) -> dict[str, Any]:
        """The step count and every level's optimizer state."""
        return {"step": self.step_count, "optimizers": {lv.name: lv.optimizer.state_dict() for lv in self.levels}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        for lv in self.levels:
            lv.optimizer.load_state_dict(state["optimizers"][lv.name])

