"""Dense warping in 2D and 3D: the spatial transformer and scaling-and-squaring integration.

Conventions (used by every piece of the registration application):

* A displacement field ``u`` is ``[N, dims, *spatial]`` in pixels/voxels; channel ``i`` is the
  displacement along spatial axis ``i`` of the tensor (2D ``[H, W]``: channel 0 = rows/y,
  channel 1 = columns/x; 3D ``[D, H, W]``: channels 0, 1, 2 = D, H, W).
* The deformation is ``phi(p) = p + u(p)`` and warping samples the moving image there:
  ``warped(p) = moving(p + u(p))`` (backward warping, linear interpolation, ``align_corners``
  grid: pixel centres at integer positions ``0 .. size - 1``; outside samples take the border).
* A stationary velocity field ``v`` (same layout) is integrated by scaling and squaring:
  ``u_0 = v / 2**steps``, then ``steps`` times ``u <- u + u o (id + u)``, so ``id + u`` approximates
  ``exp(v)`` (a diffeomorphism for smooth ``v``).

kornia has a 2D remap (``kornia.geometry.transform.remap``, used as the independent reference in
the tests) but no displacement-field warp in 3D, and its ``create_meshgrid3d`` orders the
coordinates ``(d, w, h)``, which does not match ``grid_sample``; the grid is built here for both.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SpatialTransformer", "VecInt", "compose", "identity_grid", "integrate_velocity", "warp"]

INT_STEPS = 7


def identity_grid(shape: tuple[int, ...] | torch.Size, device=None, dtype=None) -> torch.Tensor:
    """Pixel coordinates ``[dims, *shape]``: channel ``i`` holds the index along axis ``i``."""
    axes = [torch.arange(s, device=device, dtype=dtype or torch.float32) for s in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"))


def _check(image: torch.Tensor, flow: torch.Tensor) -> int:
    dims = flow.shape[1]
    if dims not in (2, 3) or flow.dim() != dims + 2:
        raise ValueError(f"flow must be [N, dims, *spatial] with dims 2 or 3, got {list(flow.shape)}")
    if image.dim() != dims + 2 or image.shape[2:] != flow.shape[2:]:
        raise ValueError(f"image {list(image.shape)} and flow {list(flow.shape)} differ in spatial size")
    return dims


def warp(image: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear",
         padding_mode: str = "border") -> torch.Tensor:
    """Backward-warp ``image`` ``[N, C, *S]`` by displacement ``flow`` ``[N, dims, *S]`` (pixels).

    Returns ``[N, C, *S]`` with ``out(p) = image(p + flow(p))``. ``mode`` ``"bilinear"`` (linear in
    2D and 3D) or ``"nearest"`` (label maps); float images only (cast label maps before).
    """
    dims = _check(image, flow)
    size = flow.shape[2:]
    loc = identity_grid(size, flow.device, flow.dtype).unsqueeze(0) + flow
    scale = torch.tensor([2.0 / max(s - 1, 1) for s in size], device=flow.device, dtype=flow.dtype)
    norm = loc * scale.view(1, dims, *([1] * dims)) - 1.0
    grid = norm.movedim(1, -1).flip(-1)  # grid_sample wants (x, y[, z]) = reversed axis order
    return F.grid_sample(image, grid, mode=mode, padding_mode=padding_mode, align_corners=True)


def compose(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Displacement of ``phi_second o phi_first``: ``x -> x + first(x) + second(x + first(x))``.

    Both ``[N, dims, *S]`` in pixels; returns the same shape.
    """
    return first + warp(second, first)


def integrate_velocity(velocity: torch.Tensor, steps: int = INT_STEPS) -> torch.Tensor:
    """Scaling and squaring: ``exp(velocity)`` as a displacement ``[N, dims, *S]`` (pixels).

    ``steps = 0`` returns the velocity itself (a plain displacement).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    u = velocity / (2 ** steps)
    for _ in range(steps):
        u = u + warp(u, u)
    return u


class SpatialTransformer(nn.Module):
    """``forward(image, flow) -> warp(image, flow, mode)``; shapes as ``warp``."""

    def __init__(self, mode: str = "bilinear", padding_mode: str = "border") -> None:
        super().__init__()
        self.mode, self.padding_mode = mode, padding_mode

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return warp(image, flow, self.mode, self.padding_mode)


class VecInt(nn.Module):
    """``forward(velocity) -> integrate_velocity(velocity, steps)`` (``[N, dims, *S]``)."""

    def __init__(self, steps: int = INT_STEPS) -> None:
        super().__init__()
        self.steps = steps

    def forward(self, velocity: torch.Tensor) -> torch.Tensor:
        return integrate_velocity(velocity, self.steps)
