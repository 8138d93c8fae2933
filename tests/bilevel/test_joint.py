"""Joint (value-function / penalty / first-order) methods against independent closed forms.

A tiny manual loop (hypergradient + optimizer steps, ``.lower`` written into the lower
variables' ``.grad``) is written here, not taken from the library's loop."""
import numpy as np
import pytest
import torch

import bilevel
from tests.toys import DT, as_numpy, quadratic, well_conditioned, ridge


_np = as_numpy


def manual_loop(problem, method, upper_opt, lower_opt, iters, batches=(None, None)):
    """Steps both optimizers on the method's directions (plain lower gradient for the others)."""
    m = bilevel.make_method(*method) if isinstance(method, tuple) else method
    variables = problem.upper_variables()
    for _ in range(iters):
        hg = bilevel.hypergradient(problem, m, *batches)
        for k, g in hg.items():
            variables[k].grad = g
        if hg.lower is not None:
            for k, d in hg.lower.items():
                problem.lower[k].grad = d
        else:
            loss = problem.lower_loss(problem.lower, {k: v.detach() for k, v in problem.upper.items()}, batches[0])
            for k, g in zip(problem.lower, torch.autograd.grad(loss, list(problem.lower.values()))):
                problem.lower[k].grad = g
        upper_opt.step()
        lower_opt.step()
    return m


def penalty_fixed_point(q, weight, envelope_gamma=None):
    """Stationary point of ``F/w + f(x, y) - f*(x)`` (or ``- v_gamma(x, y)``, the Moreau envelope)
    on the quadratic, from the closed forms of ``y*(x)`` / ``theta*(x, y)``: the residual is
    linear in ``(x, y)``; its Jacobian (autograd) and one solve give the point."""
    A, B, c, D = q.A, q.B, q.c, q.D
    m = B.shape[1]

    def residual(v):
        x, y = v[:m], v[m:]
        if envelope_gamma is None:
            ys = torch.linalg.solve(A, B @ x)  # grad_x f*(x) = grad_x f(x, y*(x)) = -B' y*
            gx = D @ x / weight - B.T @ y + B.T @ ys
            gy = (y - c) / weight + A @ y - B @ x
        else:
            g = envelope_gamma
            n = A.shape[0]
            theta = torch.linalg.solve(A + torch.eye(n, dtype=DT) / g, B @ x + y / g)
            gx = D @ x / weight - B.T @ y + B.T @ theta
            gy = (y - c) / weight + A @ y - B @ x - (y - theta) / g
        return torch.cat([gx, gy])

    v0 = torch.zeros(m + A.shape[0], dtype=DT)
    J = torch.autograd.functional.jacobian(residual, v0)
    v = torch.linalg.solve(J, -residual(v0))
    return v[:m], v[m:]


def test_pbgd_and_f2sa_directions_are_the_penalty_gradient():
    q = quadratic(seed=1)
    A, B, c, D, x, y = map(_np, (q.A, q.B, q.c, q.D, q.x, q.y))
    gamma, steps, lr = 7.0, 4, 0.2
    yh = y.copy()
    for _ in range(steps):
        yh = yh - lr * (A @ yh - B @ x)
    hg = bilevel.hypergradient(q.problem(), "pbgd", None, None, gamma=gamma, steps=steps, lr=lr)
    assert np.allclose(_np(hg["x"]), D @ x / gamma - B.T @ y + B.T @ yh, rtol=1e-12, atol=1e-14)
    assert np.allclose(_np(hg.lower["y"]), (y - c) / gamma + A @ y - B @ x, rtol=1e-12)
    # f2sa: z warm-starts from y and keeps its steps across calls; lam grows by lam_step
    m = bilevel.make_method("f2sa", dict(lam=2.0, lam_step=0.5, lam_max=2.4, steps=2, lr=lr))
    z = y.copy()
    for call, lam in enumerate((2.0, 2.4, 2.4)):
        for _ in range(2):
            z = z - lr * (A @ z - B @ x)
        hg = bilevel.hypergradient(q.problem(), m, None, None)
        assert np.allclose(_np(hg["x"]), D @ x / lam - B.T @ y + B.T @ z, rtol=1e-12, atol=1e-14), call
        assert np.allclose(_np(hg.lower["y"]), (y - c) / lam + A @ y - B @ x, rtol=1e-12), call
    assert bilevel.METHODS["f2sa"].updates_lower and not bilevel.METHODS["cg"].updates_lower


def test_meha_direction_follows_the_moreau_envelope():
    q = quadratic(seed=2)
    A, B, c, D, x, y = map(_np, (q.A, q.B, q.c, q.D, q.x, q.y))
    g, eta, c0, p = 0.5, 0.2, 3.0, 0.25
    m = bilevel.make_method("meha", dict(gamma=g, eta=eta, c0=c0, p=p))
    theta = y.copy()
    for k in range(3):
        theta = theta - eta * (A @ theta - B @ x + (theta - y) / g)
        ck = c0 * (k + 1) ** p
        hg = bilevel.hypergradient(q.problem(), m, None, None)
        assert np.allclose(_np(hg["x"]), D @ x / ck - B.T @ y + B.T @ theta, rtol=1e-12, atol=1e-14)
        assert np.allclose(_np(hg.lower["y"]), (y - c) / ck + A @ y - B @ x - (y - theta) / g, rtol=1e-12)


