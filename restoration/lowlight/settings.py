"""Settings, recipes and command-line flags of the low-light task.

Three recipes:

* ``"ruas"``, RUAS as published (``train_search.py`` and ``train.py`` of the RUAS code). Search:
  two groups with SEPARATE lower problems, stepped in this order each step: IEM alphas (upper loss
  IEM + NRM on the upper batch), IEM weights (lower loss: IEM loss); then every 10 steps NRM alphas
  (upper loss: NRM loss), NRM weights (NRM loss). 20 epochs, batch 1, 320x320 crops; alphas Adam
  3e-4, betas (0.5, 0.999), weight decay 1e-3; weights SGD 0.005 with momentum 0.9, no weight decay,
  constant (RUAS builds a cosine schedule on an optimizer that never steps: the weight optimizers
  keep 0.005), clipped to norm 5. Retraining unsupervised with RUAS's losses: IEM weights SGD 0.015
  (momentum 0.9, weight decay 3e-4, clip 5) on the IEM loss every step, NRM weights SGD 0.001 on the
  NRM loss every 50 steps, 800 steps at batch 1. Differences that remain: RUAS's virtual step uses
  the cosine value as xi and adds weight decay 3e-4 that its optimizer does not apply (``darts2``
  here follows the real optimizer); RUAS draws the same first validation image every step and its
  retraining reads the first training image every step (both loaders are unshuffled and re-created),
  here both are shuffled; RUAS starts the NRM of its retraining from its released denoising weights
  (``model/denoise.pt``), here from scratch unless ``train.py --init denoise.pt`` gives them
  (``released.py``; nothing is downloaded).
* ``"default"``: faster on a CPU and supervised when references exist. Search: one lower problem
  (all supernet weights on IEM + NRM losses) shared by the two groups (IEM alphas every step on
  IEM + NRM, NRM alphas every 10 steps on NRM), 6 epochs, batch 4, 48x48 crops, weights SGD 0.005
  momentum 0.9 weight decay 3e-4 cosine to 0.001, alphas Adam 3e-3 (the 192-step search moves them
  about as far as RUAS's 3e-4 over its 20 LOL epochs). Retraining: Adam 1e-3 cosine to 1e-5, 50
  epochs, batch 8, 48x48 crops, L1 to the reference + 0.1 x RUAS losses when the data has
  references, RUAS's losses alone otherwise.
* ``"adapt"``: low-light fast adaptation (``adapt.py``; Jin et al., ACM MM 2021). Search: no cells
  searched; ``fomaml`` meta-learns the initialisation of the reference genotype's network over the
  scenes (the six synthetic cameras of the embedded data, or ``--data ROOT/<scene>/``): meta-batches
  of 4 episodes, each 4 support and 4 query crops of 48 px from one scene, 5 inner steps of plain
  SGD 0.01 (no momentum, no weight decay), the initialisation moved by Adam 1e-3 on the query loss,
  10 epochs of 64 episodes (160 meta steps, about 3 minutes on one CPU thread). Both levels:
  L1 to the reference + 0.1 x RUAS losses when the scenes have references. Retraining is the
  adaptation: from ``--from``'s model.pt, plain SGD 0.01 (the inner steps' rule: no momentum, no
  schedule, no clip), one batch of 4 random 48 px crops of the new scene's images a step, 20 steps
  unless ``--max-steps K``, no validation split (a few images are all used; a ``val`` folder or
  ``--val-fraction`` still validates). Why these: 0.01 is a step size the normally trained network
  and random weights also adapt with (0.05 makes both diverge for steps while the meta-learned start
  stays smooth: the comparison would favour it unfairly); ``fomaml`` costs about a second per meta
  step on one CPU thread and matched ``maml`` (measured, docs/lowlight.md); ``maml``,
  ``reptile`` and ``imaml`` run with ``--method``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from datasets.synthetic_cameras import HELD_OUT_CAMERAS
from restoration.lowlight.model import OUTPUT_KEYS
from restoration.settings import ImageSettings
from tasks.settings import (Recipes, SettingsError, at_least, doc, flag_group, in_range, one_of, positive,
                            positive_float, positive_int)

__all__ = ["LowLightSettings", "RECIPES", "add_task_arguments"]


@dataclass
class LowLightSettings(ImageSettings):
    """Settings of the low-light task (see the module docstring for the two recipes)."""

    iem_stages: int = field(default=3, metadata=doc("unrolled IEM stages"))
    nrm_cells: int = field(default=3, metadata=doc("NRM cells"))
    nrm_channels: int = field(default=6, metadata=doc("NRM width"))
    pad_multiple: int = field(default=1, metadata=doc("pad validation/test images to a multiple of this"))
    output: str = field(default="out", metadata=doc("out: IEM + NRM; u: IEM only"))
    synthetic_count: int | None = field(default=256, metadata=doc("embedded training pairs (None: the set's 64)"))
    lr: float = field(default=0.005, metadata=doc("learning rate of the weights (joint lower/train optimizer)"))
    lower_problems: str = field(default="shared", metadata=doc("search: shared (one lower problem) or separate"))
    nrm_every: int = field(default=10, metadata=doc("NRM update period in steps (search: alphas; train: weights)"))
    train_optimizer: str = field(default="adam", metadata=doc("train: adam (one group) or sgd (IEM and NRM groups)"))
    iem_lr: float = field(default=0.015, metadata=doc("train with sgd: IEM learning rate"))
    nrm_lr: float = field(default=0.001, metadata=doc("train with sgd: NRM learning rate"))
    supervised: Any = field(default=False, metadata=doc("auto, true or false: add L1 to the reference"))
    unsupervised_weight: float = field(default=1.0, metadata=doc("weight of RUAS's losses beside the L1"))
    # fast adaptation (recipe adapt, ``adapt.py``)
    adapt: bool = field(default=False, metadata=doc("search: meta-learn the initialisation of the reference genotype "
                                                    "over scenes; train: adapt from it to one scene (recipe adapt)"))
    shots: int = field(default=4, metadata=doc("adapt search: support crops per episode (train: --batch-size)"))
    queries: int = field(default=4, metadata=doc("adapt search: query crops per episode"))
    episodes: int = field(default=64, metadata=doc("adapt search: episodes per epoch"))
    scene_images: int = field(default=32, metadata=doc("adapt, embedded data: images per synthetic camera"))
    held_out_camera: str = field(default=HELD_OUT_CAMERAS[0].name,
                                 metadata=doc("adapt, embedded data: the held-out camera adapted to and scored"))

    def check(self) -> None:
        super().check()
        for key in ("iem_stages", "nrm_cells", "nrm_channels", "pad_multiple", "nrm_every"):
            at_least(self, key, 1)
        at_least(self, "crop", 8, optional=True)
        positive(self, "iem_lr")
        positive(self, "nrm_lr")
        in_range(self, "unsupervised_weight", 0.0, float("inf"))
        one_of(self, "output", OUTPUT_KEYS)
        one_of(self, "lower_optimizer", ("sgd", "adam"))
        one_of(self, "lower_problems", ("shared", "separate"))
        one_of(self, "train_optimizer", ("adam", "sgd"))
        for key in ("shots", "queries", "episodes", "scene_images"):
            at_least(self, key, 1)
        one_of(self, "held_out_camera", tuple(c.name for c in HELD_OUT_CAMERAS))
        if not isinstance(self.adapt, bool):
            raise SettingsError(f"setting adapt must be true or false, got {self.adapt!r}")
        if self.supervised not in ("auto", True, False):
            raise SettingsError(f"setting supervised must be 'auto', true or false, got {self.supervised!r}")


RECIPES: Recipes = {
    "default": {
        "search": {"epochs": 6, "batch_size": 4, "supervised": False, "unsupervised_weight": 1.0},
        "train": {"epochs": 50, "batch_size": 8, "lr": 1e-3, "lr_min": 1e-5, "weight_decay": 0.0,
                  "train_optimizer": "adam", "supervised": "auto", "unsupervised_weight": 0.1},
    },
    "ruas": {
        "search": {"epochs": 20, "batch_size": 1, "crop": 320, "lower_problems": "separate",
                   "lr": 0.005, "lr_schedule": "constant", "momentum": 0.9, "weight_decay": 0.0,
                   "arch_lr": 3e-4, "arch_weight_decay": 1e-3, "grad_clip": None, "lower_grad_clip": 5.0,
                   "nrm_every": 10, "supervised": False, "unsupervised_weight": 1.0},
        "train": {"epochs": 4, "max_steps": 800, "batch_size": 1, "crop": 320, "train_optimizer": "sgd",
                  "iem_lr": 0.015, "nrm_lr": 0.001, "momentum": 0.9, "weight_decay": 3e-4, "lr_schedule": "constant",
                  "nrm_every": 50, "grad_clip": 5.0, "supervised": False, "unsupervised_weight": 1.0},
    },
    "adapt": {
        "search": {"adapt": True, "method": "fomaml", "method_options": {"steps": 5, "lr": 0.01}, "lr": 0.01,
                   "lower_optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "arch_lr": 1e-3,
                   "arch_weight_decay": 0.0, "grad_clip": None, "lr_schedule": "constant", "epochs": 10,
                   "batch_size": 4, "episodes": 64, "crop": 48, "supervised": "auto", "unsupervised_weight": 0.1},
        "train": {"adapt": True, "lr": 0.01, "train_optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0,
                  "lr_schedule": "constant", "grad_clip": None, "val_fraction": 0.0, "epochs": 20, "batch_size": 4,
                  "crop": 48, "supervised": "auto", "unsupervised_weight": 0.1},
    },
}


def add_task_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    """Flags of the low-light task (dest = settings key, default None = the recipe's value)."""
    add = flag_group(parser, "lowlight", stage, "default (fast, supervised retraining when references exist), ruas "
                     "(RUAS as published), adapt (meta-learned initialisation, adapted to a new scene in a few steps)")
    add("--crop", type=positive_int, default=None, metavar="PX",
        help="random square training crop in pixels (default: 48; ruas 320)")
    add("--lr", type=positive_float, default=None,
        help="learning rate of the network weights (default: search 0.005 SGD, train 1e-3 Adam; adapt: 0.01, the "
             "inner steps' and the adaptation's plain SGD step size)")
    add("--supervised", action=argparse.BooleanOptionalAction, default=None,
        help="add an L1 loss to the reference image (default: search off, RUAS's unsupervised losses; "
             "train on when the data has references; ruas: off)")
    add("--output", choices=OUTPUT_KEYS, default=None,
        help="network output used: out = IEM + NRM (default, RUAS on LOL), u = IEM only")
    add("--nrm-channels", type=positive_int, default=None, metavar="C", help="NRM width (default 6, RUAS)")
    add("--iem-stages", type=positive_int, default=None, metavar="K", help="unrolled IEM stages (default 3)")
    add("--nrm-cells", type=positive_int, default=None, metavar="K", help="NRM cells (default 3)")
    add("--nrm-every", type=positive_int, default=None, metavar="K",
        help="update period of the NRM in steps (search: its alphas, default 10; train with sgd: its weights, "
             "ruas 50)")
    add("--val-fraction", type=float, default=None, metavar="P",
        help="share of a training folder held out (seeded) for validation when no val/ folder exists (default 0.1)")
    add("--held-out-camera", choices=tuple(c.name for c in HELD_OUT_CAMERAS), default=None,
        help=f"adapt, embedded data: the held-out camera adapted to and scored (default {HELD_OUT_CAMERAS[0].name})")
    if stage == "search":
        add("--shots", type=positive_int, default=None, metavar="S",
            help="adapt: support crops per episode, adapted on by the inner steps (default 4; train.py adapts on "
                 "--batch-size crops a step)")
        add("--queries", type=positive_int, default=None, metavar="Q",
            help="adapt: query crops per episode, which score the adapted weights (default 4)")
        add("--episodes", type=positive_int, default=None, metavar="E", help="adapt: episodes per epoch (default 64)")
        add("--arch-lr", type=positive_float, default=None,
            help="Adam learning rate of the alphas (default 3e-3; adapt: of the initialisation, 1e-3)")
        add("--lower-optimizer", choices=("sgd", "adam"), default=None,
            help="optimizer of the supernet weights (default sgd; adapt: the inner steps' rule, sgd without "
                 "momentum)")
        add("--lower-problems", choices=("shared", "separate"), default=None,
            help="shared: all weights on IEM + NRM losses for both groups (default); separate: IEM weights on "
                 "the IEM loss, NRM weights on the NRM loss every --nrm-every steps (ruas)")
