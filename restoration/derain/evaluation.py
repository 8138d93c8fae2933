"""Evaluation helpers of the deraining task: restore a batch (whole or tiled), score it,
score a folder of outputs made elsewhere, and draw labelled comparisons (a grid of items for the
train samples, a panel with each image's metrics for ``evaluate.py --save-images``).

Metrics (higher is better for both): ``psnr`` and ``ssim`` on the Y channel of ITU-R BT.601
YCbCr as MATLAB's ``rgb2ycbcr(im2double(img))`` gives it in the deraining papers' scripts
of the output as its 8-bit PNG holds it (studio-swing Y in [16, 235]/255, not rounded;
``restoration.metrics.Y_MATLAB``), PSNR with peak 255
and SSIM as Wang's ``ssim_index.m`` (Gaussian 11x11, valid positions, L = 255), or on RGB in [0, 1]
with ``y_channel=False``. SSIM needs images of at least 11x11.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from restoration import grid, panels
from restoration.derain.model import network_input
from restoration.gray import keep_gray
from restoration.metrics import Y_MATLAB, Y_MATLAB_UINT8, psnr, psnr_y, ssim, ssim_y
from restoration.predictions import PredictionFolder
from restoration.tiling import run_tiled

__all__ = ["METRIC_NOTE", "derain_metrics", "item_panel", "labelled_grid", "match_predictions", "restore"]

METRIC_NOTE = ("PSNR/SSIM on the Y channel of BT.601 YCbCr as MATLAB's rgb2ycbcr(im2double(img)) gives it for "
               "the 8-bit image (studio swing, Y in [16, 235]/255, not rounded; BasicSR's to_y_channel), PSNR with "
               "peak 255 on Y x 255, SSIM as Wang's ssim_index.m (11x11 Gaussian window, sigma 1.5, valid positions, "
               "L = 255; BasicSR's calculate_ssim)")


def derain_metrics(output: torch.Tensor, target: torch.Tensor, y_channel: bool = True,
                   uint8_y: bool = False, ssim_convention: str = "ssim_index") -> dict[str, torch.Tensor]:
    """``{"psnr": [N], "ssim": [N]}`` of ``[N, 3, H, W]`` images in ``[0, 1]``. ``uint8_y``: Y as
    ``rgb2ycbcr`` gives it for ``uint8`` images (rounded to integers); ``ssim_convention``: one of
    ``restoration.metrics.SSIM_CONVENTIONS`` (Y channel only)."""
    if y_channel:
        y = Y_MATLAB_UINT8 if uint8_y else Y_MATLAB
        return {"psnr": psnr_y(output, target, **y), "ssim": ssim_y(output, target, **y, convention=ssim_convention)}
    return {"psnr": psnr(output, target), "ssim": ssim(output, target)}


@torch.no_grad()
def restore(network: nn.Module, batch: dict, tile: Optional[int] = None, overlap: int = 32) -> list[dict]:
    """Derain a collated batch; one dict per item: ``name``, ``output`` ``[3, h, w]`` clamped to
    ``[0, 1]`` and cropped to the item's ``size``, plus ``input``/``target`` cropped alike.

    ``tile``: run overlapping tiles of this side (``restoration.tiling.run_tiled``), else the
    whole image at once (the deraining networks take any size).
    """
    was_training = network.training
    network.eval()
    try:
        x = network_input(batch)
        fn = lambda t: network(t)["out"]  # noqa: E731
        out = run_tiled(fn, x, tile, overlap) if tile else fn(x)
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


def match_predictions(pred_dir: str, dataset: Dataset, y_channel: bool = True
                      ) -> Iterator[tuple[str, torch.Tensor, torch.Tensor]]:
    """``(name, prediction [3, H, W], target [3, H, W])`` for every item of ``dataset``, the
    prediction found in ``pred_dir`` by the item's name (same relative path, any image
    extension; ``restoration.predictions.PredictionFolder``). ``DataError`` naming the missing
    file, a size mismatch, or a gray prediction of a colour target scored on RGB (``y_channel``
    False; on the Y channel a gray prediction is its own luma)."""
    folder = PredictionFolder(pred_dir)
    for i in range(len(dataset)):  # type: ignore[arg-type]
        item = dataset[i]
        h, w = (int(v) for v in item["size"])
        target = item["target"][:, :h, :w]
        yield item["name"], folder.read(str(item["name"]), (h, w), reference=target, luma=y_channel), target


def labelled_grid(items: Sequence[dict], keys: Sequence[str] = ("input", "output", "target"),
                  labels: Sequence[str] = ("rainy", "derained", "clean")) -> torch.Tensor:
    """One row per item (its ``keys`` side by side; a missing one drawn black) under a header naming
    the columns, small images enlarged (``restoration.grid.labelled_grid``); ``[3, H, W]`` in [0, 1]."""
    rows = [[it.get(k, torch.zeros_like(it["output"])).detach().float().cpu() for k in keys] for it in items]
    return grid.labelled_grid(rows, labels)


def item_panel(item: dict) -> torch.Tensor:
    """``rainy | derained | clean`` of one ``restore`` item titled with the rainy and derained images'
    ``derain_metrics`` against the clean one (``item["y_channel"]``, default True; the derained
    image's from ``item["metrics"]`` when there): ``[3, H, W]`` in [0, 1]."""
    y = bool(item.get("y_channel", True))

    def score(image: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        return {k: float(v[0]) for k, v in derain_metrics(image[None], target[None], y).items()}

    return panels.item_panel(item, (("input", "rainy"), ("output", "derained"), ("target", "clean")), score)
