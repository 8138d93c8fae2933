"""The three benchmark problems and their float64 references.

Every library sees a problem the same way: a lower ``nn.Module`` (the lower variables are its
parameters), upper variables (a dict of named tensors; peers that need a module get them wrapped
in one), two fixed batches, and two losses written once in *module form*::

    lower_loss(predict, weights, hp, batch) -> scalar     # f(y, x)
    upper_loss(predict, weights, hp, batch) -> scalar     # F(y, x)

``predict(inputs)`` runs the lower model with the current lower variables, ``weights`` is the list
of the current lower tensors in ``module.parameters()`` order (for regularisers), ``hp`` maps
upper names to tensors. Each adapter builds ``predict``/``weights`` the way its library does
(``functional_call`` for ours, higher's patched module, BOAT's ``params=``, ...).

(a) ridge regression with per-feature ``exp(lambda)`` weight decay, float64, exact reference
    through ``torch.linalg.solve``;
(b) data hyper-cleaning: a linear classifier on a noisy-label synthetic set, one upper weight
    ``sigmoid(x_i)`` per training sample, float32, reference = float64 CG (relative residual
    1e-12) at the float64 Newton-converged lower solution;
(c) a small CNN (2 conv layers, 8 channels, 16x16 inputs) whose per-tensor log weight decays are
    the upper variables, float32, reference = float64 CG at the float64 L-BFGS-converged lower
    solution (no closed form).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as tf
from torch import Tensor, nn
from torch.func import functional_call

Batch = dict[str, Tensor]


@dataclass
class Setting:
    """One method at one budget. ``T``: lower trajectory length (unrolled methods differentiate
    through it; cg/neumann on (c) take T plain lower steps first); ``K``: solver iterations
    (cg, neumann) or kept steps (trad); ``opts``: the options passed to ours."""

    method: str
    T: int = 0
    K: int = 0
    opts: dict = field(default_factory=dict)


@dataclass
class Spec:
    key: str
    title: str
    dtype: torch.dtype
    device: torch.device
    make_module: Callable[[], nn.Module]  # fresh lower module (structure only)
    y0: dict[str, Tensor]  # lower start point (named parameters)
    x0: dict[str, Tensor]  # upper variables
    lower_batch: Batch
    upper_batch: Batch
    lower_loss: Callable
    upper_loss: Callable
    lr: float  # lower step size of every trajectory (1/L of the lower Hessian at y0)
    reference: dict[str, Tensor]  # float64 reference hypergradient (cpu)
    ref_kind: str
    settings: list[Setting] = field(default_factory=list)
    info: str = ""

    def lower_module(self) -> nn.Module:
        """A fresh lower module holding ``y0``."""
        m = self.make_module().to(self.device, self.dtype)
        with torch.no_grad():
            for n, p in m.named_parameters():
                p.copy_(self.y0[n])
        return m


class Ridge(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(d))

    def forward(self, x: Tensor) -> Tensor:  # (n, d) -> (n,)
        return x @ self.w


def ridge_lower(predict, weights, hp, batch):
    r = predict(batch["x"]) - batch["y"]
    return 0.5 * (r * r).mean() + 0.5 * (hp["lam"].exp() * weights[0] ** 2).sum()


def ridge_upper(predict, weights, hp, batch):
    r = predict(batch["x"]) - batch["y"]
    return 0.5 * (r * r).mean()


CLEAN_L2 = 1e-2


def clean_lower(predict, weights, hp, batch):
    """A minibatch (``minibatches``) carries ``idx``, its rows' sample numbers, to pick their weights."""
    ce = tf.cross_entropy(predict(batch["x"]), batch["y"], reduction="none")
    reg = sum((w * w).sum() for w in weights)
    x = hp["x"] if "idx" not in batch else hp["x"][batch["idx"]]
    return (torch.sigmoid(x) * ce).mean() + 0.5 * CLEAN_L2 * reg


def ce_upper(predict, weights, hp, batch):
    return tf.cross_entropy(predict(batch["x"]), batch["y"])


def cnn_lower(predict, weights, hp, batch):
    wd = hp["log_wd"].exp()
    reg = sum(wd[i] * (w * w).sum() for i, w in enumerate(weights))
    return tf.cross_entropy(predict(batch["x"]), batch["y"]) + 0.5 * reg


def make_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.Tanh(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Linear(8 * 4 * 4, 10),
    )


