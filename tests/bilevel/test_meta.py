"""Meta-learning methods on linear-regression tasks against closed forms (float64).

Task: support ``(A_s, b_s)``, query ``(A_q, b_q)``; the lower variables ``w1`` (3) and ``w2`` (2)
are the halves of ``w`` (5) with ``A w = A[:, :3] w1 + A[:, 3:] w2``. Lower loss
``0.5 ||A_s w - b_s||^2 / n_s + exp(h)/2 ||w||^2`` (the weight decay only with an upper variable
``h``), so ``grad f(w) = H w - c`` with ``H = A_s^T A_s / n_s + exp(h) I``, ``c = A_s^T b_s / n_s``;
upper loss ``0.5 ||A_q w - b_q||^2 / n_q``, ``grad F(w) = A_q^T (A_q w - b_q) / n_q``.
"""
from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

import bilevel
from bilevel.methods.meta import Tasks
from tests.toys import rel_err

DT = torch.float64
D1, D = 3, 5
METHODS = ("maml", "fomaml", "metasgd", "reptile", "imaml")


def _w(low: dict[str, Tensor]) -> Tensor:
    return torch.cat([low["w1"], low["w2"]])


def lower_loss(low: dict[str, Tensor], up: dict[str, Tensor], batch: tuple[Tensor, Tensor]) -> Tensor:
    A, b = batch
    w = _w(low)
    decay = torch.exp(up["h"]) / 2 * (w @ w) if "h" in up else 0.0
    return 0.5 * ((A @ w - b) ** 2).sum() / len(b) + decay


def upper_loss(low: dict[str, Tensor], up: dict[str, Tensor], batch: tuple[Tensor, Tensor]) -> Tensor:
    A, b = batch
    return 0.5 * ((A @ _w(low) - b) ** 2).sum() / len(b)


