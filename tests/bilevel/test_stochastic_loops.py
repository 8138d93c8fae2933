"""The stochastic methods in loops: the quadratic's upper optimum at default options, exact
resume from ``state_dict``, ``GroupedLoop``, and ridge regression on minibatches (slow; ``-s``
prints each method's final distance to the optimum)."""
import math

import numpy as np
import pytest
import torch

import bilevel
from tests.bilevel.test_stochastic import STOCHASTIC, _np, indexed_batches, ridge_problem, well_conditioned
from tests.toys import ridge


# -- the quadratic ------------------------------------------------------------------------------------

def quadratic_loop(name, iters, options=None, lower_steps=1):
    q = well_conditioned()
    loop = bilevel.BilevelLoop(q.problem(), name, torch.optim.SGD([q.x], lr=0.3), torch.optim.SGD([q.y], lr=0.3),
                               method_options=options, lower_steps=lower_steps)
    for _ in range(iters):
        loop.step(None, None)
    return q, loop


def stocbio_fixed_point(q, iters, alpha):
    """Where the truncated series' hypergradient ``Dx + B'M(A^-1 Bx - c)`` vanishes, ``M`` the
    series ``alpha sum_{j<=Q} (I - alpha A)^j``: ``x = (D + B'MA^-1B)^-1 B'Mc``."""
    A, B, c, D = map(_np, (q.A, q.B, q.c, q.D))
    M = alpha * sum(np.linalg.matrix_power(np.eye(4) - alpha * A, j) for j in range(iters + 1))
    return np.linalg.solve(D + B.T @ M @ np.linalg.solve(A, B), B.T @ M @ c)


@pytest.mark.parametrize("name,iters", [("soba", 200), ("saba", 200), ("ma_soba", 250), ("amigo", 150),
                                        ("stocbio", 150)])
def test_default_options_reach_the_quadratic_upper_optimum(name, iters):
    q, _ = quadratic_loop(name, iters)
    x, xs = _np(q.x), _np(q.x_star())
    err = np.linalg.norm(x - xs) / np.linalg.norm(xs)
    if name == "stocbio":  # its own fixed point, biased by the truncation (Q = 20, alpha = 0.1)
        cfg = bilevel.METHODS["stocbio"].Config()
        xp = stocbio_fixed_point(q, cfg.iters, cfg.alpha)
        assert np.linalg.norm(x - xp) / np.linalg.norm(xp) < 1e-8
        assert 0.05 < err < 0.07
    else:
        assert err < 1e-6, err
    print(f"{name}: |x - x*| / |x*| = {err:.2e} after {iters} steps")


@pytest.mark.slow
def test_stocbio_loop_with_more_terms_reaches_its_closer_fixed_point():
    q, _ = quadratic_loop("stocbio", 150, dict(iters=60))
    xp, xs = stocbio_fixed_point(q, 60, 0.1), _np(q.x_star())
    assert np.linalg.norm(_np(q.x) - xp) / np.linalg.norm(xp) < 1e-8
    assert np.linalg.norm(_np(q.x) - xs) / np.linalg.norm(xs) < 2e-3  # 6e-2 with the default 20 terms


