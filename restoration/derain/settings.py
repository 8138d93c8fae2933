"""Settings, recipes and command-line flags of the deraining task.

Two recipes:

* ``"default"``: fast on a CPU. Search: the chain-cell supernet (3 cells of 4 edges over the 14
  restoration ops, one shared architecture) at 8 channels on 48x48 crops, batch 4, 3 epochs,
  ``darts2``; weights SGD 0.01 (momentum 0.9, weight decay 3e-4, cosine to 1e-3), alphas Adam 3e-3
  betas (0.5, 0.999) weight decay 1e-3. Retraining: the discrete network at 16 channels, 3 cells,
  Adam 2e-3 cosine to 1e-4, 40 epochs of batch 8 on 48x48 crops (320 steps on the embedded data).
* ``"tmics"``: TMICS as published (``structure = "tmics"``, ``restoration.derain.triple``): three levels
  (the AAS weights lambda on top, the architecture of the DNA and CNA cells and of the inter-frame
  module (OFM against TGM) in the middle, the weights at the bottom), stepped together with the
  ``one_step`` approximation; 5-frame windows; the released network's size to retrain (96 channels,
  4 cells per branch: the released code's 8 cells), Charbonnier + SSIM losses. The schedules are
  not in the released code: DARTS's published values stand in for the search (weights SGD 0.025
  momentum 0.9 weight decay 3e-4 cosine to 1e-3, upper levels Adam 3e-4 weight decay 1e-3, 50
  epochs at 16 channels) and a common deraining schedule for the retraining (Adam 2e-4 cosine to
  1e-6, 100 epochs, batch 8, 64x64 crops). A GPU recipe.
* ``"tmics-cpu"``: the same three levels sized for a CPU (search 8 channels, one cell of 4 edges per
  branch, 32x32 crops, batch 2, 3 epochs; retraining as ``default`` at 16 channels) on 5-frame windows.

Metrics: PSNR and SSIM on the Y channel of ITU-R BT.601 YCbCr in MATLAB's ``rgb2ycbcr``
convention (the deraining papers' numbers), or on RGB with ``y_channel = False``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from restoration.derain.losses import PIXEL_LOSSES
from restoration.settings import ImageSettings
from tasks.settings import (Recipes, SettingsError, at_least, doc, flag_group, in_range, one_of, positive_float,
                            positive_int)

__all__ = ["DerainSettings", "RECIPES", "add_task_arguments"]


@dataclass
class DerainSettings(ImageSettings):
    """Settings of the deraining task (see the module docstring for the recipes); the data fields are
    read by ``restoration.derain.data``."""

    structure: str = field(default="chain", metadata=doc(
        "search: chain (cells sharing one genotype, two levels) or tmics (DNA + CNA cells merged by attention "
        "averaging, a searched inter-frame module, three levels)"))
    channels: int = field(default=8, metadata=doc("feature channels of the network"))
    cells: int = field(default=3, metadata=doc("searched cells in sequence (one shared genotype; tmics: per branch)"))
    steps: int = field(default=4, metadata=doc("search: edges (ops) per chain cell"))
    frames: int = field(default=1, metadata=doc("odd frame window; > 1 reads videos and restores the middle frame"))
    video: bool = field(default=False, metadata=doc("embedded data: the synthetic video even with frames = 1"))
    full_window: bool = field(default=True, metadata=doc("video: score only frames whose window is inside the video"))
    eval_window: int | None = field(default=None, metadata=doc(
        "video: validate/evaluate only frames with a full window of this size (None: frames)"))
    synthetic_count: int | None = field(default=None, metadata=doc("embedded training images (None: 64)"))
    synthetic_val_count: int | None = field(default=64, metadata=doc("search: embedded upper-level crops"))
    # losses
    pixel_loss: str = field(default="charbonnier", metadata=doc("charbonnier or l1"))
    pixel_weight: float = field(default=1.0, metadata=doc("weight of the pixel loss"))
    ssim_weight: float = field(default=0.2, metadata=doc("weight of 1 - SSIM"))
    # evaluation
    y_channel: bool = field(default=True, metadata=doc("metrics on the MATLAB Y channel (False: RGB in [0, 1])"))
    tile: int | None = field(default=None, metadata=doc("evaluate in overlapping tiles of this side (None: whole)"))
    tile_overlap: int = field(default=32, metadata=doc("overlap of neighbouring tiles in pixels"))

    def check(self) -> None:
        one_of(self, "lower_optimizer", ("sgd", "adam"))
        one_of(self, "train_optimizer", ("adam", "sgd"))
        super().check()
        for key in ("channels", "cells", "steps", "frames"):
            at_least(self, key, 1)
        if self.frames % 2 == 0:
            raise SettingsError(f"setting frames must be odd (a window centred on the restored frame), got {self.frames}")
        at_least(self, "crop", 11, optional=True)  # the SSIM loss needs 11x11 windows
        at_least(self, "synthetic_val_count", 1, optional=True)
        at_least(self, "eval_window", 1, optional=True)
        at_least(self, "tile", 16, optional=True)
        at_least(self, "tile_overlap", 0)
        if self.tile is not None and self.tile_overlap >= self.tile:
            raise SettingsError(f"setting tile_overlap ({self.tile_overlap}) must be smaller than tile ({self.tile})")
        for key in ("pixel_weight", "ssim_weight"):
            in_range(self, key, 0.0, float("inf"))
        if self.pixel_weight + self.ssim_weight <= 0:
            raise SettingsError("at least one of pixel_weight, ssim_weight must be > 0")
        one_of(self, "pixel_loss", tuple(PIXEL_LOSSES))
        one_of(self, "structure", ("chain", "tmics"))

    def loss_weights(self) -> tuple[float, float]:
        return (self.pixel_weight, self.ssim_weight)


RECIPES: Recipes = {
    "default": {
        "search": {"epochs": 3, "batch_size": 4, "channels": 8, "cells": 3, "crop": 48, "lr": 0.01,
                   "lr_min": 1e-3, "arch_lr": 3e-3},
        "train": {"epochs": 40, "batch_size": 8, "channels": 16, "cells": 3, "crop": 48, "lr": 2e-3,
                  "lr_min": 1e-4, "weight_decay": 0.0, "train_optimizer": "adam", "grad_clip": 5.0},
    },
    "tmics": {
        "search": {"structure": "tmics", "method": "one_step", "method_options": {"lr": 0.025}, "frames": 5,
                   "epochs": 50, "batch_size": 4, "channels": 16, "cells": 4, "crop": 64, "lr": 0.025,
                   "lr_min": 1e-3, "momentum": 0.9, "weight_decay": 3e-4, "arch_lr": 3e-4,
                   "arch_weight_decay": 1e-3},
        "train": {"frames": 5, "epochs": 100, "batch_size": 8, "channels": 96, "cells": 4, "crop": 64, "lr": 2e-4,
                  "lr_min": 1e-6, "weight_decay": 0.0, "train_optimizer": "adam", "grad_clip": None},
    },
    "tmics-cpu": {
        "search": {"structure": "tmics", "method": "one_step", "method_options": {"lr": 0.01}, "frames": 5,
                   "epochs": 3, "batch_size": 2, "channels": 8, "cells": 1, "steps": 4, "crop": 32, "lr": 0.01,
                   "lr_min": 1e-3, "arch_lr": 3e-3},
        "train": {"frames": 5, "epochs": 40, "batch_size": 8, "channels": 16, "cells": 1, "crop": 48, "lr": 2e-3,
                  "lr_min": 1e-4, "weight_decay": 0.0, "train_optimizer": "adam", "grad_clip": 5.0},
    },
}


def add_task_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    """Flags of the deraining task (dest = settings key, default None = the recipe's value)."""
    add = flag_group(parser, "derain", stage,
                     "default (fast on a CPU), tmics (TMICS as published: three levels, DNA + CNA cells, a searched "
                     "inter-frame module, 5 frames; a GPU recipe), tmics-cpu (the same sized for a CPU). Metrics: PSNR and SSIM on the Y channel of BT.601 "
                     "YCbCr, MATLAB rgb2ycbcr convention (8-bit, Y in [16, 235]), as deraining papers report; "
                     "--no-y-channel for RGB")
    add("--channels", type=positive_int, default=None, metavar="C",
        help="feature channels (default: search 8, train 16; tmics 16 / 96)")
    add("--cells", type=positive_int, default=None, metavar="N", help="cells in sequence (default 3); tmics: cells per branch, DNA and CNA (tmics 4, tmics-cpu 1)")
    add("--frames", type=positive_int, default=None, metavar="T",
        help="odd frame window (default 1: single images); T > 1 reads videos (DIR/<video>/rfc-<k>, gtc-<k>, or "
             "the embedded synthetic video), stacks the T frames as input and restores the middle one; windows "
             "at the ends of a video are reflected")
    add("--video", action=argparse.BooleanOptionalAction, default=None,
        help="embedded data: use the synthetic video even with --frames 1 (the single-frame baseline)")
    add("--eval-window", type=positive_int, default=None, metavar="T",
        help="video: validate (and let evaluate.py score) only the frames with a full window of T frames, e.g. a "
             "--frames 1 --video model on the frames a --frames 5 model is scored on (default: --frames)")
    add("--crop", type=positive_int, default=None, metavar="PX", help="random square training crop (default 48)")
    add("--lr", type=positive_float, default=None,
        help="learning rate of the network weights (default: search 0.01 SGD, train 2e-3 Adam)")
    add("--pixel-loss", choices=tuple(PIXEL_LOSSES), default=None, help="pixel loss (default charbonnier, eps 1e-3)")
    add("--ssim-weight", type=float, default=None, metavar="W", help="weight of 1 - SSIM (kornia; default 0.2)")
    add("--synthetic-count", type=positive_int, default=None, metavar="N",
        help="embedded training images (default 64)")
    add("--val-fraction", type=float, default=None, metavar="P",
        help="share of a training folder held out (seeded) for validation when no val/ folder exists (default 0.1; "
             "of the videos for video folders)")
    add("--y-channel", action=argparse.BooleanOptionalAction, default=None,
        help="validation metrics on the MATLAB Y channel (default) or, with --no-y-channel, on RGB in [0, 1]; "
             "the model keeps the choice for evaluate.py")
    if stage == "search":
        add("--steps", type=positive_int, default=None, metavar="K", help="edges per chain cell (default 4)")
        add("--arch-lr", type=positive_float, default=None, help="Adam learning rate of the alphas (default 3e-3)")
        add("--lower-optimizer", choices=("sgd", "adam"), default=None,
            help="optimizer of the supernet weights (default sgd)")
