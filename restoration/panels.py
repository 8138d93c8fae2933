"""Labelled comparison panels of ``evaluate.py --save-images``: one row per item, one column per
picture (input(s) | output | reference), each picture titled with what it is and its metric(s).

``panel(rows)`` draws rows of ``Tile``s with matplotlib (Agg canvas, no pyplot global state) and
returns ``[3, H, W]`` in ``[0, 1]`` for ``datasets.io.write_image``. A tile is an image
``[1 or 3, h, w]`` in ``[0, 1]`` (gray shown with a gray map over ``[0, 1]``), or a ``draw`` function
that fills the axes itself and may return a mappable that gets a colour bar beside the tile.
Small images are enlarged (nearest-neighbour, every pixel a visible block) so that the longer side
shows at about ``MIN_SIDE`` pixels; large ones are shown at up to ``MAX_SIDE``.

``item_panel(item, columns, score)`` is the panel of one restored item: its ``columns`` side by side,
each but the reference titled with its score against the reference (the output's taken from
``item["metrics"]`` when there, so that the panel shows what ``per_image.csv`` holds).
``metric_text(values)`` formats metrics for a title (``"PSNR 21.34 dB  SSIM 0.812"``).
``PANELS`` is the sub-folder of ``images/`` that holds the panels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

__all__ = ["MAX_SIDE", "MIN_SIDE", "PANELS", "Tile", "item_panel", "metric_text", "panel"]

#: Sub-folder of ``images/`` holding the labelled panels (``images/`` itself holds the outputs).
PANELS = "panels"

#: Displayed length, in pixels, of a tile's longer side: at least MIN_SIDE, at most MAX_SIDE.
MIN_SIDE = 256
MAX_SIDE = 640

DPI = 100

#: How each known metric is written in a title; other keys: ``NAME value`` to 3 significant digits.
FORMATS: dict[str, str] = {
    "psnr": "PSNR {:.2f} dB", "ssim": "SSIM {:.3f}", "dice": "Dice {:.3f}", "folding_pct": "folding {:.2f} %",
    "jacobian_std": "std {:.3f}", "en": "EN {:.2f}", "sd": "SD {:.1f}", "sf": "SF {:.1f}", "ag": "AG {:.2f}",
    "mi": "MI {:.2f}", "vif": "VIF {:.3f}", "qabf": "Qabf {:.3f}", "scd": "SCD {:.3f}", "cc": "CC {:.3f}",
    "mse": "MSE {:.4f}",
}


def metric_text(values: Mapping[str, float], per_line: int = 3) -> str:
    """``values`` (metric name -> value) as title text, ``per_line`` metrics a line."""
    parts = [FORMATS.get(k, k.upper() + " {:.3g}").format(float(v)) for k, v in values.items()]
    return "\n".join("  ".join(parts[i:i + per_line]) for i in range(0, len(parts), per_line))


@dataclass(frozen=True)
class Tile:
    """One picture of a panel: ``image`` ``[1 or 3, h, w]`` in [0, 1], or ``draw(ax)`` filling axes of
    ``size`` (h, w) pixels (returning a mappable for a colour bar labelled ``colorbar``, or None);
    ``extend``: the colour bar's triangle for values beyond its range (``"min"``, ``"max"``, ...)."""

    title: str
    image: torch.Tensor | None = None
    draw: Callable[[Any], Any] | None = None
    size: tuple[int, int] | None = None
    colorbar: str = ""
    extend: str = "neither"

    def shape(self) -> tuple[int, int]:
        if self.image is not None:
            return int(self.image.shape[-2]), int(self.image.shape[-1])
        if self.size is None:
            raise ValueError(f"tile {self.title!r}: a drawn tile needs its size")
        return self.size


def _show(ax: Any, image: torch.Tensor, enlarged: bool) -> None:
    x = image.detach().float().cpu().clamp(0.0, 1.0)
    if x.ndim == 3 and x.shape[0] == 3:
        ax.imshow(x.permute(1, 2, 0).numpy(), interpolation="nearest" if enlarged else "antialiased")
    else:
        ax.imshow(x.reshape(x.shape[-2:]).numpy(), cmap="gray", vmin=0.0, vmax=1.0,
                  interpolation="nearest" if enlarged else "antialiased")


def panel(rows: Sequence[Sequence[Tile]], title: str = "") -> torch.Tensor:
    """Rows of tiles (any count a row) drawn as one figure under ``title``; ``[3, H, W]`` in [0, 1]."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not rows or not all(rows):
        raise ValueError("a panel needs at least one tile in every row")
    cols = max(len(r) for r in rows)
    h = max(t.shape()[0] for r in rows for t in r)
    w = max(t.shape()[1] for r in rows for t in r)
    side = min(max(max(h, w), MIN_SIDE), MAX_SIDE)
    scale = side / max(h, w)
    lines = max(t.title.count("\n") + 1 for r in rows for t in r)
    bar = any(t.colorbar for r in rows for t in r)
    tile_w, tile_h = w * scale / DPI + 0.2, h * scale / DPI + 0.2 + 0.2 * lines
    fig = Figure(figsize=(cols * tile_w + (0.9 if bar else 0.0), len(rows) * tile_h + (0.35 if title else 0.0)),
                 dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    if title:
        fig.suptitle(title, fontsize=11)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            ax = fig.add_subplot(len(rows), cols, i * cols + j + 1)
            mappable = _show(ax, tile.image, scale > 1.0) if tile.image is not None \
                else tile.draw(ax)  # type: ignore[misc]
            ax.set_title(tile.title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if mappable is not None and tile.colorbar:
                cb = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.02, extend=tile.extend)
                cb.set_label(tile.colorbar, fontsize=8)
                cb.ax.tick_params(labelsize=7)
    canvas = fig.canvas
    canvas.draw()
    rgb = np.asarray(canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]
    return torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0


def item_panel(item: Mapping[str, Any], columns: Sequence[tuple[str, str]],
               score: Callable[[torch.Tensor, torch.Tensor], Mapping[str, float]] | None = None,
               reference: str = "target", output: str = "output") -> torch.Tensor:
    """One row titled ``item["name"]``: per ``(key, label)`` of ``columns`` found in ``item`` (images
    ``[C, h, w]``), a tile titled ``label`` and, when ``item`` has the ``reference`` and ``score`` is
    given, ``score(image, reference)`` (the ``output``'s from ``item["metrics"]`` when present)."""
    tiles = []
    for key, label in columns:
        if key not in item:
            continue
        title = label
        if key != reference and reference in item and score is not None:
            values = item["metrics"] if key == output and "metrics" in item else score(item[key], item[reference])
            title += "\n" + metric_text(values)
        tiles.append(Tile(title, item[key]))
    return panel([tiles], str(item.get("name", "")))
