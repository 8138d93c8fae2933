"""Tiny problems and data shared by the tests (float64, closed forms)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

import bilevel

DT = torch.float64


@dataclass
class Quadratic:
    """``f = 0.5 y'Ay - y'Bx``, ``F = 0.5||y - c||^2 + 0.5 x'Dx``; ``y*(x) = A^-1 B x``."""

    A: Tensor
    B: Tensor
    c: Tensor
    D: Tensor
    x: Tensor
    y: Tensor

    def problem(self) -> bilevel.BilevelProblem:
        A, B, c, D = self.A, self.B, self.c, self.D
        return bilevel.BilevelProblem(
            lower={"y": self.y}, upper={"x": self.x},
            lower_loss=lambda lo, up, _: 0.5 * lo["y"] @ A @ lo["y"] - lo["y"] @ B @ up["x"],
            upper_loss=lambda lo, up, _: 0.5 * ((lo["y"] - c) ** 2).sum() + 0.5 * up["x"] @ D @ up["x"])

    def y_star(self) -> Tensor:
        return torch.linalg.solve(self.A, self.B @ self.x.detach())

    def x_star(self) -> Tensor:
        """Upper optimum ``argmin_x F(x, y*(x))``: ``(J'J + D)^-1 J'c``, ``J = A^-1 B``."""
        J = torch.linalg.solve(self.A, self.B)
        return torch.linalg.solve(J.T @ J + self.D, J.T @ self.c)

    def exact(self) -> Tensor:
        """``dF/dx`` at ``y*(x)``."""
        ys = self.y_star()
        return torch.linalg.solve(self.A, self.B).T @ (ys - self.c) + self.D @ self.x.detach()


def quadratic(n: int = 4, m: int = 3, seed: int = 0) -> Quadratic:
    g = torch.Generator().manual_seed(seed)
    Q = torch.randn(n, n, generator=g, dtype=DT)
    A = Q @ Q.T / n + torch.eye(n, dtype=DT)
    B = torch.randn(n, m, generator=g, dtype=DT)
    c = torch.randn(n, generator=g, dtype=DT)
    D = torch.eye(m, dtype=DT) * 0.1
    x = torch.randn(m, generator=g, dtype=DT).requires_grad_(True)
    y = torch.randn(n, generator=g, dtype=DT).requires_grad_(True)
    return Quadratic(A, B, c, D, x, y)


@dataclass
class Ridge:
    """Ridge regression with per-feature weight decay ``exp(lam)``; upper = validation MSE."""

    Xt: Tensor
    yt: Tensor
    Xv: Tensor
    yv: Tensor
    lam: Tensor
    w: Tensor

    def problem(self) -> bilevel.BilevelProblem:
        return bilevel.BilevelProblem(
            lower={"w": self.w}, upper={"lam": self.lam},
            lower_loss=lambda lo, up, b: ridge_lower(lo["w"], up["lam"], *b),
            upper_loss=lambda lo, up, b: ((b[0] @ lo["w"] - b[1]) ** 2).mean() / 2)

    def w_star(self, lam: Tensor | None = None) -> Tensor:
        lam = self.lam.detach() if lam is None else lam
        n = self.Xt.shape[0]
        H = self.Xt.T @ self.Xt / n + torch.diag(torch.exp(lam).expand(self.Xt.shape[1]))
        return torch.linalg.solve(H, self.Xt.T @ self.yt / n)

    def upper_optimum(self) -> Tensor:
        """``argmin_lam F(w*(lam))`` by L-BFGS on the exact objective (float64)."""
        lam = self.lam.detach().clone().requires_grad_(True)
        opt = torch.optim.LBFGS([lam], lr=1, max_iter=200, tolerance_grad=1e-13, tolerance_change=1e-15,
                                line_search_fn="strong_wolfe")

        def closure() -> Tensor:
            opt.zero_grad()
            F = ((self.Xv @ self.w_star(lam) - self.yv) ** 2).mean() / 2
            F.backward()
            return F
        for _ in range(3):
            opt.step(closure)
        return lam.detach()

    def exact(self) -> Tensor:
        """``dF/dlam`` at ``w*(lam)``, by autograd through ``torch.linalg.solve``."""
        lam = self.lam.detach().clone().requires_grad_(True)
        F = ((self.Xv @ self.w_star(lam) - self.yv) ** 2).mean() / 2
        return torch.autograd.grad(F, lam)[0]

    @property
    def batches(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        return (self.Xt, self.yt), (self.Xv, self.yv)


def well_conditioned(seed: int = 3) -> Quadratic:
    """The toy quadratic with ``D = I`` (upper problem well conditioned: loops converge fast)."""
    q = quadratic(seed=seed)
    q.D = torch.eye(3, dtype=DT)
    return q


def as_numpy(t: Tensor):
    """``t`` detached as a float64 NumPy array (for independent NumPy computations)."""
    return t.detach().numpy().astype("float64")


def ridge_lower(w: Tensor, lam: Tensor, X: Tensor, y: Tensor) -> Tensor:
    return ((X @ w - y) ** 2).mean() / 2 + 0.5 * (torch.exp(lam) * w ** 2).sum()


def ridge(n: int = 40, m: int = 30, d: int = 5, seed: int = 0, solved: bool = True, shared: bool = False) -> Ridge:
    """``shared``: one weight decay for all features (``lam`` of shape (1,), start -1); with
    ``ridge(n=20, d=8, seed=1, shared=True)`` the upper optimum is finite (``lam* = -1.80``;
    with one ``lam`` per feature it runs off to ``-inf`` for some features)."""
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, generator=g, dtype=DT)
    Xt = torch.randn(n, d, generator=g, dtype=DT)
    Xv = torch.randn(m, d, generator=g, dtype=DT)
    yt = Xt @ w_true + 0.5 * torch.randn(n, generator=g, dtype=DT)
    yv = Xv @ w_true + 0.5 * torch.randn(m, generator=g, dtype=DT)
    lam = (torch.randn(d, generator=g, dtype=DT) * 0.5 - 1.0).requires_grad_(True)
    if shared:
        lam = torch.full((1,), -1.0, dtype=DT, requires_grad=True)
    toy = Ridge(Xt, yt, Xv, yv, lam, torch.zeros(d, dtype=DT, requires_grad=True))
    if solved:
        with torch.no_grad():
            toy.w.copy_(toy.w_star())
    else:
        with torch.no_grad():
            toy.w.copy_(torch.randn(d, generator=g, dtype=DT))
    return toy


