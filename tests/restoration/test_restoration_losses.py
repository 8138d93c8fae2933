"""Shared losses against explicit computations."""

from __future__ import annotations

import math

import pytest
import torch

from restoration.losses import EdgeAwareSmoothness, edge_aware_smoothness, fidelity, tv_l2


def _explicit_smoothness(t: torch.Tensor, g: torch.Tensor, window: int = 5, c: float = 0.005) -> float:
    """Slow reference: per offset, the mean over (b, ch, valid pixel) of w * |t_i - t_j|; summed."""
    B, C, H, W = t.shape
    r = window // 2
    total = 0.0
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if (dy, dx) == (0, 0):
                continue
            acc, n = 0.0, 0
            for b in range(B):
                for i in range(H):
                    for j in range(W):
                        k, m = i + dy, j + dx
                        if not (0 <= k < H and 0 <= m < W):
                            continue
                        w = math.exp(-c * float(((g[b, :, i, j] - g[b, :, k, m]) ** 2).sum()))
                        for ch in range(C):
                            acc += w * abs(float(t[b, ch, i, j] - t[b, ch, k, m]))
                            n += 1
            total += acc / n
    return total


def test_smoothness_matches_explicit_loops():
    g = torch.Generator().manual_seed(0)
    t = torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64)
    guide = 20.0 * torch.rand(2, 3, 5, 6, generator=g, dtype=torch.float64)  # weights far from 1
    got = edge_aware_smoothness(t, guide).item()
    assert got == pytest.approx(_explicit_smoothness(t, guide), rel=1e-10)
    got3 = edge_aware_smoothness(t, guide, window=3, sigma_coeff=0.1).item()
    assert got3 == pytest.approx(_explicit_smoothness(t, guide, 3, 0.1), rel=1e-10)
    assert EdgeAwareSmoothness()(t, guide).item() == pytest.approx(got, rel=1e-12)


def test_smoothness_is_batch_size_independent_and_zero_when_flat():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(2, 1, 3, 8, 8, generator=g)
    ga, gb = torch.rand(2, 1, 3, 8, 8, generator=g)
    la, lb = edge_aware_smoothness(a, ga), edge_aware_smoothness(b, gb)
    both = edge_aware_smoothness(torch.cat([a, b]), torch.cat([ga, gb]))
    assert torch.allclose(both, (la + lb) / 2)
    assert torch.allclose(edge_aware_smoothness(torch.cat([a, a]), torch.cat([ga, ga])), la)
    assert edge_aware_smoothness(torch.full_like(a, 0.3), ga).item() == 0.0


def test_smoothness_gradient_only_into_t():
    t = torch.rand(1, 3, 6, 6, requires_grad=True)
    guide = torch.rand(1, 3, 6, 6, requires_grad=True)
    edge_aware_smoothness(t, guide).backward()
    assert t.grad is not None and guide.grad is None


def test_tv_l2_and_fidelity():
    x = torch.rand(3, 2, 5, 7, dtype=torch.float64)
    # RUAS's TVLoss: per-image sums normalised by C*(H-1)*W and C*H*(W-1), divided by the batch.
    h = ((x[:, :, 1:] - x[:, :, :-1]) ** 2).sum() / (2 * 4 * 7)
    w = ((x[..., 1:] - x[..., :-1]) ** 2).sum() / (2 * 5 * 6)
    assert tv_l2(x).item() == pytest.approx((2 * (h + w) / 3).item(), rel=1e-12)
    y = torch.rand_like(x)
    assert fidelity(x, y).item() == pytest.approx(0.5 * ((x - y) ** 2).mean().item(), rel=1e-12)