def minibatches(batch: Batch, k: int, seed: int = 0) -> list[Batch]:
    """A fixed partition of ``batch`` (rows of every tensor) into ``k`` minibatches of equal size
    (the remainder rows dropped), rows shuffled once by ``seed``. Each minibatch also holds ``idx``
    (its rows' numbers in ``batch``, for per-sample upper variables) and ``index`` (its number
    0..k-1, the minibatch id ``saba``'s memory is keyed by). ``k = 1``: the whole batch as is."""
    if k <= 1:
        return [dict(batch)]
    n = len(next(iter(batch.values())))
    if n < k:
        raise ValueError(f"cannot split {n} rows into {k} minibatches")
    dev = next(iter(batch.values())).device
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(dev)
    size = n // k
    out = []
    for i in range(k):
        idx = perm[i * size:(i + 1) * size]
        out.append({**{key: t[idx] for key, t in batch.items()}, "idx": idx, "index": i})
    return out


# ----------------------------------------------------------------------------- float64 helpers
def _fn(spec_loss, module, names, hp, batch):
    def f(flat: Tensor) -> Tensor:
        params, i = {}, 0
        for n, p in module.named_parameters():
            params[n] = flat[i:i + p.numel()].view_as(p)
            i += p.numel()
        ws = [params[n] for n in names]
        return spec_loss(lambda z: functional_call(module, params, (z,)), ws, hp, batch)
    return f


def _flat(d: dict[str, Tensor], names) -> Tensor:
    return torch.cat([d[n].reshape(-1) for n in names])


def _unflat(flat: Tensor, like: dict[str, Tensor]) -> dict[str, Tensor]:
    out, i = {}, 0
    for n, p in like.items():
        out[n] = flat[i:i + p.numel()].view_as(p).clone()
        i += p.numel()
    return out


def implicit_reference(module, y: dict, x: dict, f_loss, F_loss, lb, ub, rtol=1e-12):
    """float64 ``d_x F - H_xy H_yy^{-1} d_y F`` at ``y`` with CG to relative residual ``rtol``."""
    names = list(y)
    xs = {k: v.detach().clone().requires_grad_() for k, v in x.items()}
    yf = _flat(y, names).detach().clone().requires_grad_()
    f = _fn(f_loss, module, names, xs, lb)(yf)
    F = _fn(F_loss, module, names, xs, ub)(yf)
    gy = torch.autograd.grad(f, yf, create_graph=True)[0]
    Fy, *Fx = torch.autograd.grad(F, [yf, *xs.values()], allow_unused=True)
    hvp = lambda v: torch.autograd.grad(gy, yf, v, retain_graph=True)[0]  # noqa: E731
    v, r = torch.zeros_like(Fy), Fy.clone()
    p, rr, bn, it = r.clone(), r @ r, Fy.norm(), 0
    while rr.sqrt() > rtol * bn and it < 20000:
        Ap = hvp(p)
        a = rr / (p @ Ap)
        v, r = v + a * p, r - a * Ap
        rr, rr_old = r @ r, rr
        p, it = r + (rr / rr_old) * p, it + 1
    cross = torch.autograd.grad(gy, list(xs.values()), v)
    g = {k: (fx if fx is not None else 0) - c for (k, fx, c) in zip(xs, Fx, cross)}
    return {k: t.detach() for k, t in g.items()}, it, float(gy.detach().norm())


def _lbfgs(f, y: Tensor, iters=3000) -> Tensor:
    y = y.clone().requires_grad_()
    opt = torch.optim.LBFGS([y], lr=1, max_iter=iters, tolerance_grad=1e-11,
                            tolerance_change=0, history_size=50, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = f(y)
        loss.backward()
        return loss
    opt.step(closure)
    return y.detach()


def _top_eig(hvp, n, dtype, iters=100) -> float:
    v = torch.randn(n, dtype=dtype, generator=torch.Generator().manual_seed(1))
    lam = 0.0
    for _ in range(iters):
        w = hvp(v / v.norm())
        lam, v = float(w.norm()), w
    return lam


def _hvp_at(f, y):
    return lambda v: torch.func.jvp(torch.func.grad(f), (y,), (v,))[1]


# ----------------------------------------------------------------------------- the problems
def _finish(key, title, dtype, device, make, y64, x64, lb, ub, f_loss, F_loss, ref, kind, info):
    def cast(d):
        return {k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in d.items()}
    module = make().double()
    names = list(y64)
    lr = 1.0 / _top_eig(_hvp_at(_fn(f_loss, module, names, x64, lb), _flat(y64, names)),
                        sum(v.numel() for v in y64.values()), torch.float64)
    return Spec(key, title, dtype, device, make, cast(y64), cast(x64), cast(lb), cast(ub),
                f_loss, F_loss, lr, ref, kind, info=info)


def ridge(device, n=400, m=400, d=10, seed=0) -> Spec:
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    X, Xv = (torch.randn(k, d, generator=g, dtype=torch.float64) for k in (n, m))
    y = X @ w_true + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)
    yv = Xv @ w_true + 0.5 * torch.randn(m, generator=g, dtype=torch.float64)
    lam = (math.log(0.1) + 0.5 * torch.randn(d, generator=g, dtype=torch.float64)).requires_grad_()

    def solve(lam):
        return torch.linalg.solve(X.T @ X / n + torch.diag(lam.exp()), X.T @ y / n)
    w = solve(lam)
    exact = torch.autograd.grad(0.5 * ((Xv @ w - yv) ** 2).mean(), lam)[0]
    lb, ub = {"x": X, "y": y}, {"x": Xv, "y": yv}
    return _finish("a_ridge", "(a) ridge, exp(lambda) weight decay", torch.float64, device,
                   lambda: Ridge(d), {"w": w.detach()}, {"lam": lam.detach()}, lb, ub,
                   ridge_lower, ridge_upper, {"lam": exact}, "exact (linalg.solve, float64)",
                   f"n={n} m={m} d={d}")


