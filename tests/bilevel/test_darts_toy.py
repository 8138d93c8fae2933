"""The DARTS paper's toy problem (Liu et al., ICLR 2019, section 2.3):
``L_val(w, a) = a*w - 2a + 1``, ``L_train(w, a) = w^2 - 2a*w + a^2``, so ``w*(a) = a`` and the
true optimum is ``a = 1``. The first-order approximation converges to ``a = 2``; the second-order
one with ``xi = 0.5`` (one virtual step then solves the lower problem exactly) finds ``a = 1``."""
import pytest
import torch

import bilevel


def run(method, **options):
    w = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    a = torch.tensor([-1.5], dtype=torch.float64, requires_grad=True)
    problem = bilevel.BilevelProblem(
        lower={"w": w}, upper={"a": a},
        lower_loss=lambda lo, up, _: (lo["w"] ** 2 - 2 * up["a"] * lo["w"] + up["a"] ** 2).sum(),
        upper_loss=lambda lo, up, _: (up["a"] * lo["w"] - 2 * up["a"] + 1).sum())
    loop = bilevel.BilevelLoop(problem, method, torch.optim.SGD([a], lr=0.1), torch.optim.SGD([w], lr=0.1),
                               method_options=options)
    for _ in range(250):
        loop.step(None, None)
    return float(a.detach())


@pytest.mark.parametrize("hvp", ["finite_difference", "exact"])
def test_second_order_finds_the_true_optimum(hvp):
    assert run("darts2", xi=0.5, hvp=hvp) == pytest.approx(1.0, abs=1e-3)


def test_first_order_converges_to_the_wrong_point():
    assert run("darts1") == pytest.approx(2.0, abs=1e-3)


def test_hypergradient_formula():
    # d/da L_val(w', a) with w' = w - xi * (2w - 2a):  (w' - 2) + 2 * xi * a
    w, a, xi = 0.7, -0.3, 0.2
    wt = torch.tensor([w], dtype=torch.float64, requires_grad=True)
    at = torch.tensor([a], dtype=torch.float64, requires_grad=True)
    problem = bilevel.BilevelProblem(
        lower={"w": wt}, upper={"a": at},
        lower_loss=lambda lo, up, _: (lo["w"] ** 2 - 2 * up["a"] * lo["w"] + up["a"] ** 2).sum(),
        upper_loss=lambda lo, up, _: (up["a"] * lo["w"] - 2 * up["a"] + 1).sum())
    g = bilevel.hypergradient(problem, "darts2", None, None, xi=xi)
    w1 = w - xi * (2 * w - 2 * a)
    assert float(g["a"]) == pytest.approx(w1 - 2 + 2 * xi * a, rel=1e-9)