def test_bome_direction_is_the_dynamic_barrier():
    q = quadratic(seed=3)
    A, B, c, D, x, y = map(_np, (q.A, q.B, q.c, q.D, q.x, q.y))
    T, lr, eta = 6, 0.25, 0.5
    th = y.copy()
    for _ in range(T):
        th = th - lr * (A @ th - B @ x)
    gF = np.concatenate([D @ x, y - c])
    gq = np.concatenate([-B.T @ y + B.T @ th, A @ y - B @ x])
    lam = max((eta * gq @ gq - gF @ gq) / (gq @ gq), 0.0)
    hg = bilevel.hypergradient(q.problem(), "bome", None, None, steps=T, lr=lr, eta=eta)
    d = gF + lam * gq
    assert np.allclose(_np(hg["x"]), d[:3], rtol=1e-12) and np.allclose(_np(hg.lower["y"]), d[3:], rtol=1e-12)
    assert hg.diagnostics["lambda"] == pytest.approx(lam, rel=1e-12)
    assert float(np.dot(d, gq)) == pytest.approx(eta * gq @ gq, rel=1e-10)  # q falls at rate eta ||grad q||^2


@pytest.mark.parametrize("weight", [10.0, 100.0])
def test_penalty_fixed_point_is_order_one_over_gamma_from_the_optimum(weight):
    q = well_conditioned()
    xs = q.x_star()
    xp, yp = penalty_fixed_point(q, weight)
    with torch.no_grad():
        q.x.copy_(xp), q.y.copy_(yp)
    hg = bilevel.hypergradient(q.problem(), "pbgd", None, None, gamma=weight, steps=300, lr=0.3)
    assert float(bilevel.tensors.norm({**hg, **hg.lower})) < 1e-12  # the method's fixed point
    err = float((xp - xs).norm() / xs.norm())
    assert 0.05 / weight < err < 1.0 / weight  # O(1/gamma), and not better


@pytest.mark.slow
@pytest.mark.parametrize("name,options,lr_x,tol,iters", [
    # pbgd re-solves y_hat by 30 steps each call: contraction 0.7^30 ~ 2e-5 bounds its accuracy
    ("pbgd", dict(gamma=10.0, steps=30, lr=0.3), 0.3, 1e-4, 600),
    ("f2sa", dict(lam=1.0, lam_step=0.5, lam_max=10.0, steps=5, lr=0.3), 0.1, 1e-6, 1500),
])
def test_penalty_loops_reach_their_fixed_point_within_one_over_gamma_of_the_optimum(name, options, lr_x, tol, iters):
    q = well_conditioned()
    xp, yp = penalty_fixed_point(q, 10.0)
    manual_loop(q.problem(), (name, options), torch.optim.SGD([q.x], lr=lr_x), torch.optim.SGD([q.y], lr=0.3), iters)
    assert float((q.x.detach() - xp).norm() / xp.norm()) < tol
    assert float((q.y.detach() - yp).norm() / yp.norm()) < tol
    assert float((q.x.detach() - q.x_star()).norm() / q.x_star().norm()) < 1.0 / 10.0


@pytest.mark.slow
def test_meha_loop_reaches_the_envelope_penalty_fixed_point():
    q = well_conditioned()
    g, c = 1.0, 10.0
    xp, yp = penalty_fixed_point(q, c, envelope_gamma=g)
    manual_loop(q.problem(), ("meha", dict(gamma=g, c0=c, p=0.0, steps=5, eta=0.3)),
                torch.optim.SGD([q.x], lr=0.1), torch.optim.SGD([q.y], lr=0.3), 1500)
    assert float((q.x.detach() - xp).norm() / xp.norm()) < 1e-6
    assert float((xp - q.x_star()).norm() / q.x_star().norm()) < 1.0 / c


