"""The BDA paper's toy with many lower solutions (``tests.toys.many_solutions``): which methods
find the optimistic solution ``x = 1``. Reverse unrolling stalls at ``x = (1 + y2_0) / 2``
(``y2`` never moves under lower steps), BDA's aggregation and IAPTT-GM's learnable initial
point reach ``x = 1``, and so do the joint methods (their lower direction carries ``grad_y F``)."""
import pytest
import torch

import bilevel
from tests.bilevel.test_joint import manual_loop
from tests.toys import many_solutions


def solve(name, options, iters=300, lr=0.3):
    problem, x, y = many_solutions()
    m = bilevel.make_method(name, options)
    m.setup(problem)
    aux = list(problem.auxiliary.values())
    upper = torch.optim.SGD([x], lr=lr)
    if aux:
        opt = m.auxiliary_optimizer(aux)
        upper.add_param_group({"params": aux, "lr": opt.param_groups[0]["lr"]})
    manual_loop(problem, m, upper, torch.optim.SGD([y], lr=lr), iters)
    return float(x.detach()), y.detach()


def test_reverse_unrolling_stalls_at_the_pessimistic_side():
    x, y = solve("rad", dict(steps=10, lr=0.3), iters=300, lr=0.5)
    # y1 sits at x, y2 at 0; F(x, y_T(x)) with d y1_T/dx = c = 1 - 0.7^10 is stationary where
    # x + c (x - 1) = 0: x = c / (1 + c) (-> 1/2 for long unrolls), far from the optimistic x = 1
    c = 1 - 0.7 ** 10
    assert x == pytest.approx(c / (1 + c), abs=1e-9) and float(y[1]) == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("name,options,lr,tol", [
    ("bda", dict(steps=20, lr=0.3, upper_lr=1.0, mu=0.9), 0.3, 1e-3),
    ("iaptt", dict(steps=20, lr=0.3, init_lr=0.3), 0.3, 1e-3),
    ("pbgd", dict(gamma=10.0, steps=30, lr=0.3), 0.3, 0.1),
    ("bome", dict(steps=30, lr=0.3), 0.1, 1e-3),
    ("bvfim", dict(decay=0.0, mu=0.003), 0.3, 0.1),
])
def test_methods_that_find_the_optimistic_solution(name, options, lr, tol):
    x, _ = solve(name, options, lr=lr)
    assert x == pytest.approx(1.0, abs=tol)


@pytest.mark.slow
@pytest.mark.parametrize("name,options,expected", [
    ("neumann", dict(iters=200, alpha=0.3), 0.5),
    ("iaptt", dict(steps=20, lr=0.3, auxiliary_init=False), None),
])
def test_methods_that_do_not(name, options, expected):
    x, _ = solve(name, options)
    assert abs(x - 1.0) > 0.3
    if expected is not None:
        assert x == pytest.approx(expected, abs=1e-6)
