"""What every hypergradient method shares: its config, the evaluation context, the result type."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from .problem import BilevelProblem
from .tensors import TensorDict, cloned, detached, grad


class OptionError(TypeError):
    """An option a method does not have, or a value it cannot take."""


class Hypergradient(dict):
    """``dict`` upper-variable name -> gradient tensor (same shape), plus ``diagnostics``.

    ``diagnostics`` holds plain floats/ints: ``method``, ``time_s``, ``lower_loss`` and
    ``upper_loss`` (at the lower variables the method started from), ``grad_norm`` and the
    method's own figures (``cg_iters``, ``residual``, ``pessimistic_step``, ...).

    ``lower`` is ``None`` for the hypergradient methods. The joint methods (``updates_lower``:
    ``bvfim``, ``bome``, ``pbgd``, ``meha``, ``f2sa``, and the single-loop stochastic ``soba``,
    ``saba``, ``ma_soba``) also give their direction for the lower variables: a dict lower-name ->
    tensor (shapes of the lower variables) that the caller writes into the lower variables'
    ``.grad`` and steps the lower optimizer with, instead of the plain lower-loss gradient."""

    diagnostics: dict[str, Any]
    lower: TensorDict | None

    def __init__(self, grads: TensorDict, diagnostics: dict[str, Any], lower: TensorDict | None = None) -> None:
        super().__init__(grads)
        self.diagnostics = diagnostics
        self.lower = lower


@dataclass
class Context:
    """One hypergradient evaluation: the problem, its batches, and detached working copies.

    ``y`` (lower) and ``x`` (upper plus auxiliary) are fresh leaves sharing storage with the
    problem's variables; ``buffers`` are clones, so running statistics that a loss updates in
    place never leak into the problem."""

    problem: BilevelProblem
    lower_batch: Any
    upper_batch: Any
    lower_optimizer: torch.optim.Optimizer | None
    y: TensorDict
    x: TensorDict
    buffers: TensorDict
    lower_direction: TensorDict | None = None  # set by the joint methods' ``compute``

    @classmethod
    def create(cls, problem: BilevelProblem, lower_batch: Any, upper_batch: Any,
               lower_optimizer: torch.optim.Optimizer | None) -> "Context":
        return cls(problem, lower_batch, upper_batch, lower_optimizer,
                   y=detached(problem.lower, requires_grad=True),
                   x=detached(problem.upper_variables(), requires_grad=True),
                   buffers=cloned(problem.buffers))

    def partials(self, loss: Tensor, y: TensorDict) -> tuple[TensorDict, TensorDict]:
        """``(d loss / d x, d loss / d y)`` for the upper variables ``self.x`` and the lower ``y``
        (one backward pass)."""
        both = grad(loss, {**self.x, **{"\0" + k: v for k, v in y.items()}})
        return {k: both[k] for k in self.x}, {k: both["\0" + k] for k in y}

    def upper_only(self, x: TensorDict) -> TensorDict:
        """The problem's upper variables out of ``x`` (auxiliary ones dropped)."""
        return {k: x[k] for k in self.problem.upper}

    def f(self, y: TensorDict, x: TensorDict | None = None) -> Tensor:
        """Lower loss ``f(x, y)`` on the lower batch."""
        x = self.x if x is None else x
        return self.problem.lower_loss({**y, **self.buffers}, self.upper_only(x), self.lower_batch)

    def F(self, y: TensorDict, x: TensorDict | None = None) -> Tensor:
        """Upper loss ``F(x, y)`` on the upper batch."""
        x = self.x if x is None else x
        return self.problem.upper_loss({**y, **self.buffers}, self.upper_only(x), self.upper_batch)


class Method:
    """A hypergradient method: built from its config, ``compute`` returns gradients + diagnostics.

    Subclasses set ``name``, ``Config`` (a dataclass whose fields are the options, each with a
    documented default) and implement ``compute``. ``setup`` may add auxiliary upper variables
    to the problem (done once).

    ``updates_lower``: the method moves the lower variables itself (value-function, penalty and
    first-order methods): ``compute`` also sets ``ctx.lower_direction``, which
    ``hypergradient`` returns as ``Hypergradient.lower``. State such a method keeps across
    calls (auxiliary lower copies, iteration counters) lives in the method object: build it once
    (``make_method``), pass the object to every call, and checkpoint it with ``state_dict`` /
    ``load_state_dict``.

    What a loop asks of every method is declared here with its default, for subclasses to
    override: ``updates_lower``, ``state_dict`` / ``load_state_dict`` (no state),
    ``auxiliary_optimizer`` (none of its own), ``replicated_state`` (nothing to average),
    ``lower_values`` (none: the loop trains the lower variables)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type] = object
    updates_lower: ClassVar[bool] = False

    def __init__(self, config: Any) -> None:
        self.config = config

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "Method":
        fields = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(options) - fields)
        if unknown:
            valid = ", ".join(sorted(fields)) or "(none)"
            raise OptionError(f"method {cls.name!r} has no option {', '.join(map(repr, unknown))}; "
                              f"its options are: {valid}")
        return cls(cls.Config(**options))

    def setup(self, problem: BilevelProblem) -> None:
        """Add auxiliary variables to ``problem`` if the method needs them (default: none)."""

    def compute(self, ctx: Context) -> tuple[TensorDict, dict[str, Any]]:
        """Gradients for every name of ``ctx.x`` and the method's own diagnostics."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """What the method keeps across calls (tensors cloned), for checkpoints (default: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output (default: nothing to restore)."""
        if state:
            raise ValueError(f"method {self.name!r} keeps no state, got keys {sorted(state)}")

    def auxiliary_optimizer(self, params: list[Tensor]) -> torch.optim.Optimizer | None:
        """The optimizer for the auxiliary upper variables this method adds (``params``), or
        ``None`` to let the caller optimise them with the upper variables (default)."""
        return None

    def lower_values(self, problem: BilevelProblem) -> TensorDict | None:
        """Values a loop's lower step gives the lower variables instead of training them, or ``None``
        (default: the loop trains them). Meta-learning methods return the learned initialisation: their
        inner loops start from it and never read the lower variables, which then hold it for the caller
        to save as the network's weights."""
        return None

    def replicated_state(self) -> list[Tensor]:
        """The state tensors a data-parallel loop averages over the processes after each call
        (default: none)."""
        return []


def check_positive(name: str, value: float, integer: bool = False, allow_zero: bool = False) -> None:
    """Raise ``OptionError`` unless ``value`` is a positive number (an int when ``integer``)."""
    if integer and (not isinstance(value, int) or isinstance(value, bool)):
        raise OptionError(f"option {name} must be an integer, got {value!r}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise OptionError(f"option {name} must be a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise OptionError(f"option {name} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
