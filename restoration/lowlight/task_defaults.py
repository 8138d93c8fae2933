"""Default budgets and settings of the low-light task, and its command-line flags.

RUAS's search (``train_search.py``): SGD on the weights (lr 0.005, momentum 0.9, cosine to
0.001), Adam on the alphas (lr 3e-4, betas (0.5, 0.999), weight decay 1e-3), gradient clip 5,
batch size 1, 20 epochs over LOL, NRM architecture every 10 steps. Here the weights keep SGD:
``darts2``'s virtual step and the unrolled methods differentiate through the lower update, which
``bilevel`` implements for SGD only (``lower_optimizer="adam"`` works with ``darts1``, ``cg``,
``neumann``). The budgets fit the embedded default (256 synthetic training pairs) so that
``search.py`` then ``train.py`` finish in under 10 minutes together on a 2-core CPU. Measured
(one thread, CPU seconds): a darts2 search step (batch 4, 48x48, both groups) 1.2 s, so the
default 6 epochs x 32 steps take about 245 s with start-up and per-epoch saving; a training
step (batch 8, 48x48) 0.07-0.09 s, so 50 epochs x 32 steps with validation take 145-175 s.
The architecture learning rate is raised to 3e-3 so that the alphas move about as far in the
192-step search as RUAS's do with 3e-4 over its 20 LOL epochs.

Training is supervised by default when the data has references: with RUAS's unsupervised
losses alone the reference genotype reaches 10.4 dB on the synthetic test split in the default
budget, below a fixed gamma curve (13.8 dB for 1/2.2, 15.1 dB for the best gamma on the val
split), against 19.8 dB with the L1 term.

Keys: ``epochs``, ``batch_size``, ``crop`` (random training crop, None: whole items), ``flip``,
``lr`` (weights), ``lr_min`` (cosine floor), ``momentum``, ``weight_decay``,
``lower_optimizer`` (search: ``"sgd"`` or ``"adam"``), ``arch_lr``, ``arch_weight_decay``,
``grad_clip`` (search: of the hypergradient; train: of the weights), ``lower_grad_clip``
(search: of the weights), ``nrm_every``, ``iem_stages``, ``nrm_cells``, ``nrm_channels``,
``supervised`` (``"auto"``: L1 to the reference when the data has one; ``True``/``False``),
``unsupervised_weight`` (weight of the RUAS losses beside the L1 when supervised), ``output``
(``"out"``: IEM + NRM, ``"u"``: IEM only), ``eval_batch_size`` (1: full-resolution images of any
size), ``pad_multiple`` (test/val folders), ``synthetic_count`` (embedded training pairs).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["ARCH_BETAS", "SEARCH_DEFAULTS", "TRAIN_DEFAULTS", "add_task_arguments"]

#: Adam betas of the architecture optimizers (DARTS/RUAS architect).
ARCH_BETAS = (0.5, 0.999)

_COMMON: dict[str, Any] = {
    "iem_stages": 3, "nrm_cells": 3, "nrm_channels": 6,
    "flip": True, "eval_batch_size": 1, "pad_multiple": 1, "output": "out", "synthetic_count": 256,
}

SEARCH_DEFAULTS: dict[str, Any] = {
    **_COMMON,
    "epochs": 6, "batch_size": 4, "crop": 48,
    "lr": 0.005, "lr_min": 0.001, "momentum": 0.9, "weight_decay": 3e-4, "lower_optimizer": "sgd",
    "arch_lr": 3e-3, "arch_weight_decay": 1e-3, "grad_clip": 5.0, "lower_grad_clip": 5.0,
    "nrm_every": 10, "supervised": False, "unsupervised_weight": 1.0,
}

TRAIN_DEFAULTS: dict[str, Any] = {
    **_COMMON,
    "epochs": 50, "batch_size": 8, "crop": 48,
    "lr": 1e-3, "lr_min": 1e-5, "momentum": None, "weight_decay": 0.0, "lower_optimizer": None,
    "arch_lr": None, "arch_weight_decay": None, "grad_clip": 5.0, "lower_grad_clip": None,
    "nrm_every": None, "supervised": "auto", "unsupervised_weight": 0.1,
}


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def add_task_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    """Flags of the low-light task (dest = config key, default None = the task's default)."""
    if stage not in ("search", "train"):
        return
    add = parser.add_argument
    add("--crop", type=_positive_int, default=None, metavar="PX",
        help="random square training crop in pixels (default: search 48, train 48)")
    add("--lr", type=_positive_float, default=None,
        help="learning rate of the network weights (default: search 0.005 SGD, train 1e-3 Adam)")
    add("--supervised", action=argparse.BooleanOptionalAction, default=None,
        help="add an L1 loss to the reference image (default: search off, RUAS's unsupervised losses; "
             "train on when the data has references)")
    add("--output", choices=("out", "u"), default=None,
        help="network output used: out = IEM + NRM (default, RUAS on LOL), u = IEM only")
    add("--nrm-channels", type=_positive_int, default=None, metavar="C", help="NRM width (default 6, RUAS)")
    add("--iem-stages", type=_positive_int, default=None, metavar="K", help="unrolled IEM stages (default 3)")
    add("--nrm-cells", type=_positive_int, default=None, metavar="K", help="NRM cells (default 3)")
    if stage == "search":
        add("--arch-lr", type=_positive_float, default=None, help="Adam learning rate of the alphas (default 3e-3)")
        add("--nrm-every", type=_positive_int, default=None, metavar="K",
            help="update the NRM architecture every K steps (default 10, RUAS)")
        add("--lower-optimizer", choices=("sgd", "adam"), default=None,
            help="optimizer of the supernet weights (default sgd; adam only with darts1, cg, neumann)")
