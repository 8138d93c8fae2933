"""Evaluation helpers of the deraining task: restore a batch (padded or tiled), score it,
score a folder of outputs made elsewhere, and draw a labelled comparison grid.

Metrics (higher is better for both): ``psnr`` and ``ssim`` on the Y channel of ITU-R BT.601
YCbCr in the MATLAB ``rgb2ycbcr`` convention of the deraining papers (8-bit RGB, studio-swing Y
in [16, 235] rounded to integers, PSNR peak 255, Gaussian SSIM with L = 255;
``restoration.metrics.Y_MATLAB``), or on RGB in [0, 1] with ``y_channel=False``. SSIM needs
images of at least 11x11.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from restoration import grid
from restoration.derain.model import network_input
from restoration.gray import keep_gray
from restoration.metrics import Y_MATLAB, psnr, psnr_y, ssim, ssim_y
from restoration.predictions import PredictionFolder
from restoration.tiling import run_padded, run_tiled

__all__ = ["METRIC_DIRECTIONS", "METRIC_NOTE", "derain_metrics", "labelled_grid", "match_predictions", "restore"]

METRIC_DIRECTIONS = {"psnr": "higher", "ssim": "higher"}
METRIC_NOTE = ("PSNR/SSIM on the Y channel of BT.601 YCbCr, MATLAB rgb2ycbcr convention (8-bit, "
               "Y in [16, 235] rounded), as deraining papers report")


def derain_metrics(output: torch.Tensor, target: torch.Tensor, y_channel: bool = True) -> dict[str, torch.Tensor]:
    """``{"psnr": [N], "ssim": [N]}`` of ``[N, 3, H, W]`` images in ``[0, 1]``."""
    if y_channel:
        return {"psnr": psnr_y(output, target, **Y_MATLAB), "ssim": ssim_y(output, target, **Y_MATLAB)}
    return {"psnr": psnr(output, target), "ssim": ssim(output, target)}


@torch.no_grad()
def restore(network: nn.Module, batch: dict, tile: Optional[int] = None, overlap: int = 32) -> list[dict]:
    """Derain a collated batch; one dict per item: ``name``, ``output`` ``[3, h, w]`` clamped to
    ``[0, 1]`` and cropped to the item's ``size``, plus ``input``/``target`` cropped alike.

    ``tile``: run overlapping tiles of this side (``restoration.tiling.run_tiled``), else the
    whole (padded to ``network.multiple``) image at once.
    """
    was_training = network.training
    network.eval()
    try:
        x = network_input(batch)
        multiple = int(getattr(network, "multiple", 1))
        fn = lambda t: network(t)["out"]  # noqa: E731
        out = run_tiled(fn, x, tile, overlap, multiple) if tile else run_padded(fn, x, multiple)
    finally:
        network.train(was_training)
    out = keep_gray(batch["input"], out.clamp(0.0, 1.0))  # a gray input comes out gray
    items = []
    for i, name in enumerate(batch["name"]):
        h, w = (int(v) for v in batch["size"][i])
        item = {"name": name, "output": out[i, :, :h, :w]}
        for k in ("input", "target"):
            if k in batch:
                item[k] = batch[k][i, :, :h, :w]
        items.append(item)
    return items


def match_predictions(pred_dir: str, dataset: Dataset) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(name, prediction [3, H, W], target [3, H, W])`` for every item of ``dataset``, the
    prediction found in ``pred_dir`` by the item's name (same relative path, any image
    extension; ``restoration.predictions.PredictionFolder``). ``DataError`` naming the missing
    file or a size mismatch."""
    folder = PredictionFolder(pred_dir)
    for i in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[i]
        h, w = (int(v) for v in item["size"])
        yield item["name"], folder.read(str(item["name"]), (h, w)), item["target"][:, :h, :w]


def labelled_grid(items: Sequence[dict], keys: Sequence[str] = ("input", "output", "target"),
                  labels: Sequence[str] = ("rainy", "derained", "clean")) -> torch.Tensor:
    """One row per item (its ``keys`` side by side; a missing one drawn black) under a header naming
    the columns, small images enlarged (``restoration.grid.labelled_grid``); ``[3, H, W]`` in [0, 1]."""
    rows = [[it.get(k, torch.zeros_like(it["output"])).detach().float().cpu() for k in keys] for it in items]
    return grid.labelled_grid(rows, labels)
