"""``cg`` and ``neumann`` with ``warm_start=True``: the same answers, from the previous solution.

On a quadratic ``f = 0.5 y'Ay - y'Bx``, ``F = 0.5||y - c||^2 + 0.5 x'Dx`` the implicit
hypergradient at any ``y`` is ``Dx + B'A^-1(y - c)`` (numpy here)."""
import numpy as np
import pytest
import torch

import bilevel
from tests.toys import DT, Quadratic, quadratic


def ill_conditioned(n=200, m=5, cond=100.0, seed=0):
    """A quadratic whose ``A`` has eigenvalues log-spaced in ``[1, cond]`` (CG needs many steps)."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=DT))
    A = Q @ torch.diag(torch.logspace(0, float(np.log10(cond)), n, dtype=DT)) @ Q.T
    B = torch.randn(n, m, generator=g, dtype=DT)
    c = torch.randn(n, generator=g, dtype=DT)
    x = torch.randn(m, generator=g, dtype=DT).requires_grad_(True)
    y = torch.randn(n, generator=g, dtype=DT).requires_grad_(True)
    return Quadratic(A, B, c, torch.eye(m, dtype=DT) * 0.1, x, y)


def closed_form(q):
    A, B, c, D, x, y = (t.detach().numpy() for t in (q.A, q.B, q.c, q.D, q.x, q.y))
    return D @ x + B.T @ np.linalg.solve(A, y - c)


def test_warm_cg_repeated_problem_same_answer_no_iterations():
    q = ill_conditioned()
    cold = bilevel.make_method("cg", dict(iters=200, tol=1e-10))
    warm = bilevel.make_method("cg", dict(iters=200, tol=1e-10, warm_start=True))
    ref = bilevel.hypergradient(q.problem(), cold, None, None)
    first = bilevel.hypergradient(q.problem(), warm, None, None)
    second = bilevel.hypergradient(q.problem(), warm, None, None)
    exact = closed_form(q)
    assert ref.diagnostics["cg_iters"] > 20  # the problem needs CG's work
    assert first.diagnostics["cg_iters"] == ref.diagnostics["cg_iters"]  # nothing to start from yet
    assert second.diagnostics["cg_iters"] == 0 and second.diagnostics["hvps"] == 1  # only its residual
    for hg in (ref, first, second):
        assert np.allclose(hg["x"].numpy(), exact, rtol=1e-8)


def test_warm_cg_on_slowly_moving_problems_uses_fewer_iterations():
    q = ill_conditioned(seed=1)
    cold = bilevel.make_method("cg", dict(iters=200, tol=1e-8))
    warm = bilevel.make_method("cg", dict(iters=200, tol=1e-8, warm_start=True))
    g = torch.Generator().manual_seed(2)
    iters = {"cold": 0, "warm": 0}
    for step in range(8):
        for label, m in (("cold", cold), ("warm", warm)):
            hg = bilevel.hypergradient(q.problem(), m, None, None)
            iters[label] += hg.diagnostics["hvps"]
            assert np.allclose(hg["x"].numpy(), closed_form(q), rtol=1e-6), (label, step)
        with torch.no_grad():  # a search step: x and y move by about 0.1%
            q.x.mul_(1 + 1e-3 * torch.randn(q.x.shape, generator=g, dtype=DT))
            q.y.mul_(1 + 1e-3 * torch.randn(q.y.shape, generator=g, dtype=DT))
    assert iters["warm"] < 0.75 * iters["cold"], iters


def test_warm_neumann_continues_the_richardson_steps():
    q = quadratic(seed=4)
    A, c, y = (t.detach().numpy() for t in (q.A, q.c, q.y))
    K, alpha = 3, 0.2
    warm = bilevel.make_method("neumann", dict(iters=K, alpha=alpha, warm_start=True))
    v = np.zeros(4)
    for call in range(4):
        for _ in range(K + 1):
            v = v + alpha * ((y - c) - A @ v)
        hg = bilevel.hypergradient(q.problem(), warm, None, None)
        assert np.allclose(warm.state_dict()["v"]["y"].numpy(), v, rtol=1e-12), call
        assert np.allclose(hg["x"].numpy(), q.D.numpy() @ q.x.detach().numpy() + q.B.numpy().T @ v, rtol=1e-12)
    cold = bilevel.hypergradient(q.problem(), "neumann", None, None, iters=K, alpha=alpha)
    exact = closed_form(q)
    # after 4 calls the warm series has run 4 (K + 1) steps: closer than one cold call
    assert np.linalg.norm(hg["x"].numpy() - exact) < 0.5 * np.linalg.norm(cold["x"].numpy() - exact)


def test_warm_state_round_trips_and_cold_methods_keep_none():
    q = quadratic(seed=5)
    warm = bilevel.make_method("cg", dict(warm_start=True))
    assert warm.state_dict() == {"v": None}
    bilevel.hypergradient(q.problem(), warm, None, None)
    state = warm.state_dict()
    other = bilevel.make_method("cg", dict(warm_start=True))
    other.load_state_dict(state)
    assert torch.equal(other.v["y"], warm.v["y"]) and other.v["y"] is not warm.v["y"]
    assert bilevel.make_method("neumann").state_dict() == {}
    with pytest.raises(ValueError, match="keeps no state"):
        bilevel.make_method("cg").load_state_dict(state)
    small = quadratic(n=3, seed=5)  # other lower shapes: a clear error, not a silent broadcast
    with pytest.raises(ValueError, match="other lower variables"):
        bilevel.hypergradient(small.problem(), warm, None, None)
