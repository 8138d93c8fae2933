"""metaopt/torchopt: implicit ``cg``/``neumann`` through ``torchopt.diff.implicit.custom_root``
and unrolled ``rad`` through ``torchopt.MetaSGD``, as in its README and tutorials.

Implicit: ``custom_root(stationary, argnums=1, solve=solve_cg(...) | solve_inv(ns=True, ...))``
decorates the inner solver (it takes the T plain lower steps, none on (a)/(b)); the stationarity
condition is ``torch.func.grad`` of the lower loss. Unrolled: ``MetaSGD(net, lr).step(loss)``
T times, then ``torch.autograd.grad`` of the upper loss; the start point is put back with
``extract_state_dict``/``recover_state_dict`` (not timed).
"""
from __future__ import annotations

import torch
from torch.func import functional_call

from . import LoopPlan, LoopRunner, NotRunnable, Runner, load_, set_grads, upper_adam, upper_grads

LIBRARY = "torchopt"
METHODS = ("cg", "neumann", "rad")


def _cext_note() -> str:
    try:
        import torchopt._C  # noqa: F401
        return ""
    except Exception:
        return "C++ ext. fails to load on this torch: Python ops"


def available() -> tuple[bool, str]:
    try:
        import torchopt
        return True, torchopt.__version__
    except Exception as e:  # pragma: no cover
        return False, f"not installed ({type(e).__name__})"


def _implicit_solver(spec, s):
    """(lower names, upper keys, inner, upper_grads): ``inner(y, meta, batch)`` takes the
    T plain lower steps from ``y`` inside ``custom_root``; ``upper_grads(y, meta, batch)``
    differentiates the upper loss at its result through the implicit function."""
    import torchopt

    model = spec.lower_module()
    names = [n for n, _ in model.named_parameters()]
    keys = list(spec.x0)

    def f(params, meta, batch):  # params: tuple of lower tensors, meta: tuple of upper tensors
        d = dict(zip(names, params))
        return spec.lower_loss(lambda z: functional_call(model, d, (z,)), list(params),
                               dict(zip(keys, meta)), batch)

    def stationary(params, meta, batch):
        return torch.func.grad(f, argnums=0)(params, meta, batch)

    if s.method == "cg":
        solve = torchopt.linear_solve.solve_cg(maxiter=s.K, rtol=0.0, atol=0.0)
    else:
        solve = torchopt.linear_solve.solve_inv(ns=True, maxiter=s.K, alpha=s.opts["alpha"])

    @torchopt.diff.implicit.custom_root(stationary, argnums=1, solve=solve)
    def inner(params, meta, batch):
        params = tuple(p.detach() for p in params)
        meta_d = tuple(m.detach() for m in meta)
        for _ in range(s.T):  # plain lower steps (hypergrad.py: on (c) only)
            with torch.enable_grad():
                ps = tuple(p.requires_grad_() for p in params)
                grads = torch.autograd.grad(f(ps, meta_d, batch), ps)
            params = tuple((p - spec.lr * g).detach() for p, g in zip(ps, grads))
        return params

    def upper_grads(y, meta, batch):
        d = dict(zip(names, y))
        F = spec.upper_loss(lambda z: functional_call(model, d, (z,)), list(y), dict(zip(keys, meta)), batch)
        return torch.autograd.grad(F, meta, allow_unused=True)

    return names, keys, inner, upper_grads


def _implicit(spec, s):
    names, keys, inner, upper_grads = _implicit_solver(spec, s)
    y0 = tuple(spec.y0[n].detach().clone() for n in names)
    meta = tuple(spec.x0[k].detach().clone().requires_grad_() for k in keys)

    def run():
        grads = upper_grads(inner(y0, meta, spec.lower_batch), meta, spec.upper_batch)
        return {k: (g if g is not None else torch.zeros_like(m)) for k, g, m in zip(keys, grads, meta)}

    return Runner(run, lambda: None)


def _unrolled(spec, s):
    import torchopt

    net = spec.lower_module()
    hp = {k: v.detach().clone().requires_grad_() for k, v in spec.x0.items()}
    optim = torchopt.MetaSGD(net, lr=spec.lr)
    net_state = torchopt.extract_state_dict(net, by="reference", detach_buffers=True)
    optim_state = torchopt.extract_state_dict(optim, by="reference")

    def run():
        for _ in range(s.T):
            optim.step(spec.lower_loss(net, list(net.parameters()), hp, spec.lower_batch))
        return upper_grads(spec.upper_loss(net, list(net.parameters()), hp, spec.upper_batch), hp)

    def reset():
        torchopt.recover_state_dict(net, net_state)
        torchopt.recover_state_dict(optim, optim_state)
        load_(net, spec.y0)

    return Runner(run, reset)


def build(spec, s) -> Runner:
    if s.method in ("cg", "neumann"):
        r = _implicit(spec, s)
    elif s.method == "rad":
        r = _unrolled(spec, s)
    else:
        raise NotRunnable(f"torchopt has no {s.method}")
    r.note = _cext_note()
    return r


def loop(spec, s, plan: LoopPlan) -> LoopRunner:
    """Implicit: the inner solver (``custom_root``) warm-starts from the previous iteration's lower
    variables; unrolled: ``MetaSGD`` steps, then ``stop_gradient`` on the module and optimizer."""
    import torchopt

    if s.method in ("cg", "neumann"):
        names, keys, inner, upper_grads = _implicit_solver(spec, s)
        y = [tuple(spec.y0[n].detach().clone() for n in names)]
        meta = tuple(spec.x0[k].detach().clone().requires_grad_() for k in keys)
        opt = upper_adam(meta, plan)

        def step(i):
            out = inner(y[0], meta, plan.lower(i))
            set_grads(meta, upper_grads(out, meta, plan.upper(i)))
            opt.step()
            y[0] = tuple(t.detach() for t in out)

        return LoopRunner(step, lambda: (dict(zip(names, y[0])), dict(zip(keys, meta))), _cext_note())
    if s.method != "rad":
        raise NotRunnable(f"torchopt has no {s.method}")
    net = spec.lower_module()
    hp = {k: v.detach().clone().requires_grad_() for k, v in spec.x0.items()}
    optim = torchopt.MetaSGD(net, lr=spec.lr)
    opt = upper_adam(hp.values(), plan)

    def step(i):
        lb = plan.lower(i)
        for _ in range(s.T):
            optim.step(spec.lower_loss(net, list(net.parameters()), hp, lb))
        F = spec.upper_loss(net, list(net.parameters()), hp, plan.upper(i))
        set_grads(hp.values(), torch.autograd.grad(F, list(hp.values()), allow_unused=True))
        opt.step()
        torchopt.stop_gradient(net)
        torchopt.stop_gradient(optim)

    return LoopRunner(step, lambda: (dict(net.named_parameters()), hp), _cext_note())