@pytest.mark.parametrize("name", ["soba", "saba", "ma_soba", "amigo", "cg", "neumann"])
def test_loop_state_dict_resumes_exactly(name):
    options = dict(warm_start=True, iters=3) if name in ("cg", "neumann") else {}
    if name == "neumann":
        options["alpha"] = 0.2
    r = ridge(n=12, m=8, d=3, seed=2, shared=True, solved=False)
    low, up = indexed_batches(r.Xt, r.yt, 4), indexed_batches(r.Xv, r.yv, 4)
    order = [(0, 1), (1, 0), (2, 1), (0, 0), (2, 0)]

    def make():
        return bilevel.BilevelLoop(ridge_problem(r), name, torch.optim.SGD([r.lam], lr=0.1),
                                   torch.optim.SGD([r.w], lr=0.1), method_options=options)

    loop = make()
    for i, j in order[:3]:
        loop.step(low[i], up[j])
    saved, lam0, w0 = loop.state_dict(), r.lam.detach().clone(), r.w.detach().clone()
    assert saved["method"]["v"] is not None
    for i, j in order[3:]:
        loop.step(low[i], up[j])
    expected = (r.lam.detach().clone(), r.w.detach().clone())
    with torch.no_grad():
        r.lam.copy_(lam0), r.w.copy_(w0)
    resumed = make()
    resumed.load_state_dict(saved)
    for i, j in order[3:]:
        resumed.step(low[i], up[j])
    assert torch.equal(r.lam.detach(), expected[0]) and torch.equal(r.w.detach(), expected[1])


def test_grouped_loop_runs_every_stochastic_method():
    for name in STOCHASTIC:
        q = well_conditioned()
        level = bilevel.LowerLevel("net", torch.optim.SGD([q.y], lr=0.3), steps=2)
        group = bilevel.Group("hp", q.problem(), torch.optim.SGD([q.x], lr=0.3), level)
        loop = bilevel.GroupedLoop([group], name)
        x0 = q.x.detach().clone()
        for _ in range(3):
            stats = loop.step(None, None)
        assert math.isfinite(stats["hypergrad_norm/hp"]) and not torch.equal(q.x.detach(), x0), name
        assert loop.state_dict()["loops"]["hp"]["method"] or name == "stocbio"


# -- ridge with minibatches ----------------------------------------------------------------------

def ridge_minibatch_run(name, iters, lr_x, lr_y, options=None, decay=0.0, seed=0):
    """The shared-decay ridge (``lam* = -1.80``), lower minibatches of 5 of 20 rows and upper ones
    of 10 of 30, drawn at random each step; SGD on both levels, step sizes ``lr / sqrt(1 + k/decay)``
    (constant when ``decay`` is 0). Returns ``|lam - lam*| / |lam*|``."""
    r = ridge(n=20, d=8, seed=1, shared=True)
    lam_star = r.upper_optimum()
    low, up = indexed_batches(r.Xt, r.yt, 5), indexed_batches(r.Xv, r.yv, 10)
    ox, oy = torch.optim.SGD([r.lam], lr=lr_x), torch.optim.SGD([r.w], lr=lr_y)
    loop = bilevel.BilevelLoop(ridge_problem(r), name, ox, oy, method_options=options)
    schedules = ([torch.optim.lr_scheduler.LambdaLR(o, lambda k: (1 + k / decay) ** -0.5) for o in (ox, oy)]
                 if decay else [])
    g = torch.Generator().manual_seed(seed)
    lower_ids = torch.randint(0, len(low), (iters,), generator=g)
    upper_ids = torch.randint(0, len(up), (iters,), generator=g)
    for k in range(iters):
        loop.step(low[int(lower_ids[k])], up[int(upper_ids[k])])
        for s in schedules:
            s.step()
    return float((r.lam.detach() - lam_star).abs() / lam_star.abs())


@pytest.mark.slow
@pytest.mark.parametrize("name,options,decay,iters,tol", [
    ("saba", {}, 0.0, 1000, 1e-5),  # variance reduction: constant steps, exact convergence
    ("soba", {}, 100.0, 2000, 5e-3),  # decreasing steps for the others
    ("ma_soba", {}, 100.0, 2000, 5e-3),
    ("amigo", {}, 100.0, 2000, 1e-2),
    ("stocbio", dict(iters=50, alpha=0.3), 100.0, 2000, 2e-2),
])
def test_minibatch_ridge_converges(name, options, decay, iters, tol):
    err = ridge_minibatch_run(name, iters, 0.3, 0.1, options, decay)
    print(f"{name}: |lam - lam*| / |lam*| = {err:.2e} after {iters} minibatch steps")
    assert err < tol
