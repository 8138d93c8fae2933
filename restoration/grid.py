"""Labelled comparison grids that a person can read: one row per item, one column per picture
(e.g. ``input | output | reference``), a header naming the columns, small images enlarged.

``labelled_grid(rows, labels)`` takes tiles ``[1 or 3, h, w]`` in ``[0, 1]`` (gray tiles are shown as
gray RGB) and returns ``[3, H, W]`` in ``[0, 1]`` for ``datasets.io.write_image``:

* tiles smaller than ``min_side`` pixels (their largest side) are enlarged by an integer factor with
  nearest-neighbour sampling, so that every pixel stays a visible block and nothing is invented;
* tiles of other sizes in the same grid are padded (white) to the largest one, top-left aligned;
* the header is a white strip with each label centred over its column, its font shrunk to fit.
"""
from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["labelled_grid"]

#: Gap between tiles, and the height of the header strip, in pixels.
GAP = 4
HEADER = 22


def _rgb(tile: torch.Tensor) -> torch.Tensor:
    t = tile.detach().float().cpu().clamp(0.0, 1.0)
    if t.ndim == 2:
        t = t[None]
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    if t.ndim != 3 or t.shape[0] != 3:
        raise ValueError(f"tiles must be [1, h, w] or [3, h, w], got {tuple(tile.shape)}")
    return t


def _header(width: int, centres: Sequence[int], column: int, labels: Sequence[str]) -> torch.Tensor:
    strip = np.full((HEADER, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    for text, centre in zip(labels, centres):
        scale = 0.5
        (w, _), _ = cv2.getTextSize(text, font, scale, 1)
        if w > column - 4:
            scale = max(0.25, scale * (column - 4) / w)
            (w, _), _ = cv2.getTextSize(text, font, scale, 1)
        cv2.putText(strip, text, (max(0, centre - w // 2), HEADER - 7), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return torch.from_numpy(strip).permute(2, 0, 1).float() / 255.0


def labelled_grid(rows: Sequence[Sequence[torch.Tensor]], labels: Sequence[str], min_side: int = 192) -> torch.Tensor:
    """``rows`` of tiles (one list per item, ``len(labels)`` tiles each) under a header of ``labels``.

    Returns ``[3, H, W]`` in ``[0, 1]``; see the module docstring for enlargement and padding.
    """
    if not rows:
        raise ValueError("no rows to draw")
    if any(len(r) != len(labels) for r in rows):
        raise ValueError(f"every row needs {len(labels)} tiles ({', '.join(labels)})")
    tiles = [[_rgb(t) for t in r] for r in rows]
    h = max(t.shape[1] for r in tiles for t in r)
    w = max(t.shape[2] for r in tiles for t in r)
    k = max(1, math.ceil(min_side / max(h, w)))
    H, W = h * k, w * k
    cols = len(labels)
    width = cols * W + (cols - 1) * GAP
    body = []
    for r in tiles:
        row = []
        for j, t in enumerate(r):
            if k > 1:
                t = F.interpolate(t[None], scale_factor=k, mode="nearest")[0]
            row.append(F.pad(t, (0, W - t.shape[2], 0, H - t.shape[1]), value=1.0))
            if j < cols - 1:
                row.append(torch.ones(3, H, GAP))
        body += [torch.cat(row, dim=2), torch.ones(3, GAP, width)]
    centres = [j * (W + GAP) + W // 2 for j in range(cols)]
    return torch.cat([_header(width, centres, W, labels)] + body[:-1], dim=1)
