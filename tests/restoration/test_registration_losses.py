"""Registration losses and metrics against numpy loops, closed forms and autograd."""

import itertools
import math

import numpy as np
import pytest
import torch

from restoration.registration.jacobian import jacobian_determinant
from restoration.registration.losses import (initial_log_weights, jacobian_penalty, local_ncc, lower_loss,
                                             mse, one_hot, readable_weights, smoothness, soft_dice, upper_loss)
from restoration.registration.metrics import (METRIC_DIRECTIONS, dice_per_label, folding_pct, jacobian_std,
                                              mean_dice, registration_metrics)
from restoration.registration.warp import identity_grid


def _ncc_loop(f: np.ndarray, w: np.ndarray, win: int) -> float:
    """Local NCC of single-channel arrays [*S] by explicit windows (zero padding)."""
    r = win // 2
    fp, wp = np.pad(f, r), np.pad(w, r)
    n = win ** f.ndim
    vals = []
    for p in itertools.product(*[range(s) for s in f.shape]):
        sl = tuple(slice(q, q + win) for q in p)
        a, b = fp[sl], wp[sl]
        cross = (a * b).sum() - a.sum() * b.sum() / n
        va = (a * a).sum() - a.sum() ** 2 / n
        vb = (b * b).sum() - b.sum() ** 2 / n
        vals.append(cross ** 2 / (va * vb + 1e-5))
    return float(np.mean(vals))


@pytest.mark.parametrize("shape,win", [((11, 12), 9), ((10, 9), 3), ((6, 7, 5), 3)])
def test_local_ncc_matches_window_loop(shape, win):
    g = torch.Generator().manual_seed(0)
    f = torch.rand((2, 1) + shape, generator=g, dtype=torch.float64)
    w = 0.5 * f + 0.5 * torch.rand((2, 1) + shape, generator=g, dtype=torch.float64)
    got = local_ncc(f, w, win)
    for n in range(2):
        assert got[n].item() == pytest.approx(_ncc_loop(f[n, 0].numpy(), w[n, 0].numpy(), win), rel=1e-9)


def test_local_ncc_is_near_one_for_affine_intensity_change():
    g = torch.Generator().manual_seed(1)
    f = torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64)
    assert local_ncc(f, 3 * f + 0.2, 9).item() > 0.99
    assert local_ncc(f, torch.rand(1, 1, 16, 16, generator=g, dtype=torch.float64), 9).item() < 0.3


def test_mse_and_smoothness_match_numpy():
    g = torch.Generator().manual_seed(2)
    a, b = torch.rand(2, 1, 5, 6, 7, generator=g), torch.rand(2, 1, 5, 6, 7, generator=g)
    np.testing.assert_allclose(mse(a, b).numpy(), ((a - b).numpy() ** 2).reshape(2, -1).mean(1), rtol=1e-6)
    u = torch.randn(2, 3, 5, 6, 7, generator=g, dtype=torch.float64)
    ref = sum((np.diff(u.numpy(), axis=ax) ** 2).reshape(2, -1).mean(1) for ax in (2, 3, 4)) / 3
    np.testing.assert_allclose(smoothness(u).numpy(), ref, rtol=1e-12)


