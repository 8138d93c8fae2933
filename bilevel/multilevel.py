"""More than two levels: a chain of nested minimisations and the top loss's total derivative.

    levels = [Level({"x": x}, F), Level({"y": y}, f1), Level({"z": z}, f2)]   # top first
    grads = multilevel_hypergradient(levels, "cg", iters=20)                   # grads["x"]

Level ``i``'s variables ``w_i`` minimise its loss ``l_i(w_0, ..., w_{n-1}; batch_i)`` given the
levels above (fixed) and with the levels below at their best responses ``w_j*(w_0..w_{j-1})``,
``j > i``. The result is ``d l_0 / d w_0`` through every best response. Every loss is a pure
function of one merged dict name -> tensor holding all levels' variables; names are unique.

Methods:

``rad``: nested unrolling. The response of level ``i >= 1`` is ``steps[i]`` plain gradient steps
    ``w <- w - lr[i] * d l_i / d w`` from its current values, where every evaluation of ``l_i``
    uses the (differentiable) unrolled responses of the levels below it, recursively; the top
    gradient is backpropagated through all of it. Exact derivative of the unrolled map. Cost and
    memory grow with the product of the steps of the levels below the top:
    ``prod_{i>=1} (steps[i] + 1)`` bottom-level evaluations (exponential in depth; fine for three
    levels and small sizes).
``one_step``: the one-step approximation of every best response (DARTS's second order, nested): each
    level below the top takes ONE plain gradient step of ``lr`` from its current values (through the
    one-step responses of the levels below it) and the top gradient is backpropagated through them
    (``rad`` with ``steps=1``): ``prod (1 + 1)`` bottom evaluations, ``2^(n-1)``.
``first_order``: no response at all: the top loss's partial derivative at the current values of every
    level (DARTS's first order), one backward pass.
``cg``: implicit differentiation at every level. Optionally the levels below the top are first
    solved by the same nested gradient steps, detached (``steps``, ``lr``; ``steps=0``, the
    default, takes the given values as the solution, as ``hypergradient(..., "cg")`` does). Then,
    from the bottom up, the total derivative through level ``k``'s best response applies the
    implicit function theorem: with ``c`` the derivative w.r.t. levels ``0..k`` (levels below
    ``k`` already folded in), ``H_k p = c[w_k]`` is solved by conjugate gradient and
    ``c[v] - d/dv <g_k, p>`` is the derivative w.r.t. the levels ``v`` above ``k``. Here ``g_k``
    is level ``k``'s reduced gradient (its loss's total gradient w.r.t. ``w_k``, through the
    levels below, itself built this way with ``create_graph``) and ``H_k q`` its total derivative
    along ``q`` (a product with the Hessian of the reduced loss, curvature of the lower best
    responses included). Exact for any depth when every CG solve converges (the inner solves are
    differentiated through their iterations). Cost: ``iters^(n-1)`` Hessian-vector products of the
    bottom level for ``n`` levels, each through ``n - 1`` nested backward passes.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from torch import Tensor

from .base import Hypergradient
from .problem import _variables
from .solvers import conjugate_gradient
from .tensors import TensorDict, axpy, detached, grad, norm, vjp

LevelLoss = Callable[[TensorDict, Any], Tensor]


class Level:
    """One level of a multilevel problem.

    Args:
        variables: name -> floating-point leaf tensor (any shapes); names unique across levels.
        loss: ``loss(all_variables, batch) -> 0-d tensor``, a pure function of one dict holding
            the variables of every level (name -> tensor) and this level's batch.
    """

    def __init__(self, variables: Mapping[str, Tensor], loss: LevelLoss) -> None:
        self.variables: TensorDict = _variables(variables, "Level variables")
        if not callable(loss):
            raise TypeError("Level loss must be a callable loss(all_variables, batch) -> Tensor")
        self.loss = loss

    def __repr__(self) -> str:
        return f"Level({sorted(self.variables)}, {sum(t.numel() for t in self.variables.values())} values)"


@dataclass
class _Chain:
    """The levels of one call, their batches and per-level step options (index 0 unused)."""

    levels: list[Level]
    batches: list[Any]
    steps: list[int]
    lr: list[float]

    @property
    def n(self) -> int:
        return len(self.levels)

    def loss(self, i: int, values: TensorDict) -> Tensor:
        return self.levels[i].loss(values, self.batches[i])

    def start(self, i: int) -> TensorDict:
        """Level ``i``'s given values as fresh leaves requiring grad (sharing storage, unchanged)."""
        return detached(self.levels[i].variables, requires_grad=True)

    def respond(self, i: int, above: TensorDict, graph: bool) -> TensorDict:
        """The unrolled responses of levels ``i..n-1`` given ``above`` (levels ``0..i-1``).

        ``graph``: differentiable w.r.t. ``above`` (``rad``); otherwise values only, each step's
        gradient still taken through the levels below (detached solve of ``cg``)."""
        if i == self.n:
            return {}
        fixed = above if graph else detached(above)
        w = self.start(i)
        for _ in range(self.steps[i]):
            if not graph:
                w = detached(w, requires_grad=True)
            below = self.respond(i + 1, {**fixed, **w}, True)
            g = grad(self.loss(i, {**fixed, **w, **below}), w, create_graph=graph)
            w = axpy(-self.lr[i], g, w)
        if not graph:
            w = detached(w, requires_grad=True)
        return {**w, **self.respond(i + 1, {**fixed, **w}, graph)}


