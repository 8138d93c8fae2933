"""callous-youth/BOAT (``boat-torch``): RAD, T-RAD (RGT), CG, NS, FD (DARTS), BDA (GDA+RAD),
IAPTT-GM (DI + PTT + RAD).

Used as its examples show (``examples/data_hyper_cleaning``): a config dict with ``gm_op``
(dynamics) and ``na_op`` (hypergradient) operation lists, losses given as importable
``"module.function"`` paths with keyword ``params``, ``boat_torch.Problem(config, loss_config)``,
``build_ll_solver()``, ``build_ul_solver()`` and ``run_iter(...)`` with ``return_grad=True``
(the upper optimizer is not stepped). ``copy_last_param=False`` keeps the start point; BOAT's
loss log goes to ``os.devnull``. What is timed is the whole ``run_iter`` call, which also
evaluates both losses once more for its log.
"""
from __future__ import annotations

import os

import torch

from . import LoopPlan, LoopRunner, NotRunnable, Runner, UpperModule, load_, start_point, upper_adam

LIBRARY = "boat"
METHODS = ("rad", "trad", "cg", "neumann", "darts2", "bda", "iaptt", "fdhg", "bvfim", "bome", "pbgd", "meha")
# our joint methods -> BOAT's first-order operations (its docstrings swap the references of VSO
# and VFO: VSO is the log-barrier value-function method, VFO BOME's dynamic barrier)
FO = {"bvfim": "VSO", "bome": "VFO", "pbgd": "PGDO", "meha": "MESO"}
_HERE = __name__  # the loss functions below are handed to BOAT by their dotted path


def available() -> tuple[bool, str]:
    try:
        import boat_torch  # noqa: F401
        from importlib.metadata import version
        return True, version("boat-torch")
    except Exception as e:  # pragma: no cover
        return False, f"not installed ({type(e).__name__})"


def _view(model, params):
    if params is None:
        return model, list(model.parameters())
    return (lambda z: model(z, params=params)), list(params)


def ll_loss(ll_feed, ul_model, ll_model, spec=None, params=None, **kw):
    predict, w = _view(ll_model, params)
    return spec.lower_loss(predict, w, ul_model.as_dict(), ll_feed)


def ul_loss(ul_feed, ul_model, ll_model, spec=None, params=None, **kw):
    predict, w = _view(ll_model, params)
    return spec.upper_loss(predict, w, ul_model.as_dict(), ul_feed)


def gda_loss(ll_feed, ul_feed, ul_model, ll_model, spec=None, params=None, **kw):
    a = ll_feed["alpha"]
    return a * ul_loss(ul_feed, ul_model, ll_model, spec, params) + \
        (1 - a) * ll_loss(ll_feed, ul_model, ll_model, spec, params)


def _ops(spec, s):
    """(gm_op, na_op, lower_iters, lower lr, extra config) for our method name."""
    T, K = s.T, s.K
    if s.method == "rad":
        return ["NGD"], ["RAD"], T, spec.lr, {}
    if s.method == "trad":
        return ["NGD"], ["RGT", "RAD"], T, spec.lr, {"RGT": {"truncate_iter": T - K}}
    # BOAT's check_status needs lower_iters > RGT truncate_iter >= 0: at least one lower step
    if s.method == "cg":
        return ["NGD"], ["CG"], max(T, 1), spec.lr, {}
    if s.method == "neumann":
        return ["NGD"], ["NS"], max(T, 1), s.opts["alpha"], {}
    if s.method in ("darts2", "fdhg"):
        if s.opts.get("hvp", "finite_difference") != "finite_difference":
            raise NotRunnable("BOAT's FD is finite-difference only")
        return ["NGD"], ["FD"], 1, s.opts["xi"], {}
    if s.method == "bda":
        return ["GDA", "NGD"], ["RAD"], T, spec.lr, {
            "GDA": {"alpha_init": s.opts["mu"], "alpha_decay": s.opts.get("mu_decay", 1.0)}}
    if s.method == "iaptt":
        return ["DI", "NGD"], ["PTT", "RAD"], T, spec.lr, {"DI": {"lr": spec.lr}}
    raise NotRunnable(f"BOAT has no {s.method}")


def _fo(spec, s) -> tuple[str, dict]:
    """(fo_op, its config) at our settings (benchmarks/ours.py), one call = one iteration."""
    lr = spec.lr
    if s.method == "bvfim":
        return "VSO", {"z_loop": s.T, "z_lr": lr, "ll_l2_reg": 0.0, "ul_l2_reg": 0.0, "ul_ln_reg": 0.1,
                       "reg_decay": 0.0}
    if s.method == "bome":
        return "VFO", {"y_hat_lr": lr, "eta": 0.5, "u1": 0.5}
    if s.method == "pbgd":
        g = s.opts["gamma"]
        return "PGDO", {"y_hat_lr": lr, "gamma_init": g, "gamma_max": g, "gamma_argmax_step": 1,
                        "update_y_ahead": False, "penalty": "difference"}
    if s.method == "meha":
        return "MESO", {"eta": lr, "gamma_1": 1.0 / s.opts["gamma"], "c0": s.opts["c0"], "y_hat_lr": lr}
    raise NotRunnable(f"BOAT has no {s.method}")


