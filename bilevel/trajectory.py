"""Reverse-mode differentiation through a lower trajectory, whole or by checkpointed segments.

The unrolled methods differentiate ``F(x, y_T)`` where ``(y_{t+1}, s_{t+1}) = step_t(x, y_t, s_t)``
(``s``: the lower rule's state, momentum buffers or Adam moments). Kept whole, the graph of all
``T`` steps lives until the backward pass: memory grows with ``T``.

With checkpoints every ``K`` steps the trajectory is run once without a graph, keeping only the
(detached) ``(y, s)`` at steps ``0, K, 2K, ...``; the last segment is run with its graph and
differentiated, and then, from the last segment to the first, each segment is run again from its
checkpoint with a graph and the adjoint ``(d F / d y_b, d F / d s_b)`` at its end is pulled back
through it in one vector-Jacobian product, which gives the adjoint at its start and adds the
segment's contribution to ``d F / d x``. At most one segment's graph is alive at a time: memory is
``T/K`` checkpoints of ``(y, s)`` plus ``K`` steps of graph instead of ``T`` steps, for ``T - K``
extra lower steps without a graph (segments are counted from the end, so the last, which is not
recomputed, is a full ``K`` steps). The result is the same derivative (the same operations on the
same values), to round-off.

``torch.utils.checkpoint`` does not fit: each lower step itself calls ``torch.autograd.grad``
(``create_graph=True``) inside the forward pass. With ``use_reentrant=True`` the segment's outputs
come back without a graph (an error); with ``use_reentrant=False`` the result is right, but every
inner ``autograd.grad`` unpacks tensors the checkpoint has dropped and recomputes the segment up
to that step (torch 2.14: 18 loss evaluations in the forward pass for 2 segments of 3 steps
instead of 6), quadratic in the segment length. The explicit segment-by-segment adjoint runs
each step at most twice, lets the rule state (Adam moments, step counts) cross segment
boundaries as plain values, and bounds the memory by construction.
"""
from __future__ import annotations

from typing import Callable

from torch import Tensor

from .lower_adam import RuleState
from .lower_step import detach_state
from .tensors import TensorDict, detached, grad, vjp

# advance(t, y, s, differentiable) -> (y, s): lower step number t (0-based); with
# ``differentiable`` the step keeps its graph towards y, s and x, else it returns plain tensors.
Advance = Callable[[int, TensorDict, RuleState | None, bool], tuple[TensorDict, RuleState | None]]

_Y, _S = "\0y/", "\0s/"


def _leaves(y: TensorDict, state: RuleState | None) -> TensorDict:
    """The tensors of ``(y, s)`` that carry an adjoint, under prefixed names."""
    out = {_Y + k: v for k, v in y.items()}
    for k, v in (state or {}).items():
        if isinstance(v, Tensor) and v.requires_grad:
            out[_S + k] = v
    return out


def _run(advance: Advance, start: int, stop: int, y: TensorDict, state: RuleState | None,
         differentiable: bool) -> tuple[TensorDict, RuleState | None]:
    for t in range(start, stop):
        y, state = advance(t, y, state, differentiable)
    return y, state


def trajectory_gradient(advance: Advance, y0: TensorDict, state0: RuleState | None, steps: int,
                        terminal: Callable[[TensorDict], Tensor], x: TensorDict, every: int | None = None
                        ) -> tuple[TensorDict, Tensor]:
    """``d terminal(y_steps) / d x`` along ``steps`` calls of ``advance`` from ``(y0, state0)``.

    ``y0`` may depend on ``x`` (a learnable initial point): the gradient includes that path.
    ``every``: checkpoint interval ``K`` (``None``, or ``>= steps``: the whole graph at once).
    Returns the gradients (shapes of ``x``'s tensors) and the terminal value (0-d, with graph)."""
    every = steps if every is None or every >= steps else every
    # segments of ``every`` steps counted from the end (the first takes the remainder): the last
    # one, run with its graph in the forward sweep, is the longest and is never recomputed
    cuts = sorted({0, *range(steps, 0, -every)})
    bounds = list(zip(cuts[:-1], cuts[1:])) or [(0, 0)]
    checkpoints = []
    y, state = y0, state0
    for a, b in bounds[:-1]:  # without a graph, keeping each segment's start
        checkpoints.append((y, state))
        y, state = _run(advance, a, b, y, state, differentiable=False)
    if checkpoints:
        y, state = detached(y, requires_grad=True), detach_state(state, requires_grad=True)
    start = _leaves(y, state)
    y, _ = _run(advance, *bounds[-1], y, state, differentiable=True)
    value = terminal(y)
    if not checkpoints:
        return grad(value, x), value
    g = grad(value, {**x, **start})
    total = {k: g[k] for k in x}
    adjoint = {k: g[k] for k in start}
    for (a, b), (y_a, s_a) in zip(reversed(bounds[:-1]), reversed(checkpoints)):
        if a > 0:  # the first segment starts from y0 itself, whose graph may lead to x
            y_a, s_a = detached(y_a, requires_grad=True), detach_state(s_a, requires_grad=True)
        start = _leaves(y_a, s_a) if a > 0 else {}
        y_b, s_b = _run(advance, a, b, y_a, s_a, differentiable=True)
        end = {k: v for k, v in _leaves(y_b, s_b).items() if k in adjoint}
        g = vjp(end, {**x, **start}, adjoint)
        for k in x:
            total[k] = total[k] + g[k]
        adjoint = {k: g[k] for k in start}
    return total, value
