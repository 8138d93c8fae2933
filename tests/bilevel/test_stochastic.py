"""Stochastic single-loop and amortized methods (soba, saba, ma_soba, stocbio, amigo) against
closed forms written here in numpy: their directions, the implicit-function hypergradient at their
fixed points, and the optima their loops reach."""
import math

import numpy as np
import pytest
import torch

import bilevel
from bilevel.methods.saga import MissingIndexError
from tests.toys import DT, as_numpy, quadratic, well_conditioned, ridge, ridge_lower

STOCHASTIC = ("soba", "saba", "ma_soba", "stocbio", "amigo")


_np = as_numpy


def implicit_v(q):
    """``H_yy^-1 grad_y F`` at ``y = y*(x)``: ``A^-1 (y* - c)``."""
    A, c = _np(q.A), _np(q.c)
    return np.linalg.solve(A, _np(q.y_star()) - c)


def neumann_np(A, b, iters, alpha, x0=None):
    """``iters + 1`` Richardson steps ``x <- x + alpha (b - A x)`` from ``x0`` (0: the series)."""
    x = np.zeros_like(b) if x0 is None else x0.copy()
    for _ in range(iters + 1):
        x = x + alpha * (b - A @ x)
    return x


def quadratic_terms(q, v):
    """SOBA's directions on the quadratic ``f = 0.5 y'Ay - y'Bx``, ``F = 0.5||y-c||^2 + 0.5 x'Dx``:
    ``D_y = Ay - Bx``, ``D_v = Av - (y - c)``, ``D_x = Dx + B'v`` (``H_xy v = -B'v``)."""
    A, B, c, D, x, y = map(_np, (q.A, q.B, q.c, q.D, q.x, q.y))
    return A @ y - B @ x, A @ v - (y - c), D @ x + B.T @ v


# -- directions and state -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["soba", "saba", "ma_soba"])
def test_single_loop_directions_and_v_step_are_the_closed_forms(name):
    q = quadratic(seed=5)
    v0 = np.random.default_rng(0).standard_normal(4)
    lr, theta = 0.07, 0.3
    options = dict(v_lr=lr, theta=theta) if name == "ma_soba" else dict(v_lr=lr)
    m = bilevel.make_method(name, options)
    m.load_state_dict({"v": {"y": torch.tensor(v0)}, "iteration": 0})
    v, h = v0, np.zeros(3)
    for call in range(3):
        dy, dv, dx = quadratic_terms(q, v)
        hg = bilevel.hypergradient(q.problem(), m, None, None)
        h = (1 - theta) * h + theta * dx
        expected = h if name == "ma_soba" else dx
        assert np.allclose(_np(hg["x"]), expected, rtol=1e-12, atol=1e-14), call
        assert np.allclose(_np(hg.lower["y"]), dy, rtol=1e-12), call
        v = v - lr * dv
        assert np.allclose(_np(m.state_dict()["v"]["y"]), v, rtol=1e-12, atol=1e-14), call
        with torch.no_grad():  # the point moves between calls as a loop would move it
            q.x.add_(0.1), q.y.sub_(0.05)
    assert m.state_dict()["iteration"] == 3 and bilevel.METHODS[name].updates_lower


@pytest.mark.parametrize("name", STOCHASTIC)
def test_fixed_point_gives_the_implicit_function_hypergradient(name):
    """At ``y = y*(x)`` and ``v = H^-1 grad_y F`` (ma_soba: ``h`` at its fixed point too) the
    returned hypergradient is the closed form, twice in a row (``v`` stays put)."""
    q = quadratic(seed=7)
    with torch.no_grad():
        q.y.copy_(q.y_star())
    vs = implicit_v(q)
    exact = _np(q.exact())
    options = dict(iters=200, alpha=0.3) if name == "stocbio" else {}
    m = bilevel.make_method(name, options)
    state = {"v": {"y": torch.tensor(vs)}}
    if name == "ma_soba":
        state["h"] = {"x": torch.tensor(exact)}
    if name != "stocbio":  # stocbio keeps no v: its series restarts from 0 at every call
        m.load_state_dict(state)
    for _ in range(2):
        hg = bilevel.hypergradient(q.problem(), m, None, None)
        assert np.allclose(_np(hg["x"]), exact, rtol=1e-10, atol=1e-13)
        if hg.lower is not None:
            assert float(hg.lower["y"].abs().max()) < 1e-12
    if name != "stocbio":
        assert np.allclose(_np(m.state_dict()["v"]["y"]), vs, rtol=1e-12)


