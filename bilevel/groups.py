"""Several upper groups, each with its own lower problem and schedule, stepped by one loop.

A *lower level* is a set of lower variables with their optimizer, update period and number of
steps. A *group* is one bilevel problem over a lower level (its lower variables, lower loss,
upper variables, upper loss) with its upper optimizer and update period. Groups may share a
lower level (DARTS-style: every architecture group over the same supernet weights) or each
have their own (RUAS: IEM weights on the IEM loss every step, NRM weights on the NRM loss every
10 steps). ``GroupedLoop.step`` runs, in group order: the group's upper step when due, then the
lower step of its lower level when due and when this group is the last one over that level
(so a shared lower level is stepped once per step, after all its groups' upper steps).

The loop knows no application: losses, variables and optimizers come from the caller.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import torch

from .loop import BilevelLoop, Reduce
from .problem import BilevelProblem

Hook = Callable[["GroupedLoop", dict[str, Any]], None]


@dataclass(eq=False)
class LowerLevel:
    """Lower variables' optimizer and schedule: ``steps`` optimizer steps every ``every`` loop steps,
    gradient norm clipped to ``grad_clip`` (None: no clipping)."""

    name: str
    optimizer: torch.optim.Optimizer
    every: int = 1
    steps: int = 1
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        for key in ("every", "steps"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"lower level {self.name!r}: {key} must be >= 1, got {getattr(self, key)}")


@dataclass(eq=False)
class Group:
    """One set of upper variables: ``problem`` (over ``lower``'s variables), its optimizer, its
    period ``every`` and hypergradient clip ``grad_clip``."""

    name: str
    problem: BilevelProblem
    optimizer: torch.optim.Optimizer
    lower: LowerLevel
    every: int = 1
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        if int(self.every) < 1:
            raise ValueError(f"group {self.name!r}: every must be >= 1, got {self.every}")


class GroupedLoop:
    """Steps every group's upper variables and every lower level on their schedules.

    Args:
        groups: the upper groups, in the order they are stepped.
        method: hypergradient method name (one method object per group, kept for the whole run so
            that methods with state keep it); ``method_options`` its config fields.
        amp: mixed precision for the lower steps on CUDA.
        hooks: ``hook(loop, stats)`` after every step.
        reduce: data parallelism: ``reduce(tensors)`` averages tensors in place over the processes
            (see ``BilevelLoop``); None (default): one process.

    ``step(lower_batch, upper_batch)`` returns a flat dict of floats: ``step``, and per group
    ``upper_loss/NAME``, ``hypergrad_norm/NAME``, ``hypergrad_time_s/NAME`` (when it stepped), per
    lower level ``lower_loss/NAME`` (when it stepped). ``state_dict``/``load_state_dict`` hold
    everything an exact resume needs besides the variables themselves (optimizers, step count,
    auxiliary variables of the methods).
    """

    def __init__(self, groups: Sequence[Group], method: str, method_options: dict[str, Any] | None = None,
                 amp: bool = False, hooks: Iterable[Hook] = (), reduce: Reduce | None = None) -> None:
        if not groups:
            raise ValueError("GroupedLoop needs at least one group")
        names = [g.name for g in groups]
        if len(set(names)) != len(names):
            raise ValueError(f"group names must be unique, got {names}")
        self.groups = list(groups)
        self.loops: dict[str, BilevelLoop] = {}
        shared_aux: dict[int, dict] = {}
        shared: dict[int, dict[str, Any]] = {}
        for g in self.groups:
            # groups over one lower level share one auxiliary dict (one IAPTT-GM initial point)
            # and one optimizer for it
            g.problem.auxiliary = shared_aux.setdefault(id(g.lower), g.problem.auxiliary)
            self.loops[g.name] = BilevelLoop(
                g.problem, method, g.optimizer, g.lower.optimizer, method_options=method_options,
                lower_steps=g.lower.steps, grad_clip=g.grad_clip, lower_grad_clip=g.lower.grad_clip, amp=amp,
                shared=shared.setdefault(id(g.lower), {}), reduce=reduce)
        self.last_of_level = {id(g.lower): g.name for g in self.groups}
        self.hooks = list(hooks)
        self.step_count = 0

    def levels(self) -> list[LowerLevel]:
        """The distinct lower levels, in group order."""
        seen: dict[int, LowerLevel] = {}
        for g in self.groups:
            seen.setdefault(id(g.lower), g.lower)
        return list(seen.values())

    def step(self, lower_batch: Any, upper_batch: Any) -> dict[str, Any]:
        """One step of every group that is due (see the module docstring)."""
        s = self.step_count
        stats: dict[str, Any] = {"step": s}
        for g in self.groups:
            loop = self.loops[g.name]
            loop.step_count = s
            due_upper = s % g.every == 0
            due_lower = self.last_of_level[id(g.lower)] == g.name and s % g.lower.every == 0
            if due_upper:
                out = loop.upper_step(lower_batch, upper_batch)
                stats.update({f"{k}/{g.name}": v for k, v in out.items()})
            if due_lower:
                out = loop.lower_step(lower_batch)
                stats[f"lower_loss/{g.lower.name}"] = out["lower_loss"]
                if "lower_grad_norm" in out:  # only when clipping
                    stats[f"lower_grad_norm/{g.lower.name}"] = out["lower_grad_norm"]
        for hook in self.hooks:
            hook(self, stats)
        self.step_count += 1
        return stats

    # -- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimizer states, the step count, the methods' auxiliary variables and state."""
        return {
            "step": self.step_count,
            "upper_optimizers": {g.name: g.optimizer.state_dict() for g in self.groups},
            "lower_optimizers": {lv.name: lv.optimizer.state_dict() for lv in self.levels()},
            "loops": {name: loop.state_dict() for name, loop in self.loops.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count = int(state["step"])
        for name, loop in self.loops.items():
            loop.load_state_dict(state["loops"][name])
        for g in self.groups:
            g.optimizer.load_state_dict(state["upper_optimizers"][g.name])
        for lv in self.levels():
            lv.optimizer.load_state_dict(state["lower_optimizers"][lv.name])
