"""Every method against an independent closed form on ``f = 0.5 y'Ay - y'Bx``."""
import numpy as np
import pytest
import torch

import bilevel
from tests.toys import quadratic, rel_err


def _np(t):
    return t.detach().numpy().astype(np.float64)


def unrolled_jacobian(A, B, lr, steps):
    """``d y_T / d x`` of ``y <- y - lr (A y - B x)``: ``lr * sum_{j<steps} (I - lr A)^j B``."""
    M = np.eye(A.shape[0]) - lr * A
    J = np.zeros_like(B)
    P = np.eye(A.shape[0])
    for _ in range(steps):
        J += lr * P @ B
        P = M @ P
    return J


def unroll_np(A, B, x, y0, lr, steps):
    y = y0.copy()
    for _ in range(steps):
        y = y - lr * (A @ y - B @ x)
    return y


@pytest.mark.parametrize("method,options", [("cg", dict(iters=10)), ("neumann", dict(iters=3000, alpha=0.2))])
def test_implicit_reach_ift_answer_at_solution(method, options):
    q = quadratic()
    with torch.no_grad():
        q.y.copy_(q.y_star())
    g = bilevel.hypergradient(q.problem(), method, None, None, **options)
    assert rel_err(g["x"], q.exact()) < 1e-10


@pytest.mark.parametrize("steps,truncate", [(7, None), (7, 3), (7, 7), (1, None)])
def test_rad_trad_equal_derivative_of_unrolled_map(steps, truncate):
    q = quadratic(seed=1)
    A, B, c, D, x, y0 = map(_np, (q.A, q.B, q.c, q.D, q.x, q.y))
    lr = 0.2
    yT = unroll_np(A, B, x, y0, lr, steps)
    J = unrolled_jacobian(A, B, lr, steps if truncate is None else truncate)
    expected = J.T @ (yT - c) + D @ x
    if truncate is None:
        g = bilevel.hypergradient(q.problem(), "rad", None, None, steps=steps, lr=lr)
    else:
        g = bilevel.hypergradient(q.problem(), "trad", None, None, steps=steps, truncate=truncate, lr=lr)
    assert np.allclose(_np(g["x"]), expected, rtol=1e-12, atol=1e-12)


def test_fad_equals_rad():
    q = quadratic(seed=2)
    p = q.problem()
    a = bilevel.hypergradient(p, "rad", None, None, steps=6, lr=0.1)
    b = bilevel.hypergradient(p, "fad", None, None, steps=6, lr=0.1)
    assert rel_err(b["x"], a["x"]) < 1e-12


def test_darts2_is_derivative_through_one_virtual_step():
    q = quadratic(seed=3)
    A, B, c, D, x, y = map(_np, (q.A, q.B, q.c, q.D, q.x, q.y))
    xi = 0.05
    y1 = y - xi * (A @ y - B @ x)
    expected = D @ x + xi * B.T @ (y1 - c)
    for hvp in ("finite_difference", "exact"):
        g = bilevel.hypergradient(q.problem(), "darts2", None, None, xi=xi, hvp=hvp)
        assert np.allclose(_np(g["x"]), expected, rtol=1e-9), hvp


def test_darts1_is_partial_derivative():
    q = quadratic(seed=4)
    g = bilevel.hypergradient(q.problem(), "darts1", None, None)
    assert torch.allclose(g["x"], q.D @ q.x.detach())