class _Implicit:
    """The recursive implicit function theorem at fixed values of every level (independent leaves).

    ``total(k, c)``: ``c`` holds partial derivatives w.r.t. every variable of a function of all
    levels; the result is its total derivative w.r.t. levels ``0..k-1`` with levels ``k..n-1`` at
    their best responses (first-order chain rule through them, by the IFT)."""

    def __init__(self, chain: _Chain, values: TensorDict, iters: int, tol: float) -> None:
        self.chain, self.values, self.iters, self.tol = chain, values, iters, tol
        self.names = [list(level.variables) for level in chain.levels]
        self.reduced: dict[int, TensorDict] = {}  # level k -> g_k with graph, built once
        self.cg_iters = 0
        self.residual = 0.0

    def partials(self, output: Tensor, create_graph: bool) -> TensorDict:
        return grad(output, self.values, create_graph=create_graph, retain_graph=True)

    def g(self, k: int) -> TensorDict:
        """Level ``k``'s reduced gradient ``d l_k / d w_k`` through the levels below (graph kept)."""
        if k not in self.reduced:
            c = self.partials(self.chain.loss(k, self.values), True)
            self.reduced[k] = {name: self.total(k + 1, c, True)[name] for name in self.names[k]}
        return self.reduced[k]

    def total(self, k: int, c: TensorDict, create_graph: bool) -> TensorDict:
        if k == self.chain.n:
            return c
        c = self.total(k + 1, c, create_graph)  # levels 0..k
        g = self.g(k)

        def through(vector: TensorDict) -> TensorDict:  # d/d(levels 0..k) <g_k, vector>, total
            # (vector held constant: a vjp, differentiable in vector too when create_graph)
            partial = vjp(g, self.values, vector, create_graph=create_graph, retain_graph=True)
            return self.total(k + 1, partial, create_graph)

        b = {name: c[name] for name in self.names[k]}
        if float(norm(b)) == 0.0:
            return {name: c[name] for i in range(k) for name in self.names[i]}
        with warnings.catch_warnings():  # CG's tolerance test reads a graph-carrying residual
            warnings.filterwarnings("ignore", message="Converting a tensor with requires_grad")
            p, it, residual = conjugate_gradient(
                lambda q: {name: v for name, v in through(q).items() if name in b}, b, self.iters, self.tol)
        self.cg_iters += it
        self.residual = max(self.residual, residual)
        mixed = through(p)
        return {name: c[name] - mixed[name] for i in range(k) for name in self.names[i]}


