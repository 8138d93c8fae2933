"""Warping and scaling-and-squaring against independent computations (kornia remap, scipy
map_coordinates, closed-form linear fields)."""

import numpy as np
import pytest
import torch
from scipy.linalg import expm
from scipy.ndimage import map_coordinates

from restoration.registration.warp import compose, identity_grid, integrate_velocity, warp


def _scipy_warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``image`` [*S] at ``p + flow(p)``, border clamped."""
    coords = np.indices(image.shape).astype(np.float64) + flow
    for i, s in enumerate(image.shape):
        coords[i] = np.clip(coords[i], 0, s - 1)
    return map_coordinates(image, coords, order=1, mode="nearest")


@pytest.mark.parametrize("shape", [(9, 12), (5, 6, 7)])
def test_warp_matches_scipy_linear_interpolation(shape):
    g = torch.Generator().manual_seed(0)
    img = torch.rand((2, 1) + shape, generator=g, dtype=torch.float64)
    flow = 3 * torch.randn((2, len(shape)) + shape, generator=g, dtype=torch.float64)
    out = warp(img, flow)
    for n in range(2):
        ref = _scipy_warp(img[n, 0].numpy(), flow[n].numpy())
        np.testing.assert_allclose(out[n, 0].numpy(), ref, atol=1e-10)


def test_warp_matches_kornia_remap_2d():
    kornia_remap = pytest.importorskip("kornia.geometry.transform").remap
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 3, 10, 13, generator=g)
    flow = 2 * torch.randn(1, 2, 10, 13, generator=g)
    grid = identity_grid((10, 13))
    ref = kornia_remap(img, grid[1] + flow[:, 1], grid[0] + flow[:, 0], mode="bilinear",
                       padding_mode="border", align_corners=True, normalized_coordinates=False)
    torch.testing.assert_close(warp(img, flow), ref, atol=1e-5, rtol=0)


def test_integer_translation_moves_content_along_the_right_axes():
    img = torch.zeros(1, 1, 6, 7, 8)
    img[0, 0, 3, 4, 5] = 1.0
    flow = torch.zeros(1, 3, 6, 7, 8)
    flow[:, 0], flow[:, 1], flow[:, 2] = 1.0, -2.0, 3.0  # out(p) = img(p + t)
    out = warp(img, flow)
    assert out[0, 0, 2, 6, 2] == 1.0 and out.sum() == 1.0


def test_scaling_and_squaring_of_constant_field_is_the_translation():
    v = torch.zeros(1, 2, 8, 8)
    v[:, 0], v[:, 1] = 0.7, -1.3
    torch.testing.assert_close(integrate_velocity(v, 7), v)
    assert torch.equal(integrate_velocity(v, 0), v)


@pytest.mark.parametrize("dims", [2, 3])
def test_scaling_and_squaring_of_linear_field_matches_matrix_exponential(dims):
    size = (24, 24) if dims == 2 else (16, 16, 16)
    g = torch.Generator().manual_seed(2)
    B = 0.06 * torch.randn(dims, dims, generator=g, dtype=torch.float64)
    c = torch.tensor([(s - 1) / 2 for s in size], dtype=torch.float64)
    x = identity_grid(size, dtype=torch.float64) - c.view(dims, *([1] * dims))
    v = torch.einsum("ij,j...->i...", B, x).unsqueeze(0)
    u = integrate_velocity(v, 7)[0]
    # exact for the discrete scheme: (I + B/128)^128 - I, and close to expm(B) - I
    step = torch.linalg.matrix_power(torch.eye(dims, dtype=torch.float64) + B / 128, 128)
    m = 5
    assert v.abs().max() > 0.5  # a real deformation, not a rounding error
    inner = (slice(None),) + (slice(m, -m),) * dims
    exact = torch.einsum("ij,j...->i...", step - torch.eye(dims, dtype=torch.float64), x)
    torch.testing.assert_close(u[inner], exact[inner], atol=1e-9, rtol=0)
    closed = torch.einsum("ij,j...->i...", torch.from_numpy(expm(B.numpy())) - torch.eye(dims, dtype=torch.float64), x)
    assert (u[inner] - closed[inner]).abs().max() < 0.005


def test_exp_v_composed_with_exp_minus_v_is_near_identity():
    g = torch.Generator().manual_seed(3)
    v = torch.nn.functional.interpolate(2 * torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64),
                                        size=(24, 24), mode="bicubic", align_corners=True)
    fwd, inv = integrate_velocity(v), integrate_velocity(-v)
    both = compose(fwd, inv)
    assert both[..., 4:-4, 4:-4].abs().max() < 0.1
    assert fwd.abs().max() > 1.0


def test_warp_is_differentiable_in_image_and_flow():
    g = torch.Generator().manual_seed(4)
    img = torch.rand(1, 1, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    flow = (0.3 + 0.2 * torch.rand(1, 2, 5, 6, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: warp(a, b), (img, flow))


def test_warp_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ"):
        warp(torch.zeros(1, 1, 4, 5), torch.zeros(1, 2, 4, 6))