def rel_err(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def many_solutions(y0: tuple[float, float] = (0.0, 0.0), x0: float = 3.0) -> tuple[bilevel.BilevelProblem, Tensor, Tensor]:
    """The BDA paper's toy (Liu et al., ICML 2020): ``f = 0.5 y1^2 - x y1`` (solutions
    ``y1 = x``, any ``y2``), ``F = 0.5 (x - y2)^2 + 0.5 (y1 - 1)^2``. The optimistic solution is
    ``x = 1, y = (1, 1)``; a method that keeps ``y2`` where it starts finds ``x = (1 + y2_0)/2``."""
    x = torch.tensor([x0], dtype=DT, requires_grad=True)
    y = torch.tensor(y0, dtype=DT, requires_grad=True)
    problem = bilevel.BilevelProblem(
        lower={"y": y}, upper={"x": x},
        lower_loss=lambda lo, up, _: 0.5 * lo["y"][0] ** 2 - up["x"][0] * lo["y"][0],
        upper_loss=lambda lo, up, _: 0.5 * (up["x"][0] - lo["y"][1]) ** 2 + 0.5 * (lo["y"][0] - 1) ** 2)
    return problem, x, y


@dataclass
class TinyNet:
    """``predict(A) = tanh(A @ w) @ b`` (float64, nonlinear in the lower variables ``w`` (4, 3) and
    ``b`` (3,)); ``f`` = training MSE + ``0.5 * exp(lam[0]) |w|^2 + 0.5 * exp(lam[1]) |b|^2``,
    ``F`` = validation MSE. Batches: ``(A, t)`` with ``A`` (8, 4), ``t`` (8,)."""

    lower_batch: tuple[Tensor, Tensor]
    upper_batch: tuple[Tensor, Tensor]
    w: Tensor
    b: Tensor
    lam: Tensor

    @staticmethod
    def f(w: Tensor, b: Tensor, lam: Tensor, batch: tuple[Tensor, Tensor]) -> Tensor:
        A, t = batch
        r = torch.tanh(A @ w) @ b - t
        return (r * r).mean() + 0.5 * (lam[0].exp() * (w * w).sum() + lam[1].exp() * (b * b).sum())

    @staticmethod
    def F(w: Tensor, b: Tensor, lam: Tensor, batch: tuple[Tensor, Tensor]) -> Tensor:
        A, t = batch
        r = torch.tanh(A @ w) @ b - t
        return (r * r).mean()

    def problem(self) -> bilevel.BilevelProblem:
        return bilevel.BilevelProblem(
            lower={"w": self.w, "b": self.b}, upper={"lam": self.lam},
            lower_loss=lambda lo, up, batch: self.f(lo["w"], lo["b"], up["lam"], batch),
            upper_loss=lambda lo, up, batch: self.F(lo["w"], lo["b"], up["lam"], batch))


def tiny_net(seed: int = 0) -> TinyNet:
    g = torch.Generator().manual_seed(seed)

    def batch() -> tuple[Tensor, Tensor]:
        return torch.randn(8, 4, generator=g, dtype=DT), torch.randn(8, generator=g, dtype=DT)
    lower, upper = batch(), batch()
    w = (0.5 * torch.randn(4, 3, generator=g, dtype=DT)).requires_grad_(True)
    b = (0.5 * torch.randn(3, generator=g, dtype=DT)).requires_grad_(True)
    lam = torch.tensor([-2.0, -1.5], dtype=DT, requires_grad=True)
    return TinyNet(lower, upper, w, b, lam)
