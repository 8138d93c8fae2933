"""Settings, recipes and command-line flags of the infrared/visible fusion task.

Two recipes:

* ``"default"``: fast on a CPU. Search: the multi-scale supernet at 8 channels on 48x48 crops of the
  embedded pairs, batch 4, 4 epochs of 12 steps (the upper level draws from 48 crops of the
  validation photograph), ``darts2``; weights SGD 0.01 (momentum 0.9, weight decay 3e-4, cosine to
  1e-3), alphas Adam 3e-3 with betas (0.5, 0.999), weight decay 1e-3. Retraining: the discrete
  network at 16 channels, Adam 3e-3 cosine to 1e-5, 200 epochs of batch 8 on 48x48 crops (1200
  steps; 20 epochs at 1e-3 left the network blurry, its training loss still falling: more steps and
  the larger rate were chosen on the training loss and validation Qabf).
* ``"tim"``: what the public TIMFusion code (github.com/LiuZhu-CV/TIMFusion) fixes, the rest marked.
  From that code: the implicit architecture search (``--method ias``: ``IAS/architect_new.py``
  adds ``-<grad_y f, d_y F> / ||grad_y f||^2 x d_x f`` to the alphas' gradient, no virtual step),
  the architecture optimizer Adam with betas (0.5, 0.999) and its own weight decay, an SGD lower
  optimizer with momentum (the architect reads the momentum buffers), the latency term entering the
  upper loss, and the op family (``genotypes.py``: sep/dil convs, ECA/spatial attention, residual
  and dense blocks, skip). NOT in that code nor in the pages the suite's authors could find: the
  learning rates, epochs, batch size, crop and width of TIM's search and retraining. Those are
  DARTS's published values (weights SGD 0.025 momentum 0.9 weight decay 3e-4 cosine to 1e-3, alphas
  3e-4 weight decay 1e-3, 50 search epochs, batch 4 here for memory, 64x64 crops), and the
  retraining's Adam 1e-4 for 100 epochs is a common choice of the field, not TIM's. HAF (ACM MM
  2021) released no search code we could read: no recipe is named after it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from restoration.fusion.metrics_conventions import CONVENTIONS, DEFAULT_CONVENTION
from restoration.settings import ImageSettings
from tasks.settings import Recipes, SettingsError, at_least, doc, flag_group, in_range, one_of, positive, positive_int

__all__ = ["CONVENTION_HELP", "FusionSettings", "RECIPES", "add_task_arguments"]


@dataclass
class FusionSettings(ImageSettings):
    """Settings of the fusion task (see the module docstring for the recipes)."""

    channels: int = field(default=8, metadata=doc("feature channels of the network"))
    decomposition: bool = field(default=False, metadata=doc("guided-filter base/detail inputs (4 channels)"))
    gf_kernel: int = field(default=7, metadata=doc("guided filter window"))
    gf_eps: float = field(default=1e-2, metadata=doc("guided filter regulariser"))
    partial_k: int = field(default=1, metadata=doc("search: PC-DARTS channel share 1/k on every edge"))
    synthetic_count: int | None = field(default=None, metadata=doc("embedded training pairs (None: 48)"))
    synthetic_val_count: int | None = field(default=48, metadata=doc("search: embedded upper-level crops"))
    # losses
    intensity_weight: float = field(default=1.0, metadata=doc("weight of the intensity loss"))
    gradient_weight: float = field(default=1.0, metadata=doc("weight of the gradient loss"))
    ssim_weight: float = field(default=1.0, metadata=doc("weight of the SSIM loss"))
    learn_loss_weights: bool = field(default=False, metadata=doc("search: loss weights are upper variables"))
    hyper_lr: float = field(default=0.05, metadata=doc("search: Adam learning rate of the loss-weight logits"))
    # hardware-aware search
    latency_weight: float = field(default=0.0, metadata=doc("search: W in upper loss + W x expected latency (ms)"))
    latency_size: int = field(default=64, metadata=doc("search: side of the input the ops are timed on"))
    latency_repeats: int = field(default=10, metadata=doc("search: timed runs per op (median)"))
    latency_table: dict[str, Any] | None = field(default=None, metadata=doc(
        "search: op latency record {settings, latency_ms}, filled at start and written to the run folder"))
    # evaluation
    textbook_ssim: bool = field(default=False, metadata=doc("ssim metric: Wang et al.'s instead of the evaluator's"))
    convention: str = field(default=DEFAULT_CONVENTION, metadata=doc(
        "metric definitions of a published table: cddfuse (MMIF-CDDFuse evaluator) or didfuse (DIDFuse's Table 4)"))

    def check(self) -> None:
        super().check()
        for key in ("channels", "gf_kernel", "partial_k", "latency_size", "latency_repeats"):
            at_least(self, key, 1)
        at_least(self, "crop", 12, optional=True)  # the SSIM loss needs 11x11 windows
        at_least(self, "synthetic_val_count", 1, optional=True)
        for key in ("gf_eps", "hyper_lr"):
            positive(self, key)
        for key in ("latency_weight", "intensity_weight", "gradient_weight", "ssim_weight"):
            in_range(self, key, 0.0, float("inf"))
        if self.intensity_weight + self.gradient_weight + self.ssim_weight <= 0:
            raise SettingsError("at least one of intensity_weight, gradient_weight, ssim_weight must be > 0")
        if self.learn_loss_weights and min(self.intensity_weight, self.gradient_weight, self.ssim_weight) <= 0:
            raise SettingsError("--learn-loss-weights starts from the loss weights and needs each > 0; "
                                "give positive --intensity-weight, --gradient-weight, --ssim-weight")
        if self.channels % self.partial_k:
            raise SettingsError(f"setting channels ({self.channels}) must be a multiple of partial_k ({self.partial_k})")
        one_of(self, "lower_optimizer", ("sgd", "adam"))
        one_of(self, "train_optimizer", ("adam", "sgd"))
        one_of(self, "convention", tuple(CONVENTIONS))
        if self.latency_table is not None and not isinstance(self.latency_table, dict):
            raise SettingsError("setting latency_table must be a JSON object {settings, latency_ms} or null")

    def loss_weights(self) -> dict[str, float]:
        """The fixed loss weights ``{"intensity", "gradient", "ssim"}``."""
        return {"intensity": self.intensity_weight, "gradient": self.gradient_weight, "ssim": self.ssim_weight}


RECIPES: Recipes = {
    "default": {
        "search": {"epochs": 4, "batch_size": 4, "channels": 8, "crop": 48, "lr": 0.01, "lr_min": 1e-3,
                   "arch_lr": 3e-3},
        "train": {"epochs": 200, "batch_size": 8, "channels": 16, "crop": 48, "lr": 3e-3, "lr_min": 1e-5,
                  "weight_decay": 0.0, "train_optimizer": "adam", "grad_clip": 5.0},
    },
    "tim": {
        "search": {"method": "ias", "epochs": 50, "batch_size": 4, "channels": 16, "crop": 64, "lr": 0.025,
                   "lr_min": 1e-3, "momentum": 0.9, "weight_decay": 3e-4, "lower_optimizer": "sgd",
                   "arch_lr": 3e-4, "arch_weight_decay": 1e-3, "synthetic_val_count": 48},
        "train": {"epochs": 100, "batch_size": 4, "channels": 16, "crop": 64, "lr": 1e-4, "lr_min": 1e-6,
                  "weight_decay": 0.0, "train_optimizer": "adam", "grad_clip": None},
    },
}


#: What ``--convention`` picks (train.py and evaluate.py).
CONVENTION_HELP = ("definitions of the fusion metrics, recorded in metrics.json: " + "; ".join(
    f"{c.name}{' (default)' if c.name == DEFAULT_CONVENTION else ''}: {c.note}" for c in CONVENTIONS.values()))


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def add_task_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    """Flags of the fusion task (dest = settings key, default None = the recipe's value)."""
    add = flag_group(parser, "fusion", stage, "default (fast on a CPU), tim (TIMFusion's public code where it fixes "
                     "a value, DARTS's values elsewhere)")
    add("--channels", type=positive_int, default=None, metavar="C",
        help="feature channels (default: search 8, train 16)")
    add("--crop", type=positive_int, default=None, metavar="PX", help="random square training crop (default 48)")
    add("--decomposition", action=argparse.BooleanOptionalAction, default=None,
        help="feed guided-filter base and detail layers of each source (kornia guided_blur) instead of the sources")
    add("--lr", type=float, default=None, help="learning rate of the network weights (default: search 0.01, train 3e-3)")
    add("--synthetic-count", type=positive_int, default=None, metavar="N",
        help="embedded training pairs (default 48)")
    add("--val-fraction", type=float, default=None, metavar="P",
        help="share of a training folder held out (seeded) for validation when no val/ folder exists (default 0.1)")
    for term in ("intensity", "gradient", "ssim"):
        add(f"--{term}-weight", type=_non_negative, default=None, metavar="W",
            help=f"weight of the {term} loss (default 1; with --learn-loss-weights the starting value)")
    add("--textbook-ssim", action=argparse.BooleanOptionalAction, default=None,
        help="report Wang et al.'s SSIM (Gaussian 11x11, range 255) as 'ssim' in validation and evaluate.py, "
             "instead of the field evaluator's scikit-image call (its effective data_range 2)")
    if stage == "train":
        add("--convention", choices=tuple(CONVENTIONS), default=None,
            help=CONVENTION_HELP + " (validation metrics; evaluate.py takes --convention too)")
    if stage == "search":
        add("--learn-loss-weights", action=argparse.BooleanOptionalAction, default=None,
            help="the three loss weights become upper variables (3 x softmax of logits, so they sum to 3), "
                 "learned with the alphas on the validation objective (the fusion loss with the fixed weights); "
                 "writes hparams.json, which train.py --from uses")
        add("--latency-weight", type=_non_negative, default=None, metavar="W",
            help="add W x expected latency (ms) of the supernet to the upper loss (default 0: no latency term); "
                 "the ops are timed on this device at the start and the table is kept in "
                 "config.json/checkpoint.pt of the run folder")
        add("--latency-size", type=positive_int, default=None, metavar="PX",
            help="side of the square input the ops are timed on (default 64)")
        add("--arch-lr", type=float, default=None, help="Adam learning rate of the alphas (default 3e-3)")
        add("--hyper-lr", type=float, default=None, help="Adam learning rate of the loss-weight logits (default 0.05)")
        add("--lower-optimizer", choices=("sgd", "adam"), default=None,
            help="optimizer of the supernet weights (default sgd)")
