"""Any image size: pad to the network's multiple and crop back, or run overlapping tiles and blend.

``fn`` is any map from an input ``[B, ..., h, w]`` (images ``[B, C, h, w]`` or frame windows
``[B, T, C, h, w]``) to an output ``[B, C_out, h, w]`` of the same spatial size.

``run_padded``: reflect-pad the bottom/right to a multiple of ``multiple``, run, crop back.

``run_tiled``: tiles of ``tile x tile`` (a multiple of ``multiple``) at a stride of
``tile - overlap``, the last tile flush with the bottom/right border. Each tile's output is
weighted along each axis by a ramp that is ZERO for the ``halo = overlap // 4`` pixels next to
an edge shared with another tile, rises linearly over the next ``overlap - 2 halo`` pixels and
is 1 elsewhere (image borders get no ramp); neighbouring ramps sum to one, so the blend is a
partition of unity. Consequence: when the network's receptive field radius is at most ``halo``
(and it has no global operation), the tiled result EQUALS untiled inference up to float
rounding, because every pixel is taken only from tiles that saw its whole receptive field.
Networks with global pooling (ECA channel attention) or a larger receptive field give a close
but not equal result; pick ``overlap >= 4 * radius`` for the exact case.
"""

from __future__ import annotations

from typing import Callable

import torch

from datasets.transforms import pad_to_multiple

__all__ = ["run_padded", "run_tiled", "tile_starts", "ramp"]

Fn = Callable[[torch.Tensor], torch.Tensor]


def run_padded(fn: Fn, x: torch.Tensor, multiple: int = 1) -> torch.Tensor:
    """``fn`` on ``x`` reflect-padded to a multiple of ``multiple``, cropped back to ``x``'s size."""
    H, W = x.shape[-2:]
    padded, _ = pad_to_multiple(x, multiple)
    return fn(padded)[..., :H, :W]


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length``: stride ``tile - overlap``, last one flush."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def ramp(size: int, overlap: int, first: bool, last: bool, like: torch.Tensor) -> torch.Tensor:
    """Blend weights ``[size]`` of one tile along one axis (see the module docstring)."""
    halo = overlap // 4
    width = max(overlap - 2 * halo, 1)
    d = torch.arange(size, dtype=like.dtype, device=like.device)
    w = torch.ones(size, dtype=like.dtype, device=like.device)
    if not first:
        w = torch.minimum(w, ((d + 0.5 - halo) / width).clamp(0.0, 1.0))
    if not last:
        w = torch.minimum(w, ((size - 1 - d + 0.5 - halo) / width).clamp(0.0, 1.0))
    return w


def run_tiled(fn: Fn, x: torch.Tensor, tile: int, overlap: int = 32, multiple: int = 1) -> torch.Tensor:
    """Blended overlapping-tile inference of ``fn`` over ``x`` ``[B, ..., H, W]`` -> ``[B, C_out, H, W]``.

    Args:
        tile: tile side (rounded down to a multiple of ``multiple``).
        overlap: pixels shared by neighbouring tiles; ``0 <= overlap < tile``.
        multiple: the network's size multiple (the image is padded to it first).
    """
    tile = (tile // multiple) * multiple
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need 0 <= overlap < tile (a positive multiple of {multiple}); got tile {tile}, overlap {overlap}")
    H, W = x.shape[-2:]
    xp, _ = pad_to_multiple(x, multiple)
    Hp, Wp = xp.shape[-2:]
    if Hp <= tile and Wp <= tile:
        return fn(xp)[..., :H, :W]
    ys, xs = tile_starts(Hp, tile, overlap), tile_starts(Wp, tile, overlap)
    out = norm = None
    for i, y0 in enumerate(ys):
        for j, x0 in enumerate(xs):
            piece = fn(xp[..., y0 : y0 + tile, x0 : x0 + tile])
            h, w = piece.shape[-2:]
            wy = ramp(h, overlap, i == 0, i == len(ys) - 1, piece)
            wx = ramp(w, overlap, j == 0, j == len(xs) - 1, piece)
            weight = wy[:, None] * wx[None, :]
            if out is None:
                out = piece.new_zeros(*piece.shape[:-2], Hp, Wp)
                norm = piece.new_zeros(Hp, Wp)
            out[..., y0 : y0 + h, x0 : x0 + w] += piece * weight
            norm[y0 : y0 + h, x0 : x0 + w] += weight
    return (out / norm)[..., :H, :W]