@pytest.mark.parametrize("dims", [2, 3])
def test_smoothness_of_linear_field_is_closed_form(dims):
    size = (7,) * dims
    G = torch.randn(dims, dims, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    u = torch.einsum("ij,j...->i...", G, identity_grid(size, dtype=torch.float64)).unsqueeze(0)
    # d_axis u_i = G[i, axis] everywhere; mean over the dims channels, averaged over axes
    assert smoothness(u).item() == pytest.approx((G ** 2).sum().item() / dims ** 2, rel=1e-12)


def _affine(A: np.ndarray, size: tuple[int, ...]) -> torch.Tensor:
    d = len(size)
    x = identity_grid(size, dtype=torch.float64)
    M = torch.from_numpy(A) - torch.eye(d, dtype=torch.float64)
    return (torch.einsum("ij,j...->i...", M, x) + 0.3).unsqueeze(0)


@pytest.mark.parametrize("A", [np.array([[1.2, 0.3], [-0.1, 0.9]]), np.array([[0.5, 0.0], [0.0, -1.0]]),
                               np.array([[1.1, 0.2, 0.0], [0.0, 0.8, 0.1], [0.3, 0.0, 1.3]]),
                               np.array([[-0.7, 0.0, 0.0], [0.0, 1.0, 0.2], [0.0, 0.0, 1.0]])])
def test_jacobian_metrics_of_affine_fields(A):
    size = (6,) * len(A)
    u = _affine(A, size)
    det = np.linalg.det(A)
    torch.testing.assert_close(jacobian_determinant(u), torch.full((1,) + size, det, dtype=torch.float64))
    assert folding_pct(u).item() == (100.0 if det <= 0 else 0.0)
    assert jacobian_std(u).item() == pytest.approx(0.0, abs=1e-12)
    assert jacobian_penalty(u).item() == pytest.approx(max(-det, 0.0), abs=1e-12)


def test_jacobian_determinant_matches_finite_difference_loop():
    g = torch.Generator().manual_seed(4)
    u = 1.5 * torch.randn(1, 3, 5, 6, 4, generator=g, dtype=torch.float64)
    got = jacobian_determinant(u)[0].numpy()
    un = u[0].numpy()
    ref = np.zeros(got.shape)
    for p in itertools.product(*[range(s) for s in got.shape]):
        J = np.eye(3)
        for j in range(3):
            lo, hi = list(p), list(p)
            lo[j], hi[j] = max(p[j] - 1, 0), min(p[j] + 1, got.shape[j] - 1)
            J[:, j] += (un[(slice(None), *hi)] - un[(slice(None), *lo)]) / (hi[j] - lo[j])
        ref[p] = np.linalg.det(J)
    np.testing.assert_allclose(got, ref, atol=1e-10)
    assert folding_pct(u).item() == pytest.approx(100 * (ref <= 0).mean())
    assert jacobian_std(u).item() == pytest.approx(ref.std())


def test_soft_dice_matches_numpy_and_skips_absent_labels():
    g = torch.Generator().manual_seed(5)
    p = torch.rand(2, 3, 6, 7, generator=g, dtype=torch.float64)
    t = (torch.rand(2, 3, 6, 7, generator=g) > 0.5).double()
    p[0, 2], t[0, 2] = 0, 0  # label 2 absent from both maps of item 0
    got = soft_dice(p, t)
    for n, labs in ((0, [0, 1]), (1, [0, 1, 2])):
        vals = [2 * (p[n, l] * t[n, l]).sum() / (p[n, l].sum() + t[n, l].sum()) for l in labs]
        assert got[n].item() == pytest.approx(float(np.mean(vals)), rel=1e-12)


def test_hard_dice_matches_numpy_loop():
    g = torch.Generator().manual_seed(6)
    a = torch.randint(0, 4, (2, 1, 7, 8), generator=g)
    b = torch.randint(0, 4, (2, 1, 7, 8), generator=g)
    a[0][a[0] == 3], b[0][b[0] == 3] = 1, 2  # label 3 absent from item 0
    per = dice_per_label(a, b, [1, 2, 3])
    for n in range(2):
        vals = []
        for j, lab in enumerate([1, 2, 3]):
            x, y = a[n].numpy() == lab, b[n].numpy() == lab
            if x.sum() + y.sum() == 0:
                assert math.isnan(per[n, j].item())
                continue
            d = 2 * (x & y).sum() / (x.sum() + y.sum())
            vals.append(d)
            assert per[n, j].item() == pytest.approx(d)
        assert mean_dice(a, b)[n].item() == pytest.approx(np.mean(vals))
    same = registration_metrics(a, a, torch.zeros(2, 2, 7, 8))
    assert same["dice"].tolist() == [1.0, 1.0] and same["folding_pct"].tolist() == [0.0, 0.0]
    assert METRIC_DIRECTIONS == {"dice": "higher", "folding_pct": "lower", "jacobian_std": "lower"}


def _out_batch(g, requires_grad=False):
    flow = (0.5 * torch.randn(2, 2, 12, 12, generator=g, dtype=torch.float64)).requires_grad_(requires_grad)
    seg = torch.randint(0, 3, (2, 1, 12, 12), generator=g)
    img = torch.rand(2, 1, 12, 12, generator=g, dtype=torch.float64)
    out = {"flow": flow, "velocity": 0.5 * flow, "warped": img}
    batch = {"fixed": torch.rand(2, 1, 12, 12, generator=g, dtype=torch.float64), "moving_seg": seg,
             "fixed_seg": seg}
    return out, batch


def test_lower_loss_is_the_weighted_sum_and_its_log_weight_gradient_is_closed_form():
    out, batch = _out_batch(torch.Generator().manual_seed(7))
    lw = {"log_smooth": torch.tensor(math.log(0.5), dtype=torch.float64, requires_grad=True),
          "log_jacobian": torch.tensor(math.log(2.0), dtype=torch.float64, requires_grad=True)}
    assert readable_weights(initial_log_weights(0.5, 2.0)) == pytest.approx({"smooth": 0.5, "jacobian": 2.0})
    loss = lower_loss(out, batch, lw, "ncc", 9)
    sim = -local_ncc(batch["fixed"], out["warped"], 9).mean()
    smooth, jac = smoothness(out["velocity"]).mean(), jacobian_penalty(out["flow"]).mean()
    assert loss.item() == pytest.approx((sim + 0.5 * smooth + 2.0 * jac).item(), rel=1e-12)
    g_s, g_j = torch.autograd.grad(loss, [lw["log_smooth"], lw["log_jacobian"]])
    assert g_s.item() == pytest.approx(0.5 * smooth.item(), rel=1e-10)
    assert g_j.item() == pytest.approx(2.0 * jac.item(), rel=1e-10)
    assert readable_weights(lw) == pytest.approx({"smooth": 0.5, "jacobian": 2.0})
    mse_loss = lower_loss(out, batch, {"log_smooth": torch.tensor(0.0, dtype=torch.float64)}, "mse")
    assert mse_loss.item() == pytest.approx((mse(batch["fixed"], out["warped"]) + smoothness(out["velocity"])).mean().item())
    with pytest.raises(ValueError, match="similarity"):
        lower_loss(out, batch, lw, "l1")


def test_upper_loss_is_zero_for_identity_on_equal_maps_and_differentiable():
    out, batch = _out_batch(torch.Generator().manual_seed(8), requires_grad=True)
    zero = {"flow": torch.zeros_like(out["flow"])}
    assert upper_loss(zero, batch, [1, 2]).item() == pytest.approx(0.0, abs=1e-12)
    loss = upper_loss(out, batch, [1, 2], folding_weight=1.0)
    moving = one_hot(batch["moving_seg"], [1, 2]).double()
    assert loss.item() > 0
    (grad,) = torch.autograd.grad(loss, out["flow"])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert moving.shape == (2, 2, 12, 12)
