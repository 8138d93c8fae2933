"""Settings, recipes and command-line flags of the registration task.

Two recipes:

* ``"default"``: fast on a CPU (embedded 64x64 pairs, one thread: search about 5 min, retraining
  about 3 min). Search: the smoothness weight ``lambda`` (learned as ``log lambda``, start 1.0:
  VoxelMorph's value for NCC) over the network weights, lower loss local NCC (window 9) +
  ``lambda`` x gradient L2 of the velocity, upper loss ``1 - soft Dice`` of the warped label maps
  + 1.0 x folding penalty on disjoint training subjects (the two halves of the training set).
  Method ``cg`` (10 Hessian-vector products), weights Adam 3e-3, 600 steps at batch 4; the
  hyper-parameters move by Adam 0.05 (betas 0.5, 0.999) every 3rd step, only after 25 epochs
  (300 steps) of warm-up, so the implicit hypergradient is taken near a lower-level solution as
  the implicit function theorem assumes. Retraining: Adam 3e-3 with a cosine decay per epoch to 0,
  2000 steps at batch 4, model selected on validation Dice over 32 fixed validation pairs.
  Why these values (measured on the embedded 2D default, one thread; docs/registration.md,
  "Results on the embedded 2D data"): at 800 steps of constant 1e-3 the network was far from converged
  (validation Dice still rising at 3000 steps); with 2000 cosine steps, 3e-3 beats 1e-3 (best
  validation Dice 0.835 against 0.825 over the 32 pairs; 8 pairs could not separate weights whose
  Dice differs by 0.005, and the test split stays at its 8 pairs). A sweep of fixed weights at
  this budget puts the best validation Dice near ``lambda`` 0.3, only 0.003-0.005 above the start
  1.0 (two seeds; 0.1 and 3 lose 0.004 and 0.018), so the start is near-optimal and little is
  left to learn. The hypergradient cannot find that
  optimum at a CPU budget: the lower Hessian's top eigenvalue grows to about 3000-4300 within
  300 steps, so the former ``neumann`` setting (alpha 0.01, 3 terms) diverges (alpha x eigenvalue
  about 30, far above 2) and drove ``lambda`` to 0.013, losing 0.025 validation Dice; a
  convergent series (alpha 2e-4) drove it the other way, to 24 (validation Dice 0.70); at
  trained networks a convergent series says "lower lambda" at every value from 3 down to 0.1
  (short-horizon bias), and ``cg`` is noise-dominated there. The ``cg`` search above moves
  ``lambda`` (up to about 2.2 and back) but ends near its start, and retraining then gives the
  start's Dice: it does no harm, and it does not beat the start. From a start the data does not
  favour (``--smooth-weight 4``: best validation Dice 0.8067 when fixed) the same search learns
  1.65, and retraining with it reaches 0.8318 (test Dice 0.8676 against 0.8398): the hypergradient
  moves it into 1-2 (from 1.0 it wandered up to 2.2 and back), not to the sweep's 0.3. With
  ``--method neumann`` pass
  ``--option alpha=2e-4`` (the series needs alpha < 2 / top eigenvalue).
* ``"autoreg"``: the published settings of AutoReg (Fan, Li, Li, Wang, Liu, Luo, Huang, IEEE TIP
  2023; ``src/train_search_loss.py`` and ``src/upperoptimizer.py`` of its code): batch 1, 45
  epochs, weights Adam 1e-4, no weight decay, hyper-parameters Adam 1e-3 with betas (0.5, 0.999)
  and no weight decay, updated only from epoch 15 on (here: their learning rate is 0 before
  ``upper_warmup_epochs``; Adam's moments still accumulate then), half the training volumes for
  the lower and half for the upper level, Dice of warped label maps as the upper objective.
  Its cell search (``src_archi/train_search.py``) uses weights Adam 3e-4 clipped to 5 and alphas
  Adam 1e-4: ``arch_lr`` and ``lower_grad_clip`` below. Retraining takes VoxelMorph's published
  settings (Balakrishnan et al., IEEE TMI 2019; Dalca et al., MICCAI 2018 / MedIA 2019; its
  ``train.py``): Adam 1e-4, batch 1, 1500 epochs of 100 steps, integration in 7 steps, U-Net
  encoder widths (16, 32, 32, 32). Differences that remain: AutoReg differentiates a plain SGD
  virtual step of size lr through its Adam-trained network (DARTS's second order); the methods
  here follow the real optimizer, so the recipe uses ``cg`` (implicit, optimizer-agnostic).
  AutoReg weights four loss terms of its multi-resolution network (NCC, MIND, multi-scale terms,
  gradient) starting at 10, 15, 3.2, 0.8; here one similarity (weight 1) and the smoothness
  weight (start 1.0: VoxelMorph's value for NCC; for MSE VoxelMorph uses 0.01) are learned. The
  TPAMI 2021 bilevel registration work (Liu, Li, Fan et al., "Learning Deformable Image
  Registration from Optimization: Perspective, Modules, Bilevel Training and Beyond") states the
  formulation used here (hyper-parameters of the training energy as upper variables on a
  validation objective) but no training figures this suite could take over.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from restoration.settings import RestorationSettings
from tasks.settings import Recipes, SettingsError, at_least, doc, flag_group, in_range, one_of, positive, positive_float

__all__ = ["LOWER_OPTIMIZERS", "RECIPES", "RegistrationSettings", "SGD_METHODS", "add_task_arguments"]

#: methods that differentiate through the lower optimizer's update: ``auto`` gives them SGD
#: (``--lower-optimizer adam`` differentiates through Adam instead)
SGD_METHODS = ("darts2", "rad", "trad", "fad", "bda", "iaptt")
#: choices of ``lower_optimizer``
LOWER_OPTIMIZERS = ("auto", "adam", "sgd")


@dataclass
class RegistrationSettings(RestorationSettings):
    """Settings of the registration task (see the module docstring for the recipes)."""

    dims: int = field(default=2, metadata=doc("2 (images) or 3 (volumes)"))
    atlas: str | None = field(default=None, metadata=doc("atlas file/folder: scan-to-atlas pairs (None: scan-to-scan)"))
    velocity: bool = field(default=True, metadata=doc("stationary velocity integrated by scaling and squaring"))
    int_steps: int = field(default=7, metadata=doc("scaling and squaring steps"))
    channels: list[int] = field(default_factory=lambda: [16, 32, 32, 32], metadata=doc("U-Net widths per level"))
    search_cells: bool = field(default=False, metadata=doc("also search the AutoReg cells"))
    similarity: str = field(default="ncc", metadata=doc("ncc (local, window ncc_window) or mse"))
    ncc_window: int = field(default=9, metadata=doc("local NCC window"))
    smooth_weight: float = field(default=1.0, metadata=doc("search: start value of lambda (smoothness weight)"))
    jacobian_weight: float | None = field(default=None, metadata=doc("search: start of the Jacobian weight (None: no term)"))
    folding_weight: float = field(default=1.0, metadata=doc("weight of the folding penalty in the upper objective"))
    learn_weights: bool = field(default=True, metadata=doc("search: learn the loss weights"))
    # data
    val_fraction: float = field(default=0.1, metadata=doc("share of a folder's volumes for validation"))
    test_fraction: float = field(default=0.2, metadata=doc("share of a folder's volumes for testing"))
    val_pairs: int = field(default=16, metadata=doc("fixed scan-to-scan validation/test pairs"))
    synthetic_count: int | None = field(default=None, metadata=doc("embedded training pairs (None: 96 in 2D, 16 in 3D)"))
    size: int | None = field(default=None, metadata=doc("embedded side length (None: 64 in 2D, 32 in 3D)"))
    # optimisation
    lr: float = field(default=1e-3, metadata=doc("learning rate of the network weights"))
    lr_schedule: str = field(default="constant", metadata=doc("train: constant, or cosine (per epoch, to 0 at the end)"))
    lower_optimizer: str = field(default="auto", metadata=doc("adam, sgd or auto (sgd for methods that need it)"))
    weight_decay: float = field(default=0.0, metadata=doc("weight decay of the weights"))
    hyper_lr: float = field(default=0.05, metadata=doc("search: Adam learning rate of the log loss weights"))
    arch_weight_decay: float = field(default=0.0, metadata=doc("search: weight decay of the alphas"))
    upper_every: int = field(default=1, metadata=doc("search: upper step period in steps"))
    upper_warmup_epochs: int = field(default=0, metadata=doc("search: epochs before the upper variables move"))

    def check(self) -> None:
        super().check()
        one_of(self, "lower_optimizer", LOWER_OPTIMIZERS)
        one_of(self, "dims", (2, 3))
        for key in ("int_steps", "val_pairs", "upper_every"):
            at_least(self, key, 1)
        at_least(self, "upper_warmup_epochs", 0)
        at_least(self, "size", 8, optional=True)
        if self.ncc_window < 1 or self.ncc_window % 2 == 0:
            raise SettingsError(f"setting ncc_window must be an odd integer >= 1, got {self.ncc_window!r}")
        if (not isinstance(self.channels, (list, tuple)) or len(self.channels) < 2
                or not all(isinstance(c, int) and c >= 1 for c in self.channels)):
            raise SettingsError(f"setting channels must be a list of at least 2 positive integers, got {self.channels!r}")
        for key in ("smooth_weight", "hyper_lr"):
            positive(self, key)
        positive(self, "jacobian_weight", optional=True)
        in_range(self, "test_fraction", 0.0, 0.5)
        in_range(self, "folding_weight", 0.0, float("inf"))
        one_of(self, "similarity", ("ncc", "mse"))
        for key in ("velocity", "search_cells", "learn_weights"):
            one_of(self, key, (True, False))
        recipe = RECIPES.get(self.recipe, {}).get("search", {})
        if self.method is not None and self.method != recipe.get("method"):
            # the recipe's method options belong to the recipe's method: another --method starts from its own
            own = recipe.get("method_options", {})
            self.method_options = {k: v for k, v in self.method_options.items() if own.get(k, object()) != v}
        if not self.learn_weights and not self.search_cells:
            raise SettingsError("nothing to search: learn_weights is false and search_cells is false; "
                                "drop --no-learn-weights or add --search-cells")

    def lower_optimizer_for(self, method: str | None) -> str:
        """``adam`` or ``sgd``: ``auto`` picks SGD for the methods in ``SGD_METHODS``."""
        if self.lower_optimizer != "auto":
            return self.lower_optimizer
        return "sgd" if method in SGD_METHODS else "adam"


RECIPES: Recipes = {
    "default": {
        "search": {"method": "cg", "method_options": {"iters": 10}, "epochs": 50, "max_steps": 600,
                   "upper_warmup_epochs": 25, "upper_every": 3, "batch_size": 4, "lr": 3e-3, "hyper_lr": 0.05,
                   "smooth_weight": 1.0},
        "train": {"epochs": 84, "max_steps": 2000, "batch_size": 4, "lr": 3e-3, "lr_schedule": "cosine"},
    },
    "autoreg": {
        "search": {"method": "cg", "epochs": 45, "batch_size": 1, "lr": 1e-4, "lower_optimizer": "adam",
                   "hyper_lr": 1e-3, "arch_lr": 1e-4, "arch_weight_decay": 0.0, "weight_decay": 0.0,
                   "upper_warmup_epochs": 15, "grad_clip": None, "lower_grad_clip": 5.0, "smooth_weight": 1.0},
        "train": {"epochs": 1500, "max_steps": 150000, "batch_size": 1, "lr": 1e-4, "lr_schedule": "constant",
                  "lower_optimizer": "adam",
                  "grad_clip": None, "int_steps": 7, "channels": [16, 32, 32, 32]},
    },
}


def _channels(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers like 16,32,32,32, got {text}")
    return values


def add_task_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    """Flags of the registration task (dest = settings key, default None = the recipe's value)."""
    add = flag_group(parser, "registration", stage, "default (fast on a CPU), autoreg (AutoReg's search, "
                     "VoxelMorph's training, as published)")
    add("--dims", type=int, choices=(2, 3), default=None, help="2D images or 3D volumes (default 2)")
    add("--atlas", default=None, metavar="FILE",
        help="atlas (npz with vol and seg, or a subject folder): scan-to-atlas pairs (default: scan-to-scan)")
    add("--velocity", action=argparse.BooleanOptionalAction, default=None,
        help="predict a stationary velocity integrated by scaling and squaring (default) or a displacement")
    add("--similarity", choices=("ncc", "mse"), default=None, help="similarity of the lower loss (default ncc)")
    add("--channels", type=_channels, default=None, metavar="C,C,...", help="U-Net widths (default 16,32,32,32)")
    add("--lr", type=positive_float, default=None,
        help="learning rate of the network weights (default 3e-3)")
    add("--lower-optimizer", choices=LOWER_OPTIMIZERS, default=None,
        help="optimizer of the network weights (default auto: sgd for darts2/rad/trad/fad/bda/iaptt, else adam)")
    add("--size", type=int, default=None, metavar="PX", help="embedded data: side length (default 64 2D, 32 3D)")
    add("--synthetic-count", type=int, default=None, metavar="N", help="embedded data: training pairs (default 96 in 2D, 16 in 3D)")
    if stage == "train":
        add("--lr-schedule", choices=("constant", "cosine"), default=None,
            help="learning rate per epoch: constant, or cosine to 0 at the last epoch (default recipe: cosine)")
    if stage == "search":
        add("--search-cells", action=argparse.BooleanOptionalAction, default=None,
            help="also search the AutoReg cells (result: genotype and loss weights)")
        add("--learn-weights", action=argparse.BooleanOptionalAction, default=None,
            help="learn the loss weights (default on)")
        add("--smooth-weight", type=positive_float, default=None, metavar="LAMBDA",
            help="start value of the smoothness weight lambda (default 1.0)")
        add("--jacobian-weight", type=positive_float, default=None, metavar="W",
            help="add a Jacobian (folding) penalty to the lower loss, its weight learned from W (default: none)")
        add("--folding-weight", type=float, default=None, metavar="W",
            help="weight of the folding penalty in the upper objective (default 1.0)")
        add("--hyper-lr", type=positive_float, default=None, help="Adam learning rate of the log loss weights (default 0.05; autoreg recipe 1e-3)")
        add("--arch-lr", type=positive_float, default=None, help="Adam learning rate of the alphas (default 3e-3; autoreg recipe 1e-4)")
        add("--upper-every", type=int, default=None, metavar="K", help="upper step every K steps (default 1)")
