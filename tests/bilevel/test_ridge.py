"""Ridge regression with exp(lambda) weight decay: exact hypergradient through torch.linalg.solve."""
import pytest
import torch

import bilevel
from tests.toys import ridge, ridge_lower, rel_err


def unrolled_objective(r, lam, steps, lr, w0):
    """F(w_T(lam)) for plain steps, written out by hand (no library code)."""
    w = w0
    n = r.Xt.shape[0]
    for _ in range(steps):
        g = r.Xt.T @ (r.Xt @ w - r.yt) / n + torch.exp(lam) * w
        w = w - lr * g
    return ((r.Xv @ w - r.yv) ** 2).mean() / 2


def finite_difference(fn, lam, h=1e-6):
    out = torch.zeros_like(lam)
    for i in range(lam.numel()):
        e = torch.zeros_like(lam)
        e[i] = h
        out[i] = (fn(lam + e) - fn(lam - e)) / (2 * h)
    return out


@pytest.mark.parametrize("method,options", [("cg", dict(iters=30)), ("neumann", dict(iters=1500, alpha=0.3))])
def test_implicit_methods_match_exact_at_lower_solution(method, options):
    r = ridge()
    g = bilevel.hypergradient(r.problem(), method, *r.batches, **options)
    assert rel_err(g["lam"], r.exact()) < 1e-10


@pytest.mark.parametrize("method", ["rad", "fad"])
def test_long_unroll_from_solution_is_exact(method):
    r = ridge()
    g = bilevel.hypergradient(r.problem(), method, *r.batches, steps=300 if method == "rad" else 120, lr=0.3)
    assert rel_err(g["lam"], r.exact()) < 1e-8


def test_rad_trad_fad_equal_finite_differences_of_unrolled_map():
    r = ridge(solved=False)
    w0 = r.w.detach().clone()
    lam = r.lam.detach()
    fd = finite_difference(lambda l: unrolled_objective(r, l, 12, 0.2, w0), lam)
    p = r.problem()
    for method in ("rad", "fad"):
        g = bilevel.hypergradient(p, method, *r.batches, steps=12, lr=0.2)
        assert rel_err(g["lam"], fd) < 1e-7, method
    # trad: the first steps are constants, so compare with FD of the last 4 from w_8
    w8 = w0
    n = r.Xt.shape[0]
    for _ in range(8):
        w8 = w8 - 0.2 * (r.Xt.T @ (r.Xt @ w8 - r.yt) / n + torch.exp(lam) * w8)
    fd_t = finite_difference(lambda l: unrolled_objective(r, l, 4, 0.2, w8), lam)
    g = bilevel.hypergradient(p, "trad", *r.batches, steps=12, truncate=4, lr=0.2)
    assert rel_err(g["lam"], fd_t) < 1e-7


def test_darts2_matches_one_step_closed_form():
    r = ridge(solved=False)
    w, lam = r.w.detach(), r.lam.detach()
    xi = 0.1
    n, m = r.Xt.shape[0], r.Xv.shape[0]
    w1 = w - xi * (r.Xt.T @ (r.Xt @ w - r.yt) / n + torch.exp(lam) * w)
    v = r.Xv.T @ (r.Xv @ w1 - r.yv) / m
    expected = -xi * torch.exp(lam) * w * v  # d w1 / d lam = -xi * diag(exp(lam) * w)
    exact = bilevel.hypergradient(r.problem(), "darts2", *r.batches, xi=xi, hvp="exact")
    fd = bilevel.hypergradient(r.problem(), "darts2", *r.batches, xi=xi)
    assert rel_err(exact["lam"], expected) < 1e-12
    assert rel_err(fd["lam"], expected) < 1e-6  # central difference: O(eps^2) with eps = 0.01/||v||


def test_bda_and_iaptt_equal_finite_differences_of_their_maps():
    r = ridge(solved=False)
    lam, w0 = r.lam.detach(), r.w.detach().clone()
    n, m = r.Xt.shape[0], r.Xv.shape[0]
    cfg = bilevel.METHODS["bda"].Config(steps=6, lr=0.2, upper_lr=0.5, mu=0.7)

    def bda_map(l):
        w = w0
        for k in range(6):
            mu = cfg.weight(k)
            gf = r.Xt.T @ (r.Xt @ w - r.yt) / n + torch.exp(l) * w
            gF = r.Xv.T @ (r.Xv @ w - r.yv) / m
            w = w - (mu * 0.5 * gF + (1 - mu) * 0.2 * gf)
        return ((r.Xv @ w - r.yv) ** 2).mean() / 2

    g = bilevel.hypergradient(r.problem(), "bda", *r.batches, steps=6, lr=0.2, upper_lr=0.5, mu=0.7)
    assert rel_err(g["lam"], finite_difference(bda_map, lam)) < 1e-7
    g = bilevel.hypergradient(r.problem(), "iaptt", *r.batches, steps=6, lr=0.2, auxiliary_init=False)
    k = g.diagnostics["pessimistic_step"]
    assert rel_err(g["lam"], finite_difference(lambda l: unrolled_objective(r, l, k, 0.2, w0), lam)) < 1e-7


def test_ridge_lower_loss_is_the_one_solved_in_closed_form():
    r = ridge()
    gw = torch.func.grad(ridge_lower)(r.w.detach(), r.lam.detach(), r.Xt, r.yt)
    assert gw.abs().max() < 1e-12