def test_stocbio_is_the_truncated_neumann_series_and_amigo_warm_starts_it():
    q = quadratic(seed=2)
    A, B, c, D, x, y = map(_np, (q.A, q.B, q.c, q.D, q.x, q.y))
    b = y - c
    hg = bilevel.hypergradient(q.problem(), "stocbio", None, None, iters=6, alpha=0.2)
    assert np.allclose(_np(hg["x"]), D @ x + B.T @ neumann_np(A, b, 6, 0.2), rtol=1e-12)
    assert hg.diagnostics["hvps"] == 6
    m = bilevel.make_method("amigo", dict(steps=4, lr=0.15))
    v = None
    for call in range(3):
        v = neumann_np(A, b, 3, 0.15, v)  # 4 steps, from the previous call's v
        hg = bilevel.hypergradient(q.problem(), m, None, None)
        assert np.allclose(_np(hg["x"]), D @ x + B.T @ v, rtol=1e-12), call
        assert hg.diagnostics["hvps"] == (3 if call == 0 else 4)
    assert np.allclose(_np(m.state_dict()["v"]["y"]), v, rtol=1e-12)


# -- SABA's memory ----------------------------------------------------------------------------

def indexed_batches(X, y, size):
    """A fixed partition into minibatches, each a dict naming its index."""
    return [{"X": X[i:i + size], "y": y[i:i + size], "index": k} for k, i in enumerate(range(0, len(X), size))]


def ridge_problem(r):
    return bilevel.BilevelProblem(
        lower={"w": r.w}, upper={"lam": r.lam},
        lower_loss=lambda lo, up, b: ridge_lower(lo["w"], up["lam"], b["X"], b["y"]),
        upper_loss=lambda lo, up, b: ((b["X"] @ lo["w"] - b["y"]) ** 2).mean() / 2)


def test_saba_estimates_are_saga_over_the_named_minibatches():
    r = ridge(n=12, m=8, d=3, seed=2, shared=True)
    low, up = indexed_batches(r.Xt, r.yt, 4), indexed_batches(r.Xv, r.yv, 4)
    w, lam = _np(r.w), float(r.lam.detach())
    lr = 0.05

    def lower_terms(b, v):  # grad_w f, H_ww v, H_lam,w v on one lower minibatch
        X, t = _np(b["X"]), _np(b["y"])
        n = len(t)
        return [X.T @ (X @ w - t) / n + math.exp(lam) * w, X.T @ X @ v / n + math.exp(lam) * v,
                np.array([math.exp(lam) * w @ v])]

    def upper_terms(b):  # grad_w F, grad_lam F
        X, t = _np(b["X"]), _np(b["y"])
        return [X.T @ (X @ w - t) / len(t), np.zeros(1)]

    memory = {"lower": {}, "upper": {}}

    def saga(table, i, fresh):
        old = memory[table].get(i)
        if old is None:
            out = fresh
        else:
            mean = [sum(e[k] for e in memory[table].values()) / len(memory[table]) for k in range(len(fresh))]
            out = [f - o + a for f, o, a in zip(fresh, old, mean)]
        memory[table][i] = fresh
        return out

    m = bilevel.make_method("saba", dict(v_lr=lr))
    v = np.zeros(3)
    for call, (i, j) in enumerate([(0, 0), (1, 1), (0, 1), (2, 0), (1, 0), (1, 1)]):
        gf, hv, cross = saga("lower", i, lower_terms(low[i], v))
        gy, gx = saga("upper", j, upper_terms(up[j]))
        hg = bilevel.hypergradient(ridge_problem(r), m, low[i], up[j])
        assert np.allclose(_np(hg["lam"]), gx - cross, rtol=1e-11, atol=1e-14), call
        assert np.allclose(_np(hg.lower["w"]), gf, rtol=1e-11, atol=1e-14), call
        v = v - lr * (hv - gy)
        assert np.allclose(_np(m.state_dict()["v"]["w"]), v, rtol=1e-11, atol=1e-14), call
    assert hg.diagnostics["lower_entries"] == 3 and hg.diagnostics["upper_entries"] == 2


def test_saba_needs_batches_that_name_their_minibatch():
    r = ridge(n=12, m=8, d=3, seed=2, shared=True)
    b = {"X": r.Xt[:4], "y": r.yt[:4]}
    with pytest.raises(MissingIndexError, match="'index'.*fixed\\s+partition"):
        bilevel.hypergradient(ridge_problem(r), "saba", b, {**b, "index": 0})
    with pytest.raises(MissingIndexError, match="per-sample indices"):
        bilevel.hypergradient(ridge_problem(r), "saba", {**b, "index": torch.arange(4)}, {**b, "index": 0})
    custom = {**b, "batch_id": torch.tensor(3)}
    hg = bilevel.hypergradient(ridge_problem(r), "saba", custom, custom, index_key="batch_id")
    assert hg.diagnostics["lower_entries"] == 1


@pytest.mark.parametrize("name,options,match", [
    ("soba", dict(v_lr=0.0), "v_lr"),
    ("ma_soba", dict(theta=1.5), "theta"),
    ("ma_soba", dict(theta=0.0), "theta"),
    ("saba", dict(index_key=""), "index_key"),
    ("stocbio", dict(iters=2.5), "integer"),
    ("amigo", dict(steps=0), "steps"),
    ("cg", dict(warm_start="yes"), "warm_start"),
    ("neumann", dict(warm_start=1), "warm_start"),
])
def test_bad_options_are_refused(name, options, match):
    with pytest.raises(bilevel.OptionError, match=match):
        bilevel.make_method(name, options)
