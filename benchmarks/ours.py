"""Our side: ``bilevel.hypergradient`` on a ``BilevelProblem`` of dicts, as bilevel's README shows.

The losses receive dicts name -> tensor and run the lower module with ``bilevel.call``
(``torch.func.functional_call``). No lower optimizer is passed: unrolled methods take plain steps
``y <- y - lr * grad_y f`` with the same ``lr`` as every peer. On problem (c) cg/neumann first
take T lower steps with ``BilevelLoop.lower_step`` (plain ``torch.optim.SGD``, our loop's lower
step) and then compute the hypergradient at the result, as the peers do.
"""
from __future__ import annotations

import torch

from .peers import LoopPlan, LoopRunner, NotRunnable, Runner, start_point, upper_adam

LIBRARY = "ours"


def available() -> tuple[bool, str]:
    try:
        import bilevel  # noqa: F401
        return True, "bilevel (this repo)"
    except Exception as e:
        return False, f"bilevel not importable ({type(e).__name__}: {e})"


def options(spec, s) -> dict:
    """Our options for a setting (the contract's names)."""
    m, T, K, lr = s.method, s.T, s.K, spec.lr
    if m == "darts1":
        return {}
    if m == "darts2":
        return {"xi": s.opts["xi"], "hvp": s.opts.get("hvp", "finite_difference")}
    if m in ("rad", "fad"):
        return {"steps": T, "lr": lr}
    if m == "trad":
        return {"steps": T, "truncate": K, "lr": lr}
    warm = {"warm_start": True} if s.opts.get("warm_start") else {}
    if m == "cg":
        return {"iters": K, "tol": s.opts.get("tol", 0.0), **warm}
    if m == "neumann":
        return {"iters": K, "alpha": s.opts["alpha"], **warm}
    # stochastic methods: v's step (soba family, amigo) / the Neumann step (stocbio) is lr
    if m in ("soba", "saba"):
        return {"v_lr": s.opts.get("v_lr", lr)}
    if m == "ma_soba":
        return {"v_lr": s.opts.get("v_lr", lr), "theta": s.opts.get("theta", 0.5)}
    if m == "stocbio":
        return {"iters": K, "alpha": s.opts.get("alpha", lr)}
    if m == "amigo":
        return {"steps": K, "lr": s.opts.get("alpha", lr)}
    if m == "bda":
        return {"steps": T, "lr": lr, "upper_lr": lr, "mu": s.opts["mu"], "mu_decay": s.opts.get("mu_decay")}
    if m == "iaptt":
        return {"steps": T, "lr": lr, "auxiliary_init": True}
    if m == "ias":
        return {}
    if m == "fdhg":
        return {"xi": s.opts["xi"]}
    # joint methods: one iteration from the start point (a fresh method each call: no state
    # carried between timed calls); T = steps of the value-function estimate
    if m == "bvfim":
        return {"steps": T, "lr": lr, "decay": 0.0}
    if m == "bome":
        return {"steps": T, "lr": lr, "eta": s.opts.get("eta", 0.5)}
    if m == "pbgd":
        return {"gamma": s.opts["gamma"], "steps": T, "lr": lr}
    if m == "meha":
        return {"gamma": s.opts["gamma"], "eta": lr, "steps": 1, "c0": s.opts["c0"], "p": 0.25}
    if m == "f2sa":
        return {"steps": T, "lr": lr}
    raise NotRunnable(f"unknown method {m}")


def _problem(spec, y_start):
    """(``BilevelProblem``, lower dict, upper dict): fresh leaves at ``y_start`` and ``spec.x0``,
    the losses running the lower module with ``bilevel.call``."""
    import bilevel

    module = spec.lower_module()
    names = [n for n, _ in module.named_parameters()]
    lower = {n: y_start[n].detach().clone().requires_grad_() for n in names}
    upper = {k: v.detach().clone().requires_grad_() for k, v in spec.x0.items()}

    def f(lo, up, batch):
        return spec.lower_loss(lambda z: bilevel.call(module, lo, z), [lo[n] for n in names], up, batch)

    def F(lo, up, batch):
        return spec.upper_loss(lambda z: bilevel.call(module, lo, z), [lo[n] for n in names], up, batch)

    return bilevel.BilevelProblem(lower=lower, upper=upper, lower_loss=f, upper_loss=F), lower, upper


def build(spec, s) -> Runner:
    import bilevel

    if s.method not in bilevel.METHODS:
        raise NotRunnable(f"bilevel has no {s.method}")
    opts = options(spec, s)
    bilevel.make_method(s.method, opts)  # option errors surface here, not in the timed call
    y_start = start_point(spec, s.method)
    problem, lower, upper = _problem(spec, y_start)
    pre = s.T if s.method in ("cg", "neumann") else 0
    loop = bilevel.BilevelLoop(problem, s.method, torch.optim.SGD(list(upper.values()), lr=0.0),
                               torch.optim.SGD(list(lower.values()), lr=spec.lr),
                               method_options=opts, lower_steps=pre) if pre else None

    def run():
        if loop is not None:
            loop.lower_step(spec.lower_batch)
        hg = bilevel.hypergradient(problem, s.method, spec.lower_batch, spec.upper_batch, **opts)
        return {k: hg[k] for k in upper}

    def reset():
        with torch.no_grad():
            for n, t in lower.items():
                t.copy_(y_start[n])

    return Runner(run, reset, note(opts))


def loop(spec, s, plan: LoopPlan) -> LoopRunner:
    """``bilevel.BilevelLoop`` from the start point: per iteration the hypergradient (methods that
    keep state, ``warm_start`` and the stochastic ones, keep it in the loop's method), one Adam step
    of the upper variables, then ``T`` SGD steps (``lower_steps``; the ``updates_lower`` methods
    take one step along their own lower direction instead)."""
    import bilevel

    if s.method not in bilevel.METHODS:
        raise NotRunnable(f"bilevel has no {s.method}")
    opts = options(spec, s)
    problem, lower, upper = _problem(spec, spec.y0)
    run = bilevel.BilevelLoop(problem, s.method, upper_adam(upper.values(), plan),
                              torch.optim.SGD(list(lower.values()), lr=spec.lr),
                              method_options=opts, lower_steps=max(1, s.T))

    def step(i):
        run.step(plan.lower(i), plan.upper(i))

    return LoopRunner(step, lambda: (lower, upper), note(opts))


def note(opts: dict) -> str:
    """Options as ``name=value, ...`` (floats to 3 digits)."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in opts.items())