def _per_level(name: str, value: Any, n: int, integer: bool, allow_zero: bool) -> list:
    """``value`` (one number, or a list with one per level below the top) as a list of length
    ``n`` whose entry 0 (the top's) is an unused ``None``."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * (n - 1)
    if len(values) != n - 1:
        raise ValueError(f"option {name} needs one value per level below the top ({n - 1}), got {len(values)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)) or v < 0 or (v == 0 and not allow_zero):
            kind = "an integer" if integer else "a number"
            raise ValueError(f"option {name} must be {kind} {'>= 0' if allow_zero else '> 0'}, got {v!r}")
    return [None, *values]


_OPTIONS = {"rad": {"steps": 10, "lr": 0.1}, "cg": {"iters": 20, "tol": 1e-10, "steps": 0, "lr": 0.1},
            "one_step": {"lr": 0.1}, "first_order": {}}
#: the multilevel methods: exact (``rad``, ``cg``) and the one-step approximations (``one_step``, ``first_order``)
MULTILEVEL_METHODS = tuple(_OPTIONS)


def resolve_options(method: str, options: Mapping[str, Any], n: int) -> tuple[str, dict[str, Any], list, list]:
    """What ``method`` computes over ``n`` levels with ``options``: ``(kind, options, steps, lr)``, ``kind``
    ``"rad"`` or ``"cg"`` (the approximations are ``rad`` with one step, or none), the options with their
    defaults, and ``steps`` / ``lr`` per level (entry 0, the top's, unused). ``ValueError`` for an unknown
    method or option or a bad value: called before any computation, by ``multilevel_hypergradient`` and
    by ``MultilevelLoop`` at construction."""
    if method not in _OPTIONS:
        raise ValueError(f"unknown multilevel method {method!r}; choose one of: {', '.join(sorted(_OPTIONS))}")
    unknown = sorted(set(options) - set(_OPTIONS[method]))
    if unknown:
        raise ValueError(f"method {method!r} has no option {', '.join(map(repr, unknown))}; "
                         f"its options are: {', '.join(sorted(_OPTIONS[method])) or '(none)'}")
    kind, opts = method, {**_OPTIONS[method], **options}
    if method in ("one_step", "first_order"):  # unrolling by one step, or by none
        kind, opts = "rad", {"steps": 1 if method == "one_step" else 0, "lr": opts.get("lr", 0.1)}
    steps = _per_level("steps", opts["steps"], n, True, kind == "cg" or method == "first_order")
    lr = _per_level("lr", opts["lr"], n, False, False)
    if kind == "cg":
        if isinstance(opts["iters"], bool) or not isinstance(opts["iters"], int) or opts["iters"] <= 0:
            raise ValueError(f"option iters must be an integer > 0, got {opts['iters']!r}")
        if isinstance(opts["tol"], bool) or not isinstance(opts["tol"], (int, float)) or opts["tol"] < 0:
            raise ValueError(f"option tol must be a number >= 0, got {opts['tol']!r}")
    return kind, opts, steps, lr


def multilevel_hypergradient(levels: Sequence[Level], method: str, batches: Sequence[Any] | None = None,
                             **options: Any) -> Hypergradient:
    """Total derivative of the top loss w.r.t. the top variables, through every level below.

    Args:
        levels: ``n >= 2`` levels, top first; level ``i`` minimises its loss given levels
            ``0..i-1``, with levels ``i+1..n-1`` at their best responses.
        method: ``"rad"`` (nested unrolling; options ``steps=10``, ``lr=0.1``, each a number or a
            list with one value per level below the top) or ``"cg"`` (implicit differentiation at
            every level; options ``iters=20``, ``tol=1e-10`` of each CG solve, and ``steps=0``,
            ``lr=0.1`` of a detached nested-gradient solve of the levels below first; 0 steps uses
            the given values); the approximations ``"one_step"`` (option ``lr=0.1``) and
            ``"first_order"``. See the module docstring for what each computes and costs.
        batches: one batch per level, top first, handed to its loss; ``None``: ``None`` for all.

    Returns:
        ``Hypergradient``: top-variable name -> gradient (detached, the variable's shape), with
        ``.diagnostics`` (``method``, ``levels``, ``top_loss``, ``time_s``, ``grad_norm``; ``cg``:
        ``cg_iters`` over all solves, the largest final ``residual``). No variable is changed.
    """
    levels = list(levels)
    if len(levels) < 2:
        raise ValueError(f"a multilevel problem needs at least 2 levels, got {len(levels)}")
    if not all(isinstance(level, Level) for level in levels):
        raise TypeError("levels must be bilevel.Level objects, top first")
    seen: set[str] = set()
    for level in levels:
        clash = seen & set(level.variables)
        if clash:
            raise ValueError(f"variable names used by more than one level: {sorted(clash)}; rename them")
        seen |= set(level.variables)
    n = len(levels)
    kind, opts, steps, lr = resolve_options(method, options, n)
    batches = [None] * n if batches is None else list(batches)
    if len(batches) != n:
        raise ValueError(f"batches needs one entry per level ({n}), got {len(batches)}")
    chain = _Chain(levels, batches, steps, lr)

    start = time.perf_counter()
    x = chain.start(0)
    diagnostics: dict[str, Any]
    if kind == "rad":
        top = chain.loss(0, {**x, **chain.respond(1, x, True)})
        grads = grad(top, x)
        diagnostics = {"steps": chain.steps[1:], "lr": chain.lr[1:]}
    else:
        values = {**x, **chain.respond(1, x, False)}
        top = chain.loss(0, values)
        ift = _Implicit(chain, values, opts["iters"], opts["tol"])
        total = ift.total(1, ift.partials(top, False), False)
        grads = {name: total[name] for name in x}
        diagnostics = {"steps": chain.steps[1:], "cg_iters": ift.cg_iters, "residual": ift.residual}
    grads = {k: g.detach() for k, g in grads.items()}
    return Hypergradient(grads, {"method": method, "levels": n, "time_s": time.perf_counter() - start,
                                 "top_loss": float(top.detach()), **diagnostics,
                                 "grad_norm": float(norm(grads))})
