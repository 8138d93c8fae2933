"""Evaluation helpers of the fusion task: fuse a batch, score items or a folder of fused images made
elsewhere, and draw labelled ``infrared | visible | fused`` pictures: a grid of items (train samples)
and, for ``evaluate.py --save-images``, a panel per item with each image's metrics in its title (the
sources' no-reference EN, SD, SF, AG; the fused image's too, with MI, VIF, Qabf, SSIM against the
sources).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import nn
from tqdm import tqdm

from datasets.errors import DataError
from datasets.fusion import read_fusion_image
from datasets.io import is_image_file
from restoration.fusion.color import fuse_color
from restoration import grid
from restoration.panels import Tile, metric_text, panel
from restoration.fusion.metrics import METRIC_NAMES, VIF_MIN_SIZE, fusion_metrics
from restoration.fusion.metrics_conventions import DEFAULT_CONVENTION

__all__ = ["PANEL_METRICS", "item_panel", "labelled_grid", "restore", "score_item", "score_predictions"]

#: Metrics in the panels' titles: of every image (no reference), and of the fused image only.
PANEL_METRICS = (("en", "sd", "sf", "ag"), ("mi", "vif", "qabf", "ssim"))


@torch.no_grad()
def restore(network: nn.Module | Callable[[torch.Tensor, torch.Tensor], torch.Tensor], batch: dict) -> list[dict]:
    """Fuse a batch and crop every item back to its size.

    Args:
        network: gray fusion ``(ir [N,1,H,W], vi_y [N,1,H,W]) -> [N,1,H,W]``; run on its device.
        batch: collated items ``{"ir": [N,1,H,W], "vi": [N,C,H,W], "name": [N] str, "size": [N,2]}``.

    Returns:
        Per item ``{"name": str, "fused": [C,h,w], "ir": [1,h,w], "vi": [C,h,w]}`` on the CPU, where
        ``C`` is the visible channel count (RGB fusion keeps the visible colour, ``fuse_color``).
    """
    params = list(network.parameters()) if isinstance(network, nn.Module) else []
    device = params[0].device if params else batch["ir"].device
    ir, vi = batch["ir"].to(device), batch["vi"].to(device)
    fused = fuse_color(network, ir, vi).clamp(0.0, 1.0).cpu()
    out = []
    for i, name in enumerate(batch["name"]):
        h, w = (int(v) for v in batch["size"][i])
        out.append({"name": name, "fused": fused[i, :, :h, :w], "ir": batch["ir"][i, :, :h, :w].cpu(),
                    "vi": batch["vi"][i, :, :h, :w].cpu()})
    return out


def score_item(item: dict, names: Sequence[str] | None = None, textbook_ssim: bool = False,
               convention: str = DEFAULT_CONVENTION) -> dict[str, float]:
    """Fusion metrics of one ``restore`` item (``convention``: see ``metrics_conventions``): name -> value.

    ``vif`` is left out for items smaller than ``VIF_MIN_SIZE`` pixels a side (its pyramid needs them).
    """
    small = min(item["fused"].shape[-2:]) < VIF_MIN_SIZE
    names = [n for n in (METRIC_NAMES if names is None else names) if not (n == "vif" and small)]
    vals = fusion_metrics(item["fused"][None], item["ir"][None], item["vi"][None], names=names,
                          textbook_ssim=textbook_ssim, convention=convention)
    return {k: float(v[0]) for k, v in vals.items()}


def score_predictions(pred_dir: str | Path, dataset, names: Sequence[str] | None = None,
                      textbook_ssim: bool = False, convention: str = DEFAULT_CONVENTION,
                      progress: bool = True) -> list[dict]:
    """Score fused images made elsewhere, matched to ``dataset`` pairs by file name (stem; any extension),
    with a progress bar over the pairs (``progress``).

    Returns one row per pair: ``{"name": str, <metric>: float, ...}``. A pair without a fused image is a
    one-line ``DataError``; a fused image of another size too.
    """
    folder = Path(pred_dir)
    if not folder.is_dir():
        raise DataError(f"predictions folder '{folder}' does not exist; pass the folder of fused images")
    found = {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_image_file(p)}
    rows = []
    for index in tqdm(range(len(dataset)), desc="score", unit="pair", disable=not progress, dynamic_ncols=True):
        item = dataset[index]
        stem = Path(item["name"]).stem
        if stem not in found:
            raise DataError(f"no fused image for '{item['name']}' in '{folder}' (looked for '{stem}.*'); add it")
        fused = read_fusion_image(found[stem], gray=item["vi"].shape[0] == 1)
        if fused.shape[-2:] != item["ir"].shape[-2:]:
            raise DataError(f"'{found[stem]}' is {fused.shape[1]}x{fused.shape[2]} but the sources are "
                            f"{item['ir'].shape[1]}x{item['ir'].shape[2]}; fused images must keep the source size")
        rows.append({"name": item["name"], **score_item({"fused": fused, "ir": item["ir"], "vi": item["vi"]},
                                                        names, textbook_ssim, convention)})
    return rows


def labelled_grid(items: Sequence[dict]) -> torch.Tensor:
    """One row per item, columns ``infrared | visible | fused`` under a label strip, small images
    enlarged (``restoration.grid``). ``items``: ``restore`` outputs. Returns ``[3, H, W]`` in ``[0, 1]``."""
    if not items:
        raise ValueError("no items to draw")
    return grid.labelled_grid([[it["ir"], it["vi"], it["fused"]] for it in items], ("infrared", "visible", "fused"))


def item_panel(item: dict) -> torch.Tensor:
    """``infrared | visible | fused`` of one ``restore`` item, titled with ``PANEL_METRICS`` (the fused
    image's from ``item["metrics"]`` when there, else scored here): ``[3, H, W]`` in [0, 1]."""
    own = PANEL_METRICS[0]

    def alone(image: torch.Tensor) -> dict[str, float]:
        vals = fusion_metrics(image[None], item["ir"][None], item["vi"][None], names=own)
        return {k: float(v[0]) for k, v in vals.items()}

    fused = item.get("metrics") or score_item(item, own + PANEL_METRICS[1])  # (vif left out on small items)
    shown = {k: fused[k] for k in own + PANEL_METRICS[1] if k in fused}
    tiles = [Tile(f"infrared\n{metric_text(alone(item['ir']), 4)}", item["ir"]),
             Tile(f"visible\n{metric_text(alone(item['vi']), 4)}", item["vi"]),
             Tile(f"fused\n{metric_text(shown, 4)}", item["fused"])]
    return panel([tiles], str(item.get("name", "")))
