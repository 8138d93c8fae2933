"""GroupedLoop: per-group lower problems and schedules, shared lower levels, exact state round trip."""
from __future__ import annotations

import copy

import pytest
import torch

import bilevel
from bilevel import Group, GroupedLoop, LowerLevel

DT = torch.float64


def _two_groups(shared: bool, every=(1, 2), lower_every=(1, 3), momentum=0.9):
    """Two quadratic bilevel problems: f_i = 0.5||y_i - a_i x_i||^2 (+ the other's y in the upper
    loss), F_i = 0.5||y_i - c_i||^2; shared: both groups over one lower variable ``y``."""
    torch.manual_seed(0)
    y = {"y1": torch.randn(3, dtype=DT, requires_grad=True), "y2": torch.randn(3, dtype=DT, requires_grad=True)}
    x = {"x1": torch.randn(3, dtype=DT, requires_grad=True), "x2": torch.randn(3, dtype=DT, requires_grad=True)}
    c = torch.randn(3, dtype=DT)

    groups = []
    if shared:
        sgd = torch.optim.SGD(y.values(), lr=0.1, momentum=momentum)
        level = LowerLevel("y", sgd, every=lower_every[0])
        for i in (1, 2):
            other = f"x{3 - i}"
            p = bilevel.BilevelProblem(
                y, {f"x{i}": x[f"x{i}"]},
                lambda lo, up, b, i=i: sum(0.5 * ((lo[f"y{j}"] - b * (up[f"x{j}"] if f"x{j}" in up else lo[f"_x{j}"])) ** 2).sum()
                                           for j in (1, 2)),
                lambda lo, up, b, i=i: 0.5 * ((lo[f"y{i}"] - c) ** 2).sum(),
                buffers={f"_{other}": x[other].detach()})
            groups.append(Group(f"g{i}", p, torch.optim.Adam([x[f"x{i}"]], lr=0.05), level, every=every[i - 1]))
    else:
        for i in (1, 2):
            sgd = torch.optim.SGD([y[f"y{i}"]], lr=0.1, momentum=momentum)
            level = LowerLevel(f"l{i}", sgd, every=lower_every[i - 1])
            p = bilevel.BilevelProblem(
                {f"y{i}": y[f"y{i}"]}, {f"x{i}": x[f"x{i}"]},
                lambda lo, up, b, i=i: 0.5 * ((lo[f"y{i}"] - b * up[f"x{i}"]) ** 2).sum(),
                lambda lo, up, b, i=i: 0.5 * ((lo[f"y{i}"] - c) ** 2).sum())
            groups.append(Group(f"g{i}", p, torch.optim.Adam([x[f"x{i}"]], lr=0.05), level, every=every[i - 1]))
    return groups, y, x


def _snapshot(*dicts):
    return {k: v.detach().clone() for d in dicts for k, v in d.items()}


def test_separate_lower_levels_follow_their_own_schedules():
    groups, y, x = _two_groups(shared=False, every=(1, 2), lower_every=(1, 3))
    loop = GroupedLoop(groups, "darts2")
    for step in range(6):
        before = _snapshot(y, x)
        stats = loop.step(2.0, 2.0)
        after = _snapshot(y, x)
        moved = {k for k in before if not torch.equal(before[k], after[k])}
        expect = {"x1", "y1"} | ({"x2"} if step % 2 == 0 else set()) | ({"y2"} if step % 3 == 0 else set())
        assert moved == expect, (step, moved)
        assert ("lower_loss/l2" in stats) == (step % 3 == 0) and ("upper_loss/g2" in stats) == (step % 2 == 0)


def test_shared_lower_level_steps_once_after_all_upper_steps():
    groups, y, x = _two_groups(shared=True, every=(1, 2))
    sgd = groups[0].lower.optimizer
    calls = []
    original = sgd.step
    sgd.step = lambda *a, **k: (calls.append(1), original(*a, **k))[1]
    loop = GroupedLoop(groups, "darts1")
    for _ in range(3):
        stats = loop.step(2.0, 2.0)
        assert [k for k in stats if k.startswith("lower_loss")] == ["lower_loss/y"]
    assert len(calls) == 3  # once per step, not once per group


def test_iaptt_initial_point_is_one_copy_with_one_optimizer_for_a_shared_level():
    groups, y, x = _two_groups(shared=True)
    loop = GroupedLoop(groups, "iaptt", {"steps": 3, "lr": 0.1})
    loop.step(2.0, 2.0)
    aux = groups[0].problem.auxiliary
    assert aux is groups[1].problem.auxiliary and set(aux) == {"iaptt_init/y1", "iaptt_init/y2"}
    own = loop.loops["g1"].auxiliary_optimizer
    assert own is loop.loops["g2"].auxiliary_optimizer  # one optimizer, the method's own settings
    assert isinstance(own, torch.optim.SGD) and own.defaults["weight_decay"] == 0
    held = [id(p) for opt in [own, *(g.optimizer for g in groups)] for pg in opt.param_groups for p in pg["params"]]
    assert sum(held.count(id(t)) for t in aux.values()) == len(aux)  # each in exactly one optimizer


@pytest.mark.parametrize("method", ["darts2", "iaptt", "f2sa", "meha"])
@pytest.mark.parametrize("shared", [True, False])
def test_state_dict_round_trip_is_exact(method, shared):
    """4 steps in one go == 2 steps, a state copy into fresh objects, 2 more steps."""
    options = {"steps": 2, "lr": 0.1} if method == "iaptt" else {}
    groups, y, x = _two_groups(shared=shared)
    straight = GroupedLoop(groups, method, options)
    for _ in range(4):
        straight.step(2.0, 1.5)
    expected = _snapshot(y, x)

    groups, y, x = _two_groups(shared=shared)
    first = GroupedLoop(groups, method, options)
    for _ in range(2):
        first.step(2.0, 1.5)
    state, values = copy.deepcopy(first.state_dict()), _snapshot(y, x)

    groups, y, x = _two_groups(shared=shared)
    with torch.no_grad():
        for k, v in {**y, **x}.items():
            v.copy_(values[k])
    second = GroupedLoop(groups, method, options)
    second.load_state_dict(state)
    for _ in range(2):
        second.step(2.0, 1.5)
    got = _snapshot(y, x)
    assert all(torch.equal(expected[k], got[k]) for k in expected)


def test_joint_method_moves_the_lower_variables_along_its_own_direction():
    """pbgd (updates_lower): the lower step applies the method's direction, not grad_y f."""
    groups, y, x = _two_groups(shared=False, momentum=0.0)
    g1 = groups[0]
    expected = bilevel.hypergradient(g1.problem, "pbgd", 2.0, 2.0).lower
    y1 = y["y1"].detach().clone()
    plain = torch.autograd.grad(g1.problem.lower_loss({"y1": y["y1"]}, {"x1": x["x1"]}, 2.0), y["y1"])[0]
    GroupedLoop(groups, "pbgd").step(2.0, 2.0)
    step = y["y1"].detach() - y1
    assert torch.allclose(step, -0.1 * expected["y1"], atol=1e-12)
    assert not torch.allclose(step, -0.1 * plain, atol=1e-6)
