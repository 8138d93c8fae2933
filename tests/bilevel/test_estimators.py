"""The applications' estimators: TIMFusion's IAS (``ias``) and the registration work's
finite-difference hyper-parameter gradient (``fdhg``), against independent computations."""
import numpy as np
import pytest
import torch

import bilevel
from tests.bilevel.test_joint import manual_loop
from tests.toys import DT, quadratic, rel_err, ridge


def test_ias_equals_its_formula_on_ridge():
    r = ridge(solved=False)
    Xt, yt, Xv, yv = (t.numpy() for t in (r.Xt, r.yt, r.Xv, r.yv))
    w, lam = r.w.detach().numpy(), r.lam.detach().numpy()
    gf = Xt.T @ (Xt @ w - yt) / len(yt) + np.exp(lam) * w
    gF = Xv.T @ (Xv @ w - yv) / len(yv)
    dlam_f = 0.5 * np.exp(lam) * w ** 2  # d f / d lam; d F / d lam = 0
    expected = -(gf @ gF) / (gf @ gf) * dlam_f
    g = bilevel.hypergradient(r.problem(), "ias", *r.batches, eps=0.0)
    assert np.allclose(g["lam"].numpy(), expected, rtol=1e-12)
    # the released code's sign and factor: + lr * s * d_x f
    g2 = bilevel.hypergradient(r.problem(), "ias", *r.batches, eps=0.0, scale=-0.1)
    assert np.allclose(g2["lam"].numpy(), 0.1 * (gf @ gF) / (gf @ gf) * dlam_f, rtol=1e-12)


def scalar_family(a=2.0, c=0.7):
    """``f = a/2 (y - h(x))^2`` with a scalar ``y``, ``h(x) = sin(x1) + x2^2``; ``F = (y - c)^2/2
    + ||x||^2/2``: the family where the Gauss-Newton forms are exact."""
    x = torch.tensor([0.3, -0.8], dtype=DT, requires_grad=True)
    y = torch.tensor([1.5], dtype=DT, requires_grad=True)
    h = lambda x: torch.sin(x[0]) + x[1] ** 2  # noqa: E731
    problem = bilevel.BilevelProblem(
        lower={"y": y}, upper={"x": x},
        lower_loss=lambda lo, up, _: 0.5 * a * (lo["y"][0] - h(up["x"])) ** 2,
        upper_loss=lambda lo, up, _: 0.5 * (lo["y"][0] - c) ** 2 + 0.5 * (up["x"] ** 2).sum())
    return problem, x, y, h, c


def test_ias_is_exact_on_the_scalar_gauss_newton_family():
    problem, x, y, h, c = scalar_family()
    g = bilevel.hypergradient(problem, "ias", None, None)
    x0 = x.detach().numpy()
    dh = np.array([np.cos(x0[0]), 2 * x0[1]])
    expected = x0 + dh * (float(y.detach()) - c)  # d_x F - H_xy H_yy^-1 d_y F at this y
    assert np.allclose(g["x"].numpy(), expected, rtol=1e-12)
    cg = bilevel.hypergradient(problem, "cg", None, None, iters=1)
    assert rel_err(g["x"], cg["x"]) < 1e-12


def test_ias_loop_reaches_the_upper_optimum_of_the_scalar_family():
    b = torch.tensor([1.0, -2.0], dtype=DT)
    x = torch.tensor([0.5, 0.5], dtype=DT, requires_grad=True)
    y = torch.tensor([0.0], dtype=DT, requires_grad=True)
    problem = bilevel.BilevelProblem(
        lower={"y": y}, upper={"x": x},
        lower_loss=lambda lo, up, _: 0.5 * (lo["y"][0] - b @ up["x"]) ** 2,
        upper_loss=lambda lo, up, _: 0.5 * (lo["y"][0] - 1.0) ** 2 + 0.5 * (up["x"] ** 2).sum())
    x_star = torch.linalg.solve(torch.outer(b, b) + torch.eye(2, dtype=DT), b)  # min (b'x - 1)^2/2 + |x|^2/2
    manual_loop(problem, ("ias", dict(eps=0.0)), torch.optim.SGD([x], lr=0.1), torch.optim.SGD([y], lr=0.5), 300)
    assert rel_err(x.detach(), x_star) < 1e-8


def test_fdhg_is_the_finite_difference_second_order_rule():
    q = quadratic(seed=5)
    p = q.problem()
    opt = torch.optim.SGD([q.y], lr=0.05, momentum=0.9, weight_decay=0.01)
    for _ in range(2):
        opt.zero_grad()
        p.lower_loss(p.lower, {"x": q.x.detach()}, None).backward()
        opt.step()
    a = bilevel.hypergradient(p, "fdhg", None, None, lower_optimizer=opt, r=0.02)
    b = bilevel.hypergradient(p, "darts2", None, None, lower_optimizer=opt, eps_scale=0.02)
    assert torch.equal(a["x"], b["x"])
    # closed form without an optimizer: d_x F(x, y') + xi B'(y' - c), y' = y - xi (A y - B x)
    A, B, c, D, x, y = (t.detach().numpy() for t in (q.A, q.B, q.c, q.D, q.x, q.y))
    xi = 0.05
    y1 = y - xi * (A @ y - B @ x)
    g = bilevel.hypergradient(p, "fdhg", None, None, xi=xi)
    assert np.allclose(g["x"].numpy(), D @ x + xi * B.T @ (y1 - c), rtol=1e-9)
    with pytest.raises(bilevel.OptionError, match="no option 'hvp'"):
        bilevel.hypergradient(p, "fdhg", None, None, hvp="exact")
