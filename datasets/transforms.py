"""Transforms applied identically to an input/target pair, and padding to a size multiple.

All functions take ``[C, H, W]`` (or ``[..., H, W]`` for the padding helpers) tensors. Random
choices come from an optional ``torch.Generator`` so that a dataset can make them reproducible.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["as_hw", "item_generator", "item_seed", "paired_random_crop", "paired_random_flip", "pad_to_multiple",
           "unpad"]

Size = Union[int, Sequence[int]]


def as_hw(size: Size) -> tuple[int, int]:
    """``64`` -> ``(64, 64)``; ``(h, w)`` -> ``(h, w)``. Sizes must be positive."""
    if isinstance(size, int):
        hw = (size, size)
    else:
        hw = tuple(int(s) for s in size)
        if len(hw) != 2:
            raise ValueError(f"size must be an int or (height, width), got {size!r}")
    if min(hw) < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return hw  # type: ignore[return-value]


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of item ``index``'s random choices in ``epoch``: a function of the three numbers only
    (``numpy.random.SeedSequence``, no collisions of sums), so that an item is the same whichever
    worker loads it, in whatever order, and a resumed run sees the same items. Every data set of
    the suite draws its per-item augmentation from this one function."""
    return int(np.random.SeedSequence([int(seed), int(epoch), int(index)]).generate_state(1)[0])


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A ``torch.Generator`` seeded with ``item_seed(seed, epoch, index)``."""
    return torch.Generator().manual_seed(item_seed(seed, epoch, index))


def _randint(high: int, generator: Optional[torch.Generator]) -> int:
    """Uniform integer in ``[0, high)``."""
    return int(torch.randint(high, (1,), generator=generator).item())


def paired_random_crop(
    a: torch.Tensor, b: torch.Tensor, size: Size, generator: Optional[torch.Generator] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop the same random window from two aligned images.

    Args:
        a, b: ``[C_a, H, W]`` and ``[C_b, H, W]`` with equal ``H, W``.
        size: crop ``(h, w)`` or one int; must fit in ``H, W``.
        generator: source of randomness (``None``: torch's global generator).

    Returns:
        ``[C_a, h, w]``, ``[C_b, h, w]``.
    """
    if a.shape[-2:] != b.shape[-2:]:
        raise ValueError(f"pair sizes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    h, w = as_hw(size)
    H, W = a.shape[-2:]
    if h > H or w > W:
        raise ValueError(f"crop {h}x{w} is larger than the image {H}x{W}")
    top = _randint(H - h + 1, generator)
    left = _randint(W - w + 1, generator)
    return a[..., top : top + h, left : left + w], b[..., top : top + h, left : left + w]


def paired_random_flip(
    a: torch.Tensor,
    b: torch.Tensor,
    generator: Optional[torch.Generator] = None,
    vertical: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip both images left-right with probability 1/2, and (``vertical``) up-down likewise.

    ``[C, H, W]`` -> ``[C, H, W]``; the same decisions apply to ``a`` and ``b``.
    """
    if torch.rand((), generator=generator).item() < 0.5:
        a, b = a.flip(-1), b.flip(-1)
    if vertical and torch.rand((), generator=generator).item() < 0.5:
        a, b = a.flip(-2), b.flip(-2)
    return a, b


def pad_to_multiple(
    x: torch.Tensor, multiple: int, mode: str = "reflect"
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the bottom and right so that height and width are multiples of ``multiple``.

    Args:
        x: ``[..., H, W]`` (``[C, H, W]`` or ``[B, C, H, W]``).
        multiple: e.g. 8 for a network that downsamples three times; 1 returns ``x`` unchanged.
        mode: ``"reflect"`` (falls back to ``"replicate"`` when the image is too small to
            reflect), ``"replicate"`` or ``"constant"`` (zeros).

    Returns:
        ``([..., H', W'], (H, W))``: the padded tensor and the original size for ``unpad``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    H, W = x.shape[-2:]
    ph, pw = (-H) % multiple, (-W) % multiple
    if ph == 0 and pw == 0:
        return x, (H, W)
    if mode == "reflect" and (ph >= H or pw >= W):
        mode = "replicate"
    lead = x.shape[:-2]
    flat = x.reshape(-1, 1, H, W) if mode != "constant" else x
    padded = F.pad(flat, (0, pw, 0, ph), mode=mode)
    return padded.reshape(*lead, H + ph, W + pw), (H, W)


def unpad(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Undo ``pad_to_multiple``: ``[..., H', W']`` -> ``[..., H, W]`` with ``size = (H, W)``."""
    h, w = int(size[0]), int(size[1])
    return x[..., :h, :w]
