"""leo-liuzy/betty (``betty-ml``): ``darts``, ``cg``, ``neumann`` best-response Jacobians.

Used as its README shows: two ``ImplicitProblem`` subclasses with ``training_step``, their
``Config`` (``type``, ``unroll_steps``, ``cg_iterations``, ``neumann_iterations/alpha``,
``darts_alpha``) and an ``Engine`` with ``u2l``/``l2u`` dependencies. The upper problem
captures the hypergradient in Betty's ``custom_optimizer_step`` hook and does not step.

What is timed: for ``darts`` one ``engine.run()`` (one lower SGD step with lr = xi, Betty's
stand-in for the DARTS virtual step, then the upper hypergradient); for ``cg``/``neumann``
``engine.run()`` with ``unroll_steps = T`` on (c), and on (a)/(b) (T = 0) Betty's own upper
``step_normal()`` at the current lower point (what the engine calls after the lower steps).
"""
from __future__ import annotations

import torch

from . import LoopPlan, LoopRunner, NotRunnable, Runner, UpperModule, load_, upper_adam

LIBRARY = "betty"
METHODS = ("darts2", "cg", "neumann")
_TYPE = {"darts2": "darts", "cg": "cg", "neumann": "neumann"}


def available() -> tuple[bool, str]:
    try:
        import betty  # noqa: F401
        from importlib.metadata import version
        return True, version("betty-ml")
    except Exception as e:  # pragma: no cover
        return False, f"not installed ({type(e).__name__})"


def _as_dict(batch):
    return {"x": batch[0], "y": batch[1]}


def build(spec, s) -> Runner:
    import logging

    from betty.configs import Config, EngineConfig
    from betty.engine import Engine
    from betty.logging.logger_base import get_logger
    from betty.problems import ImplicitProblem

    if s.method not in _TYPE:
        raise NotRunnable(f"betty has no {s.method}")
    get_logger().setLevel(logging.WARNING)
    steps = 1 if s.method == "darts2" else s.T
    lr = s.opts["xi"] if s.method == "darts2" else spec.lr
    captured: dict = {}

    class Lower(ImplicitProblem):
        def training_step(self, batch):
            hp = self.upper.module.as_dict()
            return spec.lower_loss(self.module, list(self.module.parameters()), hp, _as_dict(batch))

    class Upper(ImplicitProblem):
        def training_step(self, batch):
            w = self.lower.trainable_parameters()
            return spec.upper_loss(self.lower, w, self.module.as_dict(), _as_dict(batch))

        def custom_optimizer_step(self, *args, **kwargs):
            captured.update({n: p.grad for n, p in self.module.named_parameters()})

    lconf = Config(type=_TYPE[s.method], unroll_steps=max(steps, 1), darts_alpha=0.01,
                   cg_iterations=s.K, neumann_iterations=s.K,
                   neumann_alpha=s.opts.get("alpha", 1.0))
    lb = [(spec.lower_batch["x"], spec.lower_batch["y"])]
    ub = [(spec.upper_batch["x"], spec.upper_batch["y"])]
    lmod, umod = spec.lower_module(), UpperModule(spec.x0)
    dev = str(spec.device)
    lower = Lower(name="lower", module=lmod, optimizer=torch.optim.SGD(lmod.parameters(), lr=lr),
                  train_data_loader=lb, config=lconf, device=dev)
    upper = Upper(name="upper", module=umod, optimizer=None, train_data_loader=ub,
                  config=Config(), device=dev)
    engine = Engine(problems=[upper, lower],
                    config=EngineConfig(train_iters=max(steps, 1), valid_step=10**9),
                    dependencies={"l2u": {lower: [upper]}, "u2l": {upper: [lower]}})

    def run():
        captured.clear()
        if steps > 0:
            engine.run()
        else:
            lower.cur_batch = lb[0]
            upper.ready = [True]
            upper.step_normal()
        return dict(captured)

    def reset():
        load_(lmod, spec.y0)
        for p in list(lmod.parameters()) + list(umod.parameters()):
            p.grad = None

    note = "darts: H^-1 ~ I, no xi factor" if s.method == "darts2" else ""
    return Runner(run, reset, note)


def loop(spec, s, plan: LoopPlan) -> LoopRunner:
    """Betty's own loop: ``Engine`` with an Adam upper problem; one upper iteration = ``T``
    ``engine.train_step()`` calls (the lower problem unrolls ``T`` SGD steps, then the upper
    problem steps on the ``cg``/``neumann``/``darts`` hypergradient). The lower loader yields
    each minibatch ``T`` times, so an iteration's lower steps share one minibatch as elsewhere."""
    import logging

    from betty.configs import Config, EngineConfig
    from betty.engine import Engine
    from betty.logging.logger_base import get_logger
    from betty.problems import ImplicitProblem

    if s.method not in _TYPE:
        raise NotRunnable(f"betty has no {s.method}")
    get_logger().setLevel(logging.WARNING)
    keys = [k for k in plan.lower_batches[0] if k != "index"]
    lower_loader = [tuple(b[k] for k in keys) for b in plan.lower_batches for _ in range(s.T)]
    ukeys = [k for k in plan.upper_batch if k != "index"]
    upper_loader = [tuple(plan.upper_batch[k] for k in ukeys)]

    class Lower(ImplicitProblem):
        def training_step(self, batch):
            hp = self.upper.module.as_dict()
            return spec.lower_loss(self.module, list(self.module.parameters()), hp, dict(zip(keys, batch)))

    class Upper(ImplicitProblem):
        def training_step(self, batch):
            w = self.lower.trainable_parameters()
            return spec.upper_loss(self.lower, w, self.module.as_dict(), dict(zip(ukeys, batch)))

    lconf = Config(type=_TYPE[s.method], unroll_steps=s.T, darts_alpha=0.01, cg_iterations=s.K,
                   neumann_iterations=s.K, neumann_alpha=s.opts.get("alpha", 1.0))
    lmod, umod = spec.lower_module(), UpperModule(spec.x0)
    dev = str(spec.device)
    lower = Lower(name="lower", module=lmod, optimizer=torch.optim.SGD(lmod.parameters(), lr=spec.lr),
                  train_data_loader=lower_loader, config=lconf, device=dev)
    upper = Upper(name="upper", module=umod, optimizer=upper_adam(umod.parameters(), plan),
                  train_data_loader=upper_loader, config=Config(), device=dev)
    engine = Engine(problems=[upper, lower], config=EngineConfig(train_iters=10**9, valid_step=10**9),
                    dependencies={"l2u": {lower: [upper]}, "u2l": {upper: [lower]}})
    engine.train()

    def step(i):
        for _ in range(s.T):
            engine.global_step += 1
            engine.train_step()

    return LoopRunner(step, lambda: (dict(lmod.named_parameters()), umod.as_dict()),
                      "darts: H^-1 ~ I, no xi factor" if s.method == "darts2" else "")
