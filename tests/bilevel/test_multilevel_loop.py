"""The multilevel loop: a three-level quadratic driven to its closed-form optimum, two levels equal to
``BilevelLoop``, the one-step approximations against hand computations, resume, refusals."""
from __future__ import annotations

import copy

import pytest
import torch

import bilevel
from bilevel import Level, LoopLevel, MultilevelLoop, multilevel_hypergradient
from tests.bilevel.test_multilevel import three_levels
from tests.toys import rel_err

DT = torch.float64


def _loop(p, method: str, options: dict, every=(1, 1, 1)) -> MultilevelLoop:
    x, y, z = (lv.variables for lv in p.levels())
    levels = [LoopLevel(name, level, torch.optim.SGD(list(level.variables.values()), lr=lr), every=e, batch=b)
              for (name, level, lr, b), e in zip((("x", p.levels()[0], 0.2, "upper"), ("y", p.levels()[1], 0.5, "upper"),
                                                  ("z", p.levels()[2], 0.5, "lower")), every)]
    return MultilevelLoop(levels, method, options)


@pytest.mark.parametrize("method,options,steps,tol", [("cg", {"iters": 10}, 30, 1e-6), ("rad", {"steps": 6, "lr": 0.5}, 20, 1e-2)])
def test_three_levels_reach_the_closed_form_optimum(method, options, steps, tol):
    """Stepping every level drives the top variable to where the closed-form total derivative vanishes
    (``rad``: up to the bias of a 6-step truncation, which its fixed point keeps: 3.4e-3 of the start)."""
    p = three_levels(seed=6)
    start = float(p.solution()[2].norm())
    loop = _loop(p, method, options)
    for _ in range(steps):
        stats = loop.step(None, None)
    assert float(p.solution()[2].norm()) < tol * start
    ys, zs, _ = p.solution()
    assert rel_err(p.y.detach(), ys) < tol and rel_err(p.z.detach(), zs) < tol
    assert {"loss/x", "loss/y", "loss/z", "grad_norm/x", "hypergrad_time_s/y"} <= set(stats)


def test_one_step_of_the_loop_is_each_level_total_derivative_then_its_step():
    p, q = three_levels(seed=7), three_levels(seed=7)
    loop = _loop(p, "cg", {"iters": 30})
    levels = q.levels()
    gx = multilevel_hypergradient(levels, "cg", iters=30)["x"]
    with torch.no_grad():
        q.x.sub_(0.2 * gx)
    held = [Level(lv.variables, (lambda loss: lambda v, b: loss({"x": q.x.detach(), **v}, b))(lv.loss))
            for lv in q.levels()[1:]]
    gy = multilevel_hypergradient(held, "cg", iters=30)["y"]
    with torch.no_grad():
        q.y.sub_(0.5 * gy)
    zleaf = q.z.detach().clone().requires_grad_(True)
    gz = torch.autograd.grad(q.levels()[2].loss({"x": q.x.detach(), "y": q.y.detach(), "z": zleaf}, None), zleaf)[0]
    with torch.no_grad():
        q.z.sub_(0.5 * gz)
    loop.step(None, None)
    for a, b in ((p.x, q.x), (p.y, q.y), (p.z, q.z)):
        assert rel_err(a.detach(), b.detach()) < 1e-12


def test_two_levels_equal_a_bilevel_loop():
    torch.manual_seed(0)
    X, t = torch.randn(16, 3, dtype=DT), torch.randn(16, dtype=DT)
    f = lambda lo, up, b: ((b[0] @ lo["w"] - b[1]) ** 2).mean() + (up["h"].exp() * lo["w"] ** 2).sum()
    F = lambda lo, up, b: ((b[0] @ lo["w"] - b[1]) ** 2).mean()
    w, h = torch.zeros(3, dtype=DT, requires_grad=True), torch.zeros(3, dtype=DT, requires_grad=True)
    w2, h2 = w.detach().clone().requires_grad_(True), h.detach().clone().requires_grad_(True)
    bl = bilevel.BilevelLoop(bilevel.BilevelProblem({"w": w}, {"h": h}, f, F), "cg", torch.optim.SGD([h], lr=0.3),
                             torch.optim.SGD([w], lr=0.2), method_options={"iters": 10})
    ml = MultilevelLoop([LoopLevel("h", Level({"h": h2}, lambda v, b: F(v, v, b)), torch.optim.SGD([h2], lr=0.3)),
                         LoopLevel("w", Level({"w": w2}, lambda v, b: f(v, v, b)), torch.optim.SGD([w2], lr=0.2),
                                   batch="lower")], "cg", {"iters": 10})
    for _ in range(5):
        a = bl.step((X[:8], t[:8]), (X[8:], t[8:]))
        b = ml.step((X[:8], t[:8]), (X[8:], t[8:]))
        assert b["loss/h"] == pytest.approx(a["upper_loss"], rel=1e-12)
    assert rel_err(h2.detach(), h.detach()) < 1e-10 and rel_err(w2.detach(), w.detach()) < 1e-10


def test_one_step_and_first_order_approximations_by_hand():
    p = three_levels(seed=8)
    levels = p.levels()
    first = multilevel_hypergradient(levels, "first_order")
    torch.testing.assert_close(first["x"], p.x.detach())  # the top's partial in x alone: 0.5 x'x
    one = multilevel_hypergradient(levels, "one_step", lr=0.3)
    two = multilevel_hypergradient(levels, "rad", steps=1, lr=0.3)
    assert rel_err(one["x"], two["x"]) < 1e-14 and one.diagnostics["method"] == "one_step"
    assert rel_err(one["x"], first["x"]) > 1e-3


def test_schedules_and_resume():
    p, q = three_levels(seed=9), three_levels(seed=9)
    a = _loop(p, "one_step", {"lr": 0.3}, every=(2, 1, 1))
    stats = [a.step(None, None) for _ in range(4)]
    assert "loss/x" in stats[0] and "loss/x" not in stats[1] and "loss/x" in stats[2]
    b = _loop(q, "one_step", {"lr": 0.3}, every=(2, 1, 1))
    b.step(None, None)
    b.step(None, None)
    state = copy.deepcopy(b.state_dict())
    c = _loop(q, "one_step", {"lr": 0.3}, every=(2, 1, 1))
    c.load_state_dict(state)
    c.step(None, None)
    c.step(None, None)
    for u, v in ((p.x, q.x), (p.y, q.y), (p.z, q.z)):
        assert torch.equal(u, v)


def test_refusals():
    p = three_levels()
    with pytest.raises(ValueError, match="cannot differentiate through more than one level"):
        _loop(p, "darts2", {})
    with pytest.raises(ValueError, match="has no option 'iters'"):
        _loop(p, "rad", {"iters": 3})
    with pytest.raises(ValueError, match="one number for every level"):
        _loop(p, "rad", {"steps": [1, 2]})
