"""Pictures of a registered pair: ``fixed | moving | warped | deformation grid | det J`` with titles
carrying the metrics (``restoration.panels``); 3D pairs show their middle slice along axis 0 (in-plane
field components 1 and 2).

* deformation grid: lines every ``grid_step`` pixels of the fixed image's grid, drawn (anti-aliased
  matplotlib lines, every pixel a vertex) at the positions ``p + u(p)`` the field samples the moving
  image from (``warped(p) = moving(p + u(p))``), over the moving image shown faintly;
* det J: ``det(I + grad u)`` in a diverging map (``coolwarm``) centred at 1 (white: area kept; blue
  below 1: shrinking, red above: growing) over ``1 -/+ s``, ``s`` the largest ``|det J - 1|`` of the
  unfolded pixels (at least ``MIN_SPAN``; the lower end never below 0), with a colour bar; folding
  (det J <= 0) in black, the colour bar's lower triangle.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from restoration.panels import Tile, metric_text, panel

__all__ = ["FOLD_COLOUR", "grid_lines", "grid_step", "mid_slice", "pair_panel", "pair_tiles"]

FOLD_COLOUR = "black"

#: About this many grid lines along the longer side, never closer than MIN_STEP pixels.
GRID_LINES = 16
MIN_STEP = 4

#: Smallest half-range of the det J colour map around 1 (a near-identity field stays pale).
MIN_SPAN = 0.05


def grid_step(h: int, w: int) -> int:
    """Pixels between grid lines: about ``GRID_LINES`` along the longer side, at least ``MIN_STEP``."""
    return max(MIN_STEP, math.ceil(max(h, w) / GRID_LINES))


def mid_slice(t: torch.Tensor, dims: int) -> torch.Tensor:
    """``[C, *S]`` -> ``[C, H, W]``: 2D as is, 3D the middle slice along spatial axis 0."""
    return t[:, t.shape[1] // 2] if dims == 3 else t


def _plane(result: Mapping) -> tuple[torch.Tensor, torch.Tensor]:
    """In-plane ``(flow [2, H, W], det J [H, W])`` of a 2D result or a 3D middle slice."""
    flow, det = result["flow"].float(), result["jacobian"].float()
    if flow.shape[0] == 3:
        k = flow.shape[1] // 2
        return flow[1:, k], det[k]
    return flow, det


def grid_lines(flow: torch.Tensor, step: int) -> list[np.ndarray]:
    """Polylines ``[n, 2]`` (x, y in pixels) of the lines every ``step`` pixels (rows, then columns) of an
    ``H x W`` grid moved to ``p + u(p)``; ``flow`` ``[2, H, W]``, channel 0 along rows (y), 1 along x."""
    u = flow.detach().cpu().double().numpy()
    h, w = u.shape[1:]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    y, x = ys + u[0], xs + u[1]
    rows = range(((h - 1) % step) // 2, h, step)
    cols = range(((w - 1) % step) // 2, w, step)
    return [np.stack([x[i], y[i]], 1) for i in rows] + [np.stack([x[:, j], y[:, j]], 1) for j in cols]


def _grid_tile(flow: torch.Tensor, moving: torch.Tensor) -> Tile:
    from matplotlib.collections import LineCollection

    h, w = flow.shape[1:]
    step = grid_step(h, w)

    def draw(ax: Any) -> None:
        ax.imshow(moving.reshape(moving.shape[-2:]).clamp(0, 1).numpy(), cmap="gray", vmin=0.0, vmax=1.0,
                  alpha=0.35, interpolation="nearest")
        ax.add_collection(LineCollection(grid_lines(flow, step), colors="#1f4e79", linewidths=0.9, antialiaseds=True))
        ax.set_xlim(-0.5, w - 0.5)
        ax.set_ylim(h - 0.5, -0.5)
        ax.set_aspect("equal")

    shift = float(flow.norm(dim=0).max())
    return Tile(f"grid moved to p + u(p) on moving\nevery {step} px, max |u| {shift:.2f} px", draw=draw, size=(h, w))


def _jacobian_tile(det: torch.Tensor, metrics: Mapping[str, float], where: str = "") -> Tile:
    import matplotlib
    from matplotlib.colors import ListedColormap, TwoSlopeNorm

    d = det.detach().cpu().double().numpy()
    cmap = matplotlib.colormaps["coolwarm"].with_extremes(under=FOLD_COLOUR)  # 'under': the bar's triangle
    kept = d[d > 0.0]
    span = max(MIN_SPAN, float(np.abs(kept - 1.0).max()) if kept.size else 1.0)
    norm = TwoSlopeNorm(vmin=max(0.0, 1.0 - span), vcenter=1.0, vmax=1.0 + span)
    folded = np.ma.masked_where(d > 0.0, np.ones_like(d))

    def draw(ax: Any) -> Any:
        image = ax.imshow(np.clip(d, norm.vmin, None), cmap=cmap, norm=norm, interpolation="nearest")
        ax.imshow(folded, cmap=ListedColormap([FOLD_COLOUR]), vmin=0.0, vmax=1.0, interpolation="nearest")
        return image

    text = metric_text({k: metrics[k] for k in ("folding_pct", "jacobian_std") if k in metrics})
    text = f"volume: {text}" if where and text else text
    folds = int((d <= 0).sum())
    return Tile(f"det J, {folds} px folded{where}\n{text}".rstrip(), draw=draw, size=d.shape,  # type: ignore[arg-type]
                colorbar="det J (black: <= 0, folding)", extend="min")


def pair_tiles(result: Mapping) -> list[Tile]:
    """The five tiles of one ``register`` result (see the module docstring). ``result["metrics"]`` gives
    the warped Dice and the det J statistics; ``result["dice_before"]``, when present, the moving image's."""
    dims = result["flow"].shape[0]
    flow, det = _plane(result)
    fixed, moving, warped = (mid_slice(result[k].float(), dims) for k in ("fixed", "moving", "warped"))
    metrics = result.get("metrics", {})
    where = f" (slice {result['flow'].shape[1] // 2} of {result['flow'].shape[1]})" if dims == 3 else ""
    before = f"\n{metric_text({'dice': result['dice_before']})} (before)" if "dice_before" in result else ""
    after = f"\n{metric_text({'dice': metrics['dice']})}" if "dice" in metrics else ""
    return [Tile(f"fixed{where}", fixed[:1]), Tile(f"moving{before}", moving[:1]), Tile(f"warped{after}", warped[:1]),
            _grid_tile(flow, moving[:1]), _jacobian_tile(det, metrics, " in slice" if dims == 3 else "")]


def pair_panel(results: Sequence[Mapping]) -> torch.Tensor:
    """One row of ``pair_tiles`` per result, the pair's name above (several rows: in each row's first
    title): ``[3, H, W]`` in [0, 1]."""
    if len(results) == 1:
        return panel([pair_tiles(results[0])], str(results[0]["name"]))
    rows = []
    for r in results:
        first, *rest = pair_tiles(r)
        rows.append([replace(first, title=f"{r['name']}\n{first.title}"), *rest])
    return panel(rows)