def task(seed: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """(support, query): 8 and 6 examples."""
    g = torch.Generator().manual_seed(seed)
    return tuple((torch.randn(n, D, generator=g, dtype=DT), torch.randn(n, generator=g, dtype=DT)) for n in (8, 6))


def problem(h: float | None = None, rate: Tensor | None = None, init: bool = True
            ) -> tuple[bilevel.BilevelProblem, dict[str, Tensor], dict[str, Tensor]]:
    """The problem, its lower and upper variables: ``init/w1``, ``init/w2`` (unless not ``init``),
    ``h`` and ``lr/w1`` when given. Lower values differ from theta (they must not be read)."""
    g = torch.Generator().manual_seed(99)
    lower = {k: torch.randn(n, generator=g, dtype=DT).requires_grad_() for k, n in (("w1", D1), ("w2", D - D1))}
    theta = torch.randn(D, generator=g, dtype=DT)
    upper = {"init/w1": theta[:D1].clone().requires_grad_(), "init/w2": theta[D1:].clone().requires_grad_()} if init else {}
    if h is not None:
        upper["h"] = torch.tensor(h, dtype=DT, requires_grad=True)
    if rate is not None:
        upper["lr/w1"] = rate.clone().requires_grad_()
    return bilevel.BilevelProblem(lower, upper, lower_loss, upper_loss), lower, upper


def parts(batches, h: float | None = None) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
    """``H``, ``c`` and ``grad F`` of a task."""
    (As, bs), (Aq, bq) = batches
    H = As.T @ As / len(bs) + (torch.exp(torch.tensor(h, dtype=DT)) if h is not None else 0.0) * torch.eye(D, dtype=DT)
    return H, As.T @ bs / len(bs), lambda w: Aq.T @ (Aq @ w - bq) / len(bq)


def theta_of(upper: dict[str, Tensor]) -> Tensor:
    return torch.cat([upper["init/w1"], upper["init/w2"]]).detach()


def init_grad(g: dict[str, Tensor]) -> Tensor:
    return torch.cat([g["init/w1"], g["init/w2"]])


def test_maml_one_step_closed_form():
    batches, lr = task(0), 0.3
    p, _, up = problem()
    H, c, gF = parts(batches)
    theta = theta_of(up)
    y1 = theta - lr * (H @ theta - c)
    g = bilevel.hypergradient(p, "maml", *batches, steps=1, lr=lr)
    assert rel_err(init_grad(g), (torch.eye(D, dtype=DT) - lr * H) @ gF(y1)) < 1e-13


def test_maml_several_steps_product_and_hyperparameter():
    batches, lr, K, h = task(1), 0.2, 4, -1.0
    p, _, up = problem(h=h)
    H, c, gF = parts(batches, h)
    M = torch.eye(D, dtype=DT) - lr * H
    y, J = theta_of(up), torch.zeros(D, dtype=DT)  # J = dy/dh
    for _ in range(K):
        y, J = M @ y + lr * c, M @ J - lr * torch.exp(torch.tensor(h, dtype=DT)) * y
    g = bilevel.hypergradient(p, "maml", *batches, steps=K, lr=lr)
    assert rel_err(init_grad(g), torch.linalg.matrix_power(M, K) @ gF(y)) < 1e-12
    assert rel_err(g["h"], J @ gF(y)) < 1e-12
    assert g.diagnostics["upper_loss"] == pytest.approx(float(upper_loss({"w1": y[:D1], "w2": y[D1:]}, {}, batches[1])))


def test_maml_follows_lower_sgd_from_a_fresh_state():
    batches, lr, mom, K = task(2), 0.05, 0.9, 3
    p, lower, up = problem()
    opt = torch.optim.SGD(list(lower.values()), lr=lr, momentum=mom)
    for w in lower.values():
        w.grad = torch.ones_like(w)
    opt.step()  # momentum buffers that the inner loop must not use
    H, c, _ = parts(batches)

    def objective(theta: Tensor) -> Tensor:
        y, buf = theta, None
        for _ in range(K):
            d = H @ y - c
            buf = d if buf is None else mom * buf + d
            y = y - lr * buf
        Aq, bq = batches[1]
        return 0.5 * ((Aq @ y - bq) ** 2).sum() / len(bq)

    g = bilevel.hypergradient(p, "maml", *batches, lower_optimizer=opt, steps=K, lr=None)
    assert rel_err(init_grad(g), torch.func.grad(objective)(theta_of(up))) < 1e-12


@pytest.mark.parametrize("method", ["fomaml", "reptile"])
def test_first_order_methods(method):
    batches, lr, K = task(3), 0.25, 3
    p, _, up = problem()
    H, c, gF = parts(batches)
    theta = theta_of(up)
    y = theta
    for _ in range(K):
        y = y - lr * (H @ y - c)
    g = bilevel.hypergradient(p, method, *batches, steps=K, lr=lr)
    assert rel_err(init_grad(g), gF(y) if method == "fomaml" else theta - y) < 1e-13


def test_metasgd_learns_per_parameter_step_sizes():
    batches, lr = task(4), 0.1
    rate = torch.tensor([0.3, 0.05, 0.2], dtype=DT)
    p, _, up = problem(rate=rate)
    H, c, gF = parts(batches)
    theta = theta_of(up)
    alpha = torch.cat([rate, torch.full((D - D1,), lr, dtype=DT)])  # w2 has no lr/w2: the config's lr
    g0 = H @ theta - c
    y1 = theta - alpha * g0
    g = bilevel.hypergradient(p, "metasgd", *batches, steps=1, lr=lr)
    assert set(g) == {"init/w1", "init/w2", "lr/w1"}
    assert rel_err(init_grad(g), (torch.eye(D, dtype=DT) - H * alpha) @ gF(y1)) < 1e-13
    assert rel_err(g["lr/w1"], (-g0 * gF(y1))[:D1]) < 1e-13


def test_metasgd_without_step_size_variables_is_maml():
    batches = task(5)
    a = bilevel.hypergradient(problem()[0], "metasgd", *batches, steps=3, lr=0.2)
    b = bilevel.hypergradient(problem()[0], "maml", *batches, steps=3, lr=0.2)
    assert rel_err(init_grad(a), init_grad(b)) < 1e-14


def test_imaml_matches_proximal_solution_and_implicit_formula():
    batches, lam, h = task(6), 0.7, -1.0
    p, _, up = problem(h=h)
    H, c, gF = parts(batches, h)
    theta = theta_of(up)
    eye = torch.eye(D, dtype=DT)
    y_star = torch.linalg.solve(H + lam * eye, c + lam * theta)
    v = torch.linalg.solve(eye + H / lam, gF(y_star))
    g = bilevel.hypergradient(p, "imaml", *batches, lam=lam, steps=400, lr=0.2, cg_iters=D)
    assert rel_err(init_grad(g), v) < 1e-10
    # dy*/dh = -(H + lam I)^-1 exp(h) y*, and (H + lam I)^-1 grad F = v / lam
    assert rel_err(g["h"], -torch.exp(torch.tensor(h, dtype=DT)) * (y_star @ v) / lam) < 1e-10
    assert g.diagnostics["inner_grad_norm"] < 1e-12 and g.diagnostics["cg_iters"] <= D


@pytest.mark.parametrize("method", METHODS)
def test_variables_unchanged_and_one_gradient_per_upper_variable(method):
    p, lower, up = problem(h=-0.5, rate=torch.full((D1,), 0.1, dtype=DT))
    before = {k: t.detach().clone() for k, t in {**lower, **up}.items()}
    g = bilevel.hypergradient(p, method, *task(7), steps=2)
    for k, t in {**lower, **up}.items():
        assert torch.equal(t.detach(), before[k]) and t.grad is None, k
    assert set(g) == set(up) and all(g[k].shape == up[k].shape for k in up)
    assert g.diagnostics["method"] == method and not p.auxiliary


def test_missing_initialisation_is_added_from_the_lower_variables():
    batches, lr = task(8), 0.3
    p, lower, _ = problem(h=0.0, init=False)
    g = bilevel.hypergradient(p, "maml", *batches, steps=1, lr=lr)
    aux = p.auxiliary
    assert set(aux) == {"init/w1", "init/w2"} and torch.equal(aux["init/w1"].detach(), lower["w1"].detach())
    H, c, gF = parts(batches, 0.0)
    theta = _w(lower).detach()
    assert rel_err(init_grad(g), (torch.eye(D, dtype=DT) - lr * H) @ gF(theta - lr * (H @ theta - c))) < 1e-13
    first = aux["init/w1"]
    bilevel.hypergradient(p, "maml", *batches, steps=1, lr=lr)
    assert p.auxiliary["init/w1"] is first  # created once


@pytest.mark.parametrize("method,options,match", [
    ("maml", dict(steps=0), "steps"),
    ("fomaml", dict(lr=-0.1), "lr"),
    ("metasgd", dict(lr=None), "option lr must be a number"),
    ("imaml", dict(lam=0.0), "lam"),
    ("imaml", dict(cg_iters=2.5), "integer"),
])
def test_bad_options(method, options, match):
    with pytest.raises(bilevel.OptionError, match=match):
        bilevel.hypergradient(problem()[0], method, *task(0), **options)


def test_upper_variables_that_do_not_match_a_lower_variable():
    p, lower, up = problem()
    bad = bilevel.BilevelProblem(lower, {**up, "init/v": torch.zeros(2, dtype=DT, requires_grad=True)},
                                 lower_loss, upper_loss)
    with pytest.raises(ValueError, match=r"maml: upper variable 'init/v' names no lower variable \(lower: w1, w2\)"):
        bilevel.hypergradient(bad, "maml", *task(0))
    p, _, _ = problem(rate=torch.ones(D1 + 1, dtype=DT))
    with pytest.raises(ValueError, match=r"metasgd: upper variable 'lr/w1' has shape \(4,\), its lower variable \(3,\)"):
        bilevel.hypergradient(p, "metasgd", *task(0))


@pytest.mark.parametrize("method", METHODS)
def test_meta_batch_is_the_mean_of_the_tasks(method):
    tasks = [task(10 + i) for i in range(3)]
    p = problem(h=-0.5, rate=torch.full((D1,), 0.1, dtype=DT))[0]
    single = [bilevel.hypergradient(p, method, s, q, steps=2) for s, q in tasks]
    g = bilevel.hypergradient(p, method, Tasks(s for s, _ in tasks), Tasks(q for _, q in tasks), steps=2)
    for k in g:
        assert rel_err(g[k], sum(r[k] for r in single) / 3) < 1e-14, k
    assert g.diagnostics["tasks"] == 3
    assert g.diagnostics["upper_loss"] == pytest.approx(sum(r.diagnostics["upper_loss"] for r in single) / 3)
    with pytest.raises(ValueError, match="meta-batch"):
        bilevel.hypergradient(p, method, Tasks(s for s, _ in tasks), Tasks([tasks[0][1]]), steps=2)


def test_each_task_of_a_meta_batch_starts_from_the_problem_buffers():
    def counting_loss(low, up, batch):  # reads a running count, then advances it in place
        A, b = batch
        loss = 0.5 * ((A @ _w(low) - b - low["count"]) ** 2).sum() / len(b)
        low["count"].add_(1.0)
        return loss

    _, lower, up = problem()
    count = torch.zeros((), dtype=DT)
    p = bilevel.BilevelProblem(lower, up, counting_loss, upper_loss, buffers={"count": count})
    tasks = [task(20 + i) for i in range(2)]
    single = [bilevel.hypergradient(p, "maml", s, q, steps=2) for s, q in tasks]
    g = bilevel.hypergradient(p, "maml", Tasks(s for s, _ in tasks), Tasks(q for _, q in tasks), steps=2)
    assert rel_err(init_grad(g), sum(init_grad(r) for r in single) / 2) < 1e-14
    assert float(count) == 0.0


@pytest.mark.parametrize("method", METHODS)
def test_a_loop_sets_the_lower_variables_to_the_learned_initialisation(method):
    """In a ``BilevelLoop`` the lower step gives the lower variables the initialisation after its upper
    step (they are never trained), and reports the hypergradient's lower loss (at the old initialisation)."""
    p, lower, upper = problem()
    tasks = [task(s) for s in (1, 2)]
    theta = {k[len("init/"):]: v.detach().clone() for k, v in upper.items()}
    before = sum(float(lower_loss(theta, {}, s)) for s, _ in tasks) / 2
    loop = bilevel.BilevelLoop(p, method, torch.optim.SGD(list(upper.values()), lr=0.1),
                               torch.optim.SGD(list(lower.values()), lr=0.05), method_options={"steps": 2})
    stats = loop.step(Tasks(s for s, _ in tasks), Tasks(q for _, q in tasks))
    assert not torch.equal(upper["init/w1"], theta["w1"])  # the initialisation moved
    assert torch.equal(lower["w1"], upper["init/w1"]) and torch.equal(lower["w2"], upper["init/w2"])
    assert stats["lower_loss"] == pytest.approx(before, rel=1e-12)
