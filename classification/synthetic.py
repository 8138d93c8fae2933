"""The embedded default of the classification task: ten procedural 32x32 RGB pattern classes.

Every image is one pattern drawn with random position, scale, rotation jitter, frequency, phase
and colours, plus a smooth background gradient and Gaussian noise, quantised to 8 bits (as
CIFAR images are). The classes differ in shape or texture, never in colour alone::

    0 disk      1 square     2 ring        3 plus-shaped cross   4 triangle (pointing up)
    5 horizontal stripes     6 vertical stripes     7 diagonal stripes
    8 checkerboard           9 grid of dots

Shapes (0-4) sit on a background; textures (5-9) fill the image. Foreground and background
colours are drawn per image with a contrast of 0.35 to 0.65 in every channel, so a class cannot
be told by colour. The generator is vectorised: the default 2000 + 500 images take a few tens
of milliseconds. Same ``(count, seed, size)``, same images and labels, on every machine.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["SYNTHETIC_CLASSES", "SPLIT_SEEDS", "synthetic_shapes"]

SYNTHETIC_CLASSES: tuple[str, ...] = (
    "disk", "square", "ring", "cross", "triangle",
    "horizontal_stripes", "vertical_stripes", "diagonal_stripes", "checkerboard", "dots",
)
#: Offsets added to the data seed per split, so train and test images are drawn independently.
SPLIT_SEEDS: dict[str, int] = {"train": 0, "test": 7919}


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=g)


def _rotate(dx: Tensor, dy: Tensor, angle: Tensor) -> tuple[Tensor, Tensor]:
    """Rotate coordinate maps ``[n, H, W]`` by per-sample ``angle`` ``[n]`` (radians)."""
    c, s = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    return c * dx + s * dy, -s * dx + c * dy


def _signed_distance(cls: int, u: Tensor, v: Tensor, p: dict[str, Tensor]) -> Tensor:
    """Approximate signed distance (positive inside the foreground) ``[n, H, W]`` of class ``cls``.

    ``u, v``: ``[1, H, W]`` coordinates in ``[-1, 1]``; ``p``: per-sample parameters ``[n]``.
    """
    r = p["radius"][:, None, None]
    dx, dy = u - p["cx"][:, None, None], v - p["cy"][:, None, None]
    if cls == 0:  # disk
        return r - torch.sqrt(dx**2 + dy**2)
    if cls == 1:  # square, rotated by up to 15 degrees
        a, b = _rotate(dx, dy, p["tilt"])
        return 0.85 * r - torch.maximum(a.abs(), b.abs())
    if cls == 2:  # ring
        return 0.3 * r - (torch.sqrt(dx**2 + dy**2) - 0.8 * r).abs()
    if cls == 3:  # plus-shaped cross
        a, b = _rotate(dx, dy, p["tilt"])
        w = 0.3 * r
        bar1 = torch.minimum(w - a.abs(), r - b.abs())
        bar2 = torch.minimum(w - b.abs(), r - a.abs())
        return torch.maximum(bar1, bar2)
    if cls == 4:  # triangle pointing up (image rows grow downwards)
        a, b = _rotate(dx, dy, p["tilt"])
        h = 0.6 * r  # inradius of the equilateral triangle
        # inside when n.(a, b) <= h for the outward normals (0, 1), (+-sqrt(3)/2, -1/2)
        k = math.sqrt(3) / 2
        edges = torch.stack([b - h, k * a - 0.5 * b - h, -k * a - 0.5 * b - h])
        return -edges.amax(0)
    # textures: stripes / checkerboard / dots over the whole image
    freq = math.pi * p["freq"][:, None, None]
    phase = p["phase"][:, None, None]
    base = {5: 0.0, 6: math.pi / 2, 7: math.pi / 4, 8: 0.0, 9: 0.0}[cls]
    angle = base + p["tilt"]
    if cls == 7:  # either diagonal (a horizontal flip turns one into the other)
        angle = torch.where(p["flip"] > 0.5, angle + math.pi / 2, angle)
    a, b = _rotate(u, v, angle)
    if cls in (5, 6, 7):
        return torch.sin(freq * b + phase) / freq
    if cls == 8:
        return torch.sin(freq * a + phase) * torch.sin(freq * b + phase) / freq
    # dots on a square lattice of period 2/freq (in units of the image half-width)
    period = 2.0 / p["freq"][:, None, None]
    a = torch.remainder(a + phase / math.pi * period, period) - period / 2
    b = torch.remainder(b + phase / math.pi * period, period) - period / 2
    return 0.3 * period - torch.sqrt(a**2 + b**2)


def synthetic_shapes(count: int, seed: int = 0, size: int = 32) -> tuple[Tensor, Tensor]:
    """``count`` images of the ten pattern classes, balanced (class ``i % 10``, shuffled).

    Returns ``images`` uint8 ``[count, 3, size, size]`` and ``labels`` int64 ``[count]``.
    Deterministic in ``(count, seed, size)``.
    """
    if count < 1 or size < 8:
        raise ValueError(f"need count >= 1 and size >= 8, got count={count}, size={size}")
    g = torch.Generator().manual_seed(int(seed))
    labels = (torch.arange(count) % len(SYNTHETIC_CLASSES))[torch.randperm(count, generator=g)]
    p = {
        "cx": _uniform(count, -0.3, 0.3, g),
        "cy": _uniform(count, -0.3, 0.3, g),
        "radius": _uniform(count, 0.4, 0.65, g),
        "tilt": _uniform(count, -math.pi / 12, math.pi / 12, g),
        "freq": _uniform(count, 2.5, 4.5, g),
        "phase": _uniform(count, 0.0, 2 * math.pi, g),
        "flip": torch.rand(count, generator=g),
    }
    fg = torch.rand(count, 3, generator=g)
    bg = torch.remainder(fg + 0.5 + _uniform(3 * count, -0.15, 0.15, g).view(count, 3), 1.0)
    grad_dir = _uniform(count, 0.0, 2 * math.pi, g)
    grad_amp = _uniform(count, 0.0, 0.15, g)
    noise = 0.05 * torch.randn(count, 3, size, size, generator=g)

    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    v, u = torch.meshgrid(axis, axis, indexing="ij")
    u, v = u[None], v[None]
    sharp = size / 2.0  # about one pixel of anti-aliasing
    mask = torch.empty(count, size, size)
    for cls in range(len(SYNTHETIC_CLASSES)):
        idx = (labels == cls).nonzero().flatten()
        if len(idx):
            sd = _signed_distance(cls, u, v, {k: t[idx] for k, t in p.items()})
            mask[idx] = torch.sigmoid(sharp * sd)
    shade = grad_amp[:, None, None] * (torch.cos(grad_dir)[:, None, None] * u + torch.sin(grad_dir)[:, None, None] * v)
    mask = mask[:, None]
    images = bg[:, :, None, None] * (1 - mask) + fg[:, :, None, None] * mask + shade[:, None] + noise
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return images, labels.to(torch.int64)