def test_darts2_follows_sgd_momentum_and_weight_decay():
    q = quadratic(seed=5)
    p = q.problem()
    opt = torch.optim.SGD([q.y], lr=0.05, momentum=0.9, weight_decay=0.01)
    for _ in range(2):  # build a momentum buffer
        opt.zero_grad()
        p.lower_loss(p.lower, {"x": q.x.detach()}, None).backward()
        opt.step()
    # the virtual step must be exactly the step the optimizer would take next
    y_before = q.y.detach().clone()
    state = {k: v.clone() for k, v in opt.state[q.y].items()}
    opt.zero_grad()
    p.lower_loss(p.lower, {"x": q.x.detach()}, None).backward()
    opt.step()
    y_next = q.y.detach().clone()
    with torch.no_grad():
        q.y.copy_(y_before)
    opt.state[q.y].update(state)
    g = bilevel.hypergradient(p, "darts2", None, None, lower_optimizer=opt, hvp="exact")
    expected = q.D @ q.x.detach() + 0.05 * q.B.T @ (y_next - q.c)  # d y'/dx = lr * B
    assert rel_err(g["x"], expected) < 1e-10
    assert torch.equal(q.y.detach(), y_before)


def aggregated_reference(q, steps, s_l, s_u, mus, y0):
    A, B, c, D, x = map(_np, (q.A, q.B, q.c, q.D, q.x))
    n = A.shape[0]
    y, J = y0.copy(), np.zeros_like(B)
    for mu in mus[:steps]:
        N = np.eye(n) - mu * s_u * np.eye(n) - (1 - mu) * s_l * A
        y, J = N @ y + (1 - mu) * s_l * B @ x + mu * s_u * c, N @ J + (1 - mu) * s_l * B
    return J.T @ (y - c) + D @ x


@pytest.mark.parametrize("mu_decay", [None, 0.8])
def test_bda_equals_derivative_of_aggregated_trajectory(mu_decay):
    q = quadratic(seed=6)
    cfg = bilevel.METHODS["bda"].Config(steps=9, lr=0.1, upper_lr=0.3, mu=0.6, mu_decay=mu_decay)
    mus = [cfg.weight(k) for k in range(9)]
    expected = aggregated_reference(q, 9, 0.1, 0.3, mus, _np(q.y))
    g = bilevel.hypergradient(q.problem(), "bda", None, None, steps=9, lr=0.1, upper_lr=0.3, mu=0.6,
                              mu_decay=mu_decay)
    assert np.allclose(_np(g["x"]), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed,interior", [(7, False), (4, True), (32, True)])
def test_iaptt_pessimistic_truncation_and_initial_point(seed, interior):
    q = quadratic(seed=seed)
    p = q.problem()
    lr, T = 0.3, 8
    g = bilevel.hypergradient(p, "iaptt", None, None, steps=T, lr=lr)
    z = p.auxiliary["iaptt_init/y"]
    assert torch.equal(z.detach(), q.y.detach())  # initialised from the lower variables
    A, B, c, D, x = map(_np, (q.A, q.B, q.c, q.D, q.x))
    ys, y = [], _np(z)
    for _ in range(T):
        y = y - lr * (A @ y - B @ x)
        ys.append(y)
    k = int(np.argmax([0.5 * ((yk - c) ** 2).sum() for yk in ys])) + 1
    M = np.eye(A.shape[0]) - lr * A
    yk = ys[k - 1]
    assert g.diagnostics["pessimistic_step"] == k
    assert (1 < k < T) == interior  # seeds 4 and 32 peak inside the trajectory
    assert np.allclose(_np(g["x"]), unrolled_jacobian(A, B, lr, k).T @ (yk - c) + D @ x, rtol=1e-12)
    assert np.allclose(_np(g["iaptt_init/y"]), np.linalg.matrix_power(M, k).T @ (yk - c), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", sorted(bilevel.METHODS))
def test_methods_leave_variables_unchanged(method):
    q = quadratic(seed=10)
    p = q.problem()
    before = (q.x.detach().clone(), q.y.detach().clone())
    g = bilevel.hypergradient(p, method, None, None)
    assert torch.equal(q.x.detach(), before[0]) and torch.equal(q.y.detach(), before[1])
    assert q.x.grad is None and q.y.grad is None
    assert set(g) >= {"x"} and g["x"].shape == q.x.shape
    assert g.diagnostics["method"] == method and g.diagnostics["time_s"] >= 0