@pytest.mark.slow
@pytest.mark.parametrize("name,options,lr_x,lr_y,iters,tol", [
    ("pbgd", dict(gamma=10.0, steps=30, lr=0.3), 3.0, 0.3, 300, 1 / 10),
    ("f2sa", dict(lam=1.0, lam_step=1.0, lam_max=100.0, steps=5, lr=0.3), 10.0, 0.3, 1000, 1 / 100),
    ("meha", dict(c0=10.0, p=0.25, steps=5, eta=0.3), 3.0, 0.3, 1000, 1 / 50),  # c_1000 = 56
    ("bome", dict(steps=30, lr=0.3), 0.5, 0.05, 300, 0.05),  # a neighbourhood of size O(step)
    ("bvfim", dict(decay=0.01), 3.0, 0.3, 1000, 0.1),  # mu_k / theta_k = 0.1 / sqrt(1 + k/100)
])
def test_joint_methods_reach_the_ridge_upper_optimum(name, options, lr_x, lr_y, iters, tol):
    r = ridge(n=20, d=8, seed=1, shared=True)
    lam_star = r.upper_optimum()
    assert float(lam_star) == pytest.approx(-1.80, abs=0.01)
    with torch.no_grad():
        r.w.copy_(r.w_star())
    manual_loop(r.problem(), (name, options), torch.optim.SGD([r.lam], lr=lr_x), torch.optim.SGD([r.w], lr=lr_y),
                iters, r.batches)
    assert float((r.lam.detach() - lam_star).abs() / lam_star.abs()) < tol


@pytest.mark.slow
def test_bome_reaches_the_quadratic_optimum_to_the_order_of_its_step():
    errs = []
    for step in (0.05, 0.01):
        q = well_conditioned()
        manual_loop(q.problem(), ("bome", dict(steps=30, lr=0.3)), torch.optim.SGD([q.x], lr=step),
                    torch.optim.SGD([q.y], lr=step), int(12 / step))
        errs.append(float((q.x.detach() - q.x_star()).norm() / q.x_star().norm()))
    assert errs[0] < 0.1 and errs[1] < 0.012 and errs[1] < errs[0] / 3  # error ~ the step size


def test_state_dict_resumes_exactly():
    def run(method, q, n):
        manual_loop(q.problem(), method, torch.optim.SGD([q.x], lr=0.1), torch.optim.SGD([q.y], lr=0.3), n)

    for name, options in (("f2sa", dict(lam_step=0.5, steps=2)), ("meha", dict(steps=2)), ("bvfim", dict(steps=2))):
        q = well_conditioned()
        m = bilevel.make_method(name, options)
        run(m, q, 3)
        saved, x0, y0 = m.state_dict(), q.x.detach().clone(), q.y.detach().clone()
        run(m, q, 2)
        expected = q.x.detach().clone()
        m2 = bilevel.make_method(name, options)
        m2.load_state_dict(saved)
        with torch.no_grad():
            q.x.copy_(x0), q.y.copy_(y0)
        run(m2, q, 2)
        assert torch.equal(q.x.detach(), expected), name
        assert saved["iteration"] == 3
    with pytest.raises(ValueError, match="keeps no state"):
        bilevel.make_method("cg").load_state_dict({"aux": None})


def test_bvfim_direction_is_the_barrier_gradient_over_its_weight():
    q = quadratic(seed=4)
    A, B, c, D, x, y = map(_np, (q.A, q.B, q.c, q.D, q.x, q.y))
    mu, theta, mu1, mu2, steps, lr = 0.5, 0.2, 0.1, 0.05, 3, 0.2
    m = bilevel.make_method("bvfim", dict(mu=mu, theta=theta, decay=0.0, reg_upper=mu1, reg_lower=mu2,
                                          steps=steps, lr=lr))
    f2 = lambda v: 0.5 * v @ A @ v - v @ B @ x + 0.5 * mu2 * v @ v  # noqa: E731
    with torch.no_grad():  # a feasible start: y close to the regularised lower solution
        q.y.copy_(torch.linalg.solve(q.A + mu2 * torch.eye(4, dtype=DT), q.B @ q.x) + 0.05)
    y = _np(q.y)
    z = y.copy()
    for _ in range(steps):
        z = z - lr * (A @ z - B @ x + mu2 * z)
    s = mu + f2(z) - f2(y)
    assert s > 0
    hg = bilevel.hypergradient(q.problem(), m, None, None)
    assert hg.diagnostics["slack"] == pytest.approx(s, rel=1e-12)
    assert np.allclose(_np(hg["x"]), s / theta * D @ x - B.T @ y + B.T @ z, rtol=1e-12)
    assert np.allclose(_np(hg.lower["y"]), s / theta * (y - c + mu1 * y) + A @ y - B @ x + mu2 * y, rtol=1e-12)
    # infeasible point: pure descent of the value-function gap
    with torch.no_grad():
        q.y.add_(5.0)
    hg = bilevel.hypergradient(q.problem(), bilevel.make_method("bvfim", dict(decay=0.0)), None, None)
    assert hg.diagnostics["slack"] < 0
    assert np.allclose(_np(hg.lower["y"]), A @ _np(q.y) - B @ x, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("mu", [0.01, 0.003])
def test_bvfim_loop_reaches_the_optimum_to_order_mu_over_theta(mu):
    q = well_conditioned()
    theta = 0.1
    manual_loop(q.problem(), ("bvfim", dict(mu=mu, theta=theta, decay=0.0)), torch.optim.SGD([q.x], lr=0.3),
                torch.optim.SGD([q.y], lr=0.3), 1500)
    assert float((q.x.detach() - q.x_star()).norm() / q.x_star().norm()) < mu / theta
