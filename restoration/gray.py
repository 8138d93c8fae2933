"""Gray pictures stay gray through networks trained on colour photographs.

A grayscale file is read as three equal channels (``datasets.io.read_image``), but a restoration
network learns channel-dependent filters from colour training data (e.g. the IEM and NRM 3x3
convolutions of RUAS mix R, G and B with different weights and biases), so three equal channels come
out unequal: a colour cast on a picture that has no colour (measured on the cameraman photograph with
a low-light model trained on the embedded colour data: mean R 128, G 118, B 108 of 255). ``keep_gray``
gives such items their output's luma (BT.601, ``kornia.color.rgb_to_grayscale``) in all three channels;
colour items are returned unchanged.
"""
from __future__ import annotations

import torch
from kornia.color import rgb_to_grayscale

__all__ = ["is_gray", "keep_gray"]


def is_gray(x: torch.Tensor) -> torch.Tensor:
    """``[N, 3, H, W]`` -> bool ``[N]``: whether the three channels of each item are equal."""
    return (x[:, 0] == x[:, 1]).flatten(1).all(1) & (x[:, 1] == x[:, 2]).flatten(1).all(1)


def keep_gray(inputs: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
    """``outputs`` ``[N, 3, H, W]`` with the items whose ``inputs`` are gray replaced by their luma."""
    gray = is_gray(inputs)
    if not bool(gray.any()):
        return outputs
    luma = rgb_to_grayscale(outputs).expand_as(outputs)
    return torch.where(gray.view(-1, 1, 1, 1), luma, outputs)
