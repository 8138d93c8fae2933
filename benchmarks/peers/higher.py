"""facebookresearch/higher: reverse-mode unrolled differentiation (``rad``) only.

Used as its README shows: ``higher.innerloop_ctx(model, opt)`` gives a functional model and a
differentiable optimizer; ``diffopt.step(loss)`` T times, then the upper loss is differentiated
with ``torch.autograd.grad`` w.r.t. the upper variables.
"""
from __future__ import annotations

import torch

from . import LoopPlan, LoopRunner, NotRunnable, Runner, load_, set_grads, upper_adam, upper_grads

LIBRARY = "higher"
METHODS = ("rad",)


def available() -> tuple[bool, str]:
    try:
        import higher  # noqa: F401
        from importlib.metadata import version
        return True, version("higher")
    except Exception as e:  # pragma: no cover - depends on the environment
        return False, f"not installed ({type(e).__name__})"


def build(spec, s) -> Runner:
    import higher

    if s.method != "rad":
        raise NotRunnable(f"higher has no {s.method}")
    model = spec.lower_module()
    hp = {k: v.detach().clone().requires_grad_() for k, v in spec.x0.items()}
    opt = torch.optim.SGD(model.parameters(), lr=spec.lr)

    def run():
        with higher.innerloop_ctx(model, opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(s.T):
                diffopt.step(spec.lower_loss(fmodel, list(fmodel.parameters()), hp, spec.lower_batch))
            return upper_grads(spec.upper_loss(fmodel, list(fmodel.parameters()), hp, spec.upper_batch), hp)

    def reset():
        load_(model, spec.y0)

    return Runner(run, reset)


def loop(spec, s, plan: LoopPlan) -> LoopRunner:
    """Each iteration: ``innerloop_ctx`` from the module's current weights, T ``diffopt.step``, the
    upper gradient, an Adam step; the last weights are copied back into the module."""
    import higher

    if s.method != "rad":
        raise NotRunnable(f"higher has no {s.method}")
    model = spec.lower_module()
    hp = {k: v.detach().clone().requires_grad_() for k, v in spec.x0.items()}
    inner_opt = torch.optim.SGD(model.parameters(), lr=spec.lr)
    opt = upper_adam(hp.values(), plan)

    def step(i):
        lb = plan.lower(i)
        with higher.innerloop_ctx(model, inner_opt, copy_initial_weights=False) as (fmodel, diffopt):
            for _ in range(s.T):
                diffopt.step(spec.lower_loss(fmodel, list(fmodel.parameters()), hp, lb))
            F = spec.upper_loss(fmodel, list(fmodel.parameters()), hp, plan.upper(i))
            set_grads(hp.values(), torch.autograd.grad(F, list(hp.values()), allow_unused=True))
            last = [p.detach() for p in fmodel.parameters()]
        with torch.no_grad():
            for p, q in zip(model.parameters(), last):
                p.copy_(q)
        opt.step()

    return LoopRunner(step, lambda: (dict(model.named_parameters()), hp))
