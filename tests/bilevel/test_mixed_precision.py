"""Hypergradients under a caller's bf16 autocast: finite differences and linear solves stay float32."""
import contextlib

import pytest
import torch
import torch.nn.functional as F

import bilevel
from bilevel.methods import implicit, one_step


def _mixed_conv_problem() -> tuple[bilevel.BilevelProblem, tuple, tuple]:
    """Two convs mixed by softmax(alphas) (a DARTS edge): convs run in bf16 under CPU autocast."""
    g = torch.Generator().manual_seed(0)
    data = [torch.rand(2, 3, 16, 16, generator=g) for _ in range(4)]
    lower = {"w0": (0.3 * torch.randn(3, 3, 3, 3, generator=g)).requires_grad_(),
             "w1": (0.3 * torch.randn(3, 3, 1, 1, generator=g)).requires_grad_()}
    upper = {"alphas": (0.1 * torch.randn(2, generator=g)).requires_grad_()}

    def net(lo, up, x):
        a = torch.softmax(up["alphas"], 0)
        return a[0] * F.conv2d(x, lo["w0"], padding=1) + a[1] * F.conv2d(x, lo["w1"])

    def loss(lo, up, batch):
        return F.mse_loss(net(lo, up, batch[0]).float(), batch[1])

    return bilevel.BilevelProblem(lower=lower, upper=upper, lower_loss=loss, upper_loss=loss), \
        (data[0], data[1]), (data[2], data[3])


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("method", ["darts2", "fdhg"])
def test_finite_differences_run_in_float32_under_bf16_autocast(method, monkeypatch):
    """Relative difference to the float32 hypergradient < 5e-3 (measured 1.1e-3); with the finite
    difference's forward passes left in bf16 the same call is off by ~40% (asserted > 5e-2), so the
    protection is what keeps it close."""
    problem, lower_batch, upper_batch = _mixed_conv_problem()
    options = {"xi": 0.5}

    def hypergradient() -> torch.Tensor:
        return bilevel.hypergradient(problem, method, lower_batch, upper_batch, **options)["alphas"]

    exact = hypergradient()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        protected = hypergradient()
    assert _relative(protected, exact) < 5e-3
    monkeypatch.setattr(one_step, "full_precision", lambda _y: contextlib.nullcontext())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        unprotected = hypergradient()
    assert _relative(unprotected, exact) > 5e-2


@pytest.mark.parametrize("method,options", [("cg", {"iters": 20}), ("neumann", {"iters": 10, "alpha": 1.0})])
def test_implicit_methods_run_in_float32_under_bf16_autocast(method, options, monkeypatch):
    """cg and neumann compute their whole system (right-hand side, Hessian graph, solve) with autocast
    off: equal to float32 to 1e-6. Left in bf16, 20 CG iterations amplify the bf16 right-hand side
    into an error 32x the hypergradient's norm (asserted > 1) and neumann is off by ~1e-2 (> 1e-3)."""
    problem, lower_batch, upper_batch = _mixed_conv_problem()

    def hypergradient() -> torch.Tensor:
        return bilevel.hypergradient(problem, method, lower_batch, upper_batch, **options)["alphas"]

    exact = hypergradient()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        protected = hypergradient()
    assert _relative(protected, exact) < 1e-6
    monkeypatch.setattr(implicit, "full_precision", lambda _y: contextlib.nullcontext())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        unprotected = hypergradient()
    assert _relative(unprotected, exact) > (1.0 if method == "cg" else 1e-3)
