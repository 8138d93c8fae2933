"""The bilevel problem: two sets of named variables and two pure losses.

Notation: upper variables ``x`` (architecture weights, loss weights, hyper-parameters), lower
variables ``y`` (network weights). Lower problem ``y*(x) in argmin_y f(x, y)``, upper problem
``min_x F(x, y*(x))``.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

TensorDict = dict[str, Tensor]
Loss = Callable[[TensorDict, TensorDict, Any], Tensor]


def call(module: nn.Module, tensors: Mapping[str, Tensor], *args: Any, **kwargs: Any) -> Any:
    """Run ``module`` with ``tensors`` (parameter and buffer names as in ``named_parameters``)
    standing in for its own; names it does not know are an error, missing ones fall back to
    the module's own tensors. A thin wrapper of ``torch.func.functional_call``."""
    return torch.func.functional_call(module, dict(tensors), args, kwargs, strict=False)


def _variables(value: Mapping[str, Tensor] | nn.Module, role: str) -> TensorDict:
    if isinstance(value, nn.Module):
        out = {name: p for name, p in value.named_parameters() if p.requires_grad}
    elif isinstance(value, Mapping):
        out = dict(value)
    else:
        raise TypeError(f"{role} must be a dict name -> tensor or an nn.Module, got {type(value).__name__}")
    if not out:
        raise ValueError(f"{role} has no variables: pass at least one tensor (or a module with parameters)")
    for name, t in out.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{role}[{name!r}] is a {type(t).__name__}, not a tensor")
        if not t.is_floating_point():
            raise TypeError(f"{role}[{name!r}] has dtype {t.dtype}; bilevel variables must be floating point")
        if not t.is_leaf:
            raise ValueError(
                f"{role}[{name!r}] is not a leaf tensor (it was computed from others); "
                "pass the tensor you optimise, e.g. torch.zeros(..., requires_grad=True) or an nn.Parameter")
    return out


class BilevelProblem:
    """A bilevel problem ``min_x F(x, y*(x))`` s.t. ``y*(x) in argmin_y f(x, y)``.

    Args:
        lower: the lower variables ``y``: a dict name -> leaf tensor, or an ``nn.Module`` whose
            trainable parameters are taken (and whose buffers, e.g. BatchNorm running statistics,
            are passed to the losses too).
        upper: the upper variables ``x``, same forms.
        lower_loss: ``f(lower, upper, batch) -> scalar``; ``lower`` is a dict holding the lower
            variables and the buffers, ``upper`` a dict of the upper variables.
        upper_loss: ``F(lower, upper, batch) -> scalar``, same arguments.
        buffers: extra non-differentiated tensors handed to the losses inside ``lower`` (running
            statistics of a module given as a dict of parameters). Hypergradient methods work on
            clones of them, so computing a hypergradient never moves the running statistics; the
            loop's lower step uses the real ones, as ordinary training would.

    The methods read the variables, never write them: the loop (or the caller) steps them.
    ``auxiliary`` holds upper-level variables that a method adds for itself (IAPTT-GM's initial
    point); the loop optimises them beside ``upper``.
    """

    def __init__(self, lower: Mapping[str, Tensor] | nn.Module, upper: Mapping[str, Tensor] | nn.Module,
                 lower_loss: Loss, upper_loss: Loss, buffers: Mapping[str, Tensor] | None = None) -> None:
        self.lower = _variables(lower, "lower")
        self.upper = _variables(upper, "upper")
        both = set(self.lower) & set(self.upper)
        if both:
            raise ValueError(f"names used by both lower and upper variables: {sorted(both)}; rename one side")
        if buffers is None and isinstance(lower, nn.Module):
            buffers = dict(lower.named_buffers())
        self.buffers: TensorDict = dict(buffers or {})
        clash = set(self.buffers) & (set(self.lower) | set(self.upper))
        if clash:
            raise ValueError(f"buffer names clash with variable names: {sorted(clash)}")
        if not callable(lower_loss) or not callable(upper_loss):
            raise TypeError("lower_loss and upper_loss must be callables f(lower, upper, batch) -> Tensor")
        self.lower_loss = lower_loss
        self.upper_loss = upper_loss
        self.auxiliary: TensorDict = {}

    def upper_variables(self) -> TensorDict:
        """The upper variables and the auxiliary ones a method added, name -> tensor."""
        return {**self.upper, **self.auxiliary}

    def __repr__(self) -> str:
        n_low = sum(t.numel() for t in self.lower.values())
        n_up = sum(t.numel() for t in self.upper.values())
        return f"BilevelProblem(lower={len(self.lower)} tensors/{n_low} values, upper={len(self.upper)} tensors/{n_up} values)"