def cleaning(device, n=2000, m=500, d=50, c=10, noise=0.4, seed=0) -> Spec:
    g = torch.Generator().manual_seed(seed)
    centers = 0.5 * torch.randn(c, d, generator=g, dtype=torch.float64)

    def sample(k):
        lab = torch.randint(0, c, (k,), generator=g)
        return centers[lab] + torch.randn(k, d, generator=g, dtype=torch.float64), lab
    X, lab = sample(n)
    Xv, labv = sample(m)
    flip = torch.rand(n, generator=g) < noise
    lab = torch.where(flip, torch.randint(0, c, (n,), generator=g), lab)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    lb, ub = {"x": X, "y": lab}, {"x": Xv, "y": labv}
    module = nn.Linear(d, c).double()
    names = [n_ for n_, _ in module.named_parameters()]
    hp = {"x": x}
    yflat = _lbfgs(_fn(clean_lower, module, names, hp, lb), torch.zeros(c * d + c, dtype=torch.float64))
    y64 = _unflat(yflat, dict(module.named_parameters()))
    ref, it, gn = implicit_reference(module, y64, hp, clean_lower, ce_upper, lb, ub)
    return _finish("b_clean", "(b) data hyper-cleaning", torch.float32, device,
                   lambda: nn.Linear(d, c), y64, hp, lb, ub, clean_lower, ce_upper, ref,
                   f"CG float64 ({it} it, rel. res. 1e-12) at L-BFGS lower (|grad|={gn:.0e})",
                   f"n={n} (upper vars) m={m} d={d} classes={c} lower vars={c * d + c}")


def cnn(device, n=64, m=64, wd=1e-2, seed=0) -> Spec:
    g = torch.Generator().manual_seed(seed)
    templates = torch.randn(10, 3, 4, 4, generator=g, dtype=torch.float64)
    templates = tf.interpolate(templates, size=(16, 16), mode="bilinear", align_corners=False)

    def sample(k):
        lab = torch.randint(0, 10, (k,), generator=g)
        return templates[lab] + 0.8 * torch.randn(k, 3, 16, 16, generator=g, dtype=torch.float64), lab
    X, lab = sample(n)
    Xv, labv = sample(m)
    torch.manual_seed(seed)
    module = make_cnn().double()
    names = [n_ for n_, _ in module.named_parameters()]
    hp = {"log_wd": torch.full((len(names),), math.log(wd), dtype=torch.float64)}
    lb, ub = {"x": X, "y": lab}, {"x": Xv, "y": labv}
    f = _fn(cnn_lower, module, names, hp, lb)
    yflat = _lbfgs(f, _flat(dict(module.named_parameters()), names).detach())
    y64 = _unflat(yflat, dict(module.named_parameters()))
    ref, it, gn = implicit_reference(module, y64, hp, cnn_lower, ce_upper, lb, ub)
    nparam = sum(v.numel() for v in y64.values())
    return _finish("c_cnn", "(c) small CNN, per-tensor log weight decay", torch.float32, device,
                   make_cnn, y64, hp, lb, ub, cnn_lower, ce_upper, ref,
                   f"CG float64 ({it} it, rel. res. 1e-12) at L-BFGS lower (|grad|={gn:.0e})",
                   f"batch={n}/{m} 3x16x16, conv 8ch x2, lower vars={nparam}, upper vars={len(names)}")