def _problem(spec, s, y_start, plan=None):
    """(problem, lower model, upper model) configured as BOAT's examples; with a ``plan`` (a loop)
    the lower model keeps its last weights (``copy_last_param``) and ``run_iter`` steps Adam."""
    import boat_torch
    from boat_torch.utils import DynamicalSystemRules, HyperGradientRules

    if s.method in FO:
        fo_op, fo_cfg = _fo(spec, s)
        gm_op, na_op, iters, lr, extra = None, None, s.T, spec.lr, {fo_op: fo_cfg}
    else:
        fo_op = None
        gm_op, na_op, iters, lr, extra = _ops(spec, s)
    ll_model, ul_model = spec.lower_module(), UpperModule(spec.x0)
    load_(ll_model, y_start)
    upper_opt = (torch.optim.SGD(ul_model.parameters(), lr=0.0) if plan is None
                 else upper_adam(ul_model.parameters(), plan))
    config = {
        "fo_op": fo_op, "gm_op": gm_op, "na_op": na_op, "lower_iters": iters,
        "device": str(spec.device), "accumulate_grad": False, "copy_last_param": plan is not None,
        "return_grad": plan is None, "fo_ol_batch_input": False, "loss_log_path": os.devnull,
        "DI": {"lr": 0.01}, "GDA": {"alpha_init": 0.0, "alpha_decay": 1.0},
        "RGT": {"truncate_iter": 0}, "CG": {"k": s.K, "tolerance": 0.0}, "FD": {"r": 0.01},
        "lower_level_model": ll_model, "upper_level_model": ul_model,
        "lower_level_var": list(ll_model.parameters()),
        "upper_level_var": list(ul_model.parameters()),
        "lower_level_opt": torch.optim.SGD(ll_model.parameters(), lr=lr),
        "upper_level_opt": upper_opt,
    }
    config.update(extra)
    p = {"spec": spec}
    loss_config = {"lower_level_loss": {"function": f"{_HERE}.ll_loss", "params": p},
                   "upper_level_loss": {"function": f"{_HERE}.ul_loss", "params": p},
                   "gda_loss": {"function": f"{_HERE}.gda_loss", "params": p}}
    # the default operation orders, set as BOAT's examples do
    HyperGradientRules.set_gradient_order([["PTT", "FOA", "RGT"], ["IAD", "RAD", "FD", "IGA"], ["CG", "NS"]])
    DynamicalSystemRules.set_gradient_order([["GDA", "DI"], ["NGD", "DM"]])
    problem = boat_torch.Problem(config, loss_config)
    problem.build_ll_solver()
    problem.build_ul_solver()
    return problem, ll_model, ul_model


def build(spec, s) -> Runner:
    y_start = start_point(spec, s.method)
    problem, ll_model, ul_model = _problem(spec, s, y_start)
    lb, ub = dict(spec.lower_batch), dict(spec.upper_batch)
    count = [0]

    def run():
        grads, _ = problem.run_iter(lb, ub, current_iter=count[0])
        count[0] += 1
        return dict(zip(spec.x0, grads))

    def reset():
        load_(ll_model, y_start)
        for q in list(ll_model.parameters()) + list(ul_model.parameters()):
            q.grad = None
        problem.loss_history = []
        problem._log_results = []
        lb.pop("alpha", None)

    note = {"trad": f"RGT truncate_iter={s.T - s.K}", "darts2": "FD, lower_iters=1", "fdhg": "FD, lower_iters=1",
            "bvfim": "VSO", "bome": "VFO (lower_iters steps on y first; phi = u1 q)", "pbgd": "PGDO",
            "meha": "MESO (upper grad after its lower step; c=0.2 at iter 0)",
            "iaptt": "DI+PTT+RAD", "bda": "GDA+RAD"}.get(s.method, "")
    if s.method in ("cg", "neumann") and s.T == 0:
        note = "lower_iters=1 (BOAT needs >= 1 lower step)"
    return Runner(run, reset, note)


def loop(spec, s, plan: LoopPlan) -> LoopRunner:
    """One ``run_iter`` per upper iteration: ``lower_iters = T`` NGD steps from the lower model's
    last weights, the hypergradient of ``na_op``, BOAT's own upper (Adam) step."""
    problem, ll_model, ul_model = _problem(spec, s, spec.y0, plan)

    def step(i):
        problem.run_iter(dict(plan.lower(i)), dict(plan.upper(i)), current_iter=i)
        problem.loss_history = []  # BOAT's per-iteration log: kept from growing over a long run
        problem._log_results = []

    return LoopRunner(step, lambda: (dict(ll_model.named_parameters()), ul_model.as_dict()))
