"""The classification reference task: DARTS on CIFAR-10 (Liu et al., ICLR 2019).

Search: a ``DartsSupernet``; the first half of the training set trains the weights (lower level),
the second half the architecture (upper level), as DARTS's ``train_portion = 0.5``. Retraining: a
``DartsNetwork`` on the whole training set, top-1 accuracy on the test set. The embedded synthetic
set replaces CIFAR-10 when no folder is given. Two recipes:

* ``"darts"``: DARTS's own settings (``train_search.py``, ``train.py``): search 8 cells x 16
  channels, second order (``darts2``), 50 epochs at batch 64; retraining 20 cells x 36 channels with
  auxiliary head, cutout and drop path, 600 epochs at batch 96. A GPU recipe: the paper (ICLR 2019,
  Table 1, GTX 1080 Ti) gives about 1 GPU-day per second-order search (its 4 GPU-days are four
  runs; first order 1.5 GPU-days for four); on a 2-core CPU one search step takes about two minutes.
* ``"default"``: sized for a CPU, each stage under 10 minutes on one idle core (on the embedded
  data: search 544, retraining 357 CPU-seconds; docs/classification.md, "Recipes"): search 4
  cells x 6 channels, first order (``darts1``), 5 epochs at batch 32, the alphas at Adam 3e-3 (ten
  times DARTS's, so that 155 steps move them); retraining 5 cells x 8 channels, 15 epochs at batch
  64, no auxiliary head, cutout or drop path. On CIFAR-10 (25 times the embedded training set) each
  epoch takes 25 times as long.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import bilevel
from bilevel import Group, LowerLevel
from classification import data as cdata
from datasets.splits import split_train_val
from nas.network import DartsNetwork, count_parameters
from nas.ops import DARTS_PRIMITIVES
from nas.supernet import DartsSupernet
from tasks.base import Scoring, SearchData, SearchSetup, Task, TestData, TrainData, TrainGroup, TrainSetup
from tasks.results import SearchResult
from tasks.settings import (Recipes, TrainingSettings, at_least, doc, flag_group, in_range, non_negative_int,
                            positive_int)
from tasks.training import ARCH_BETAS, make_optimizer, make_schedule

__all__ = ["ClassificationTask", "ClassificationSettings", "NUM_CLASSES"]

NUM_CLASSES = 10


@dataclass
class ClassificationSettings(TrainingSettings):
    """DARTS's settings (``train_search.py`` / ``train.py``); the recipes hold both stages (module docstring)."""

    # TrainingSettings' fields with DARTS's defaults
    lr: float = field(default=0.025, metadata=doc("SGD learning rate of the weights"))
    arch_lr: float = field(default=3e-4, metadata=doc("Adam learning rate of the alphas"))
    grad_clip: float | None = field(default=None, metadata=doc("search: hypergradient clip; train: weights clip"))
    eval_batch_size: int = field(default=256, metadata=doc("evaluation batch size"))
    val_fraction: float = field(default=0.0, metadata=doc("train: seeded share of the training set held out to "
                                                          "select the model (0: none, the latest is kept)"))
    # the task's own
    lr_min: float = field(default=0.001, metadata=doc("cosine floor"))
    channels: int = field(default=16, metadata=doc("initial channels"))
    layers: int = field(default=8, metadata=doc("cells"))
    auxiliary_weight: float = field(default=0.0, metadata=doc("auxiliary head loss weight (train)"))
    cutout: int = field(default=0, metadata=doc("cutout side in pixels"))
    drop_path: float = field(default=0.0, metadata=doc("final drop-path probability (train)"))
    train_portion: float = field(default=0.5, metadata=doc("search: share of the training set for the weights"))
    synthetic_train: int = field(default=2000, metadata=doc("embedded training images"))
    synthetic_test: int = field(default=500, metadata=doc("embedded test images"))

    def check(self) -> None:
        super().check()
        for key in ("channels", "layers", "synthetic_train", "synthetic_test"):
            at_least(self, key, 1)
        at_least(self, "cutout", 0)
        in_range(self, "train_portion", 0.0, 1.0)
        in_range(self, "drop_path", 0.0, 1.0)
        for key in ("lr_min", "auxiliary_weight"):
            in_range(self, key, 0.0, float("inf"))


RECIPES: Recipes = {
    "default": {
        "search": {"method": "darts1", "epochs": 5, "batch_size": 32, "lr": 0.025, "lr_min": 0.001,
                   "arch_lr": 3e-3, "grad_clip": None, "lower_grad_clip": 5.0, "channels": 6, "layers": 4},
        "train": {"epochs": 15, "batch_size": 64, "lr": 0.025, "lr_min": 0.0, "grad_clip": 5.0,
                  "lower_grad_clip": None, "channels": 8, "layers": 5, "auxiliary_weight": 0.0, "cutout": 0,
                  "drop_path": 0.0, "train_portion": 1.0},
    },
    "darts": {
        "search": {"method": "darts2", "epochs": 50, "batch_size": 64, "lr": 0.025, "lr_min": 0.001,
                   "grad_clip": None, "lower_grad_clip": 5.0, "channels": 16, "layers": 8},
        "train": {"epochs": 600, "batch_size": 96, "lr": 0.025, "lr_min": 0.0, "grad_clip": 5.0,
                  "lower_grad_clip": None, "channels": 36, "layers": 20, "auxiliary_weight": 0.4, "cutout": 16,
                  "drop_path": 0.2, "train_portion": 1.0},
    },
}


class ClassificationTask(Task):
    """DARTS's CIFAR-10 classification as a ``Task`` (see the module docstring and
    ``ClassificationSettings``). The test set is read only by ``evaluate.py``: retraining validates
    on a seeded slice of the training set when ``val_fraction > 0``, else keeps the latest model
    (as DARTS, which reports the last epoch)."""

    name = "classification"
    space = "darts"
    cell_names = ("normal", "reduce")
    primitives = DARTS_PRIMITIVES
    Settings = ClassificationSettings
    recipes = RECIPES
    metrics = {"top1": "max"}
    select = "top1"
    cell_titles = {"normal": "keeps the resolution and the channels",
                   "reduce": "reduction, halves the resolution and doubles the channels"}
    data_help = ("CIFAR-10 in torchvision's format: DIR/cifar-10-batches-py/ (or DIR itself) with "
                 "data_batch_1..5, test_batch, batches.meta; without --data an embedded synthetic "
                 "10-class set of 32x32 patterns is used")

    # -- command line ---------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        """``--channels``, ``--layers``, ``--cutout`` (search and train), ``--train-portion``
        (search), ``--auxiliary-weight``, ``--drop-path``, ``--val-fraction`` (train); nothing for
        evaluate (the checkpoint holds its settings). Defaults ``None``: the recipe's value."""
        d = self.settings(stage)
        add = flag_group(parser, self.name, stage, "default (sized for a CPU: under 10 minutes per stage on an idle "
                         "core), darts (DARTS's settings, a GPU recipe: the paper reports about 1 GPU-day per "
                         "second-order search on a GTX 1080 Ti)")
        add("--channels", type=positive_int, default=None, metavar="C",
            help=f"initial channels of the network (default {d.channels}; recipe "
                 "darts, as DARTS: 16 to search, 36 to retrain)")
        add("--layers", type=positive_int, default=None, metavar="L",
            help=f"number of cells, two of them reductions (default {d.layers}; "
                 "recipe darts, as DARTS: 8 to search, 20 to retrain)")
        add("--cutout", type=non_negative_int, default=None, metavar="PX",
            help=f"side of the cutout square on training images, 0 for none (default {d.cutout})")
        if stage == "search":
            add("--train-portion", type=float, default=None, metavar="P",
                help="share of the training set that trains the weights; the rest "
                     f"trains the architecture (default {d.train_portion})")
        else:
            add("--auxiliary-weight", type=float, default=None, metavar="W",
                help="weight of the auxiliary head's loss, 0 drops the head "
                     f"(default {d.auxiliary_weight})")
            add("--drop-path", type=float, default=None, metavar="P",
                help="drop-path probability reached at the last epoch, ramped "
                     f"linearly from 0 (default {d.drop_path})")
            add("--val-fraction", type=float, default=None, metavar="P",
                help="seeded share of the training set held out to select the model "
                     f"(default {d.val_fraction}: none, the latest model is kept, as DARTS)")

    # -- data ------------------------------------------------------------------------------
    def _train_set(self, s: ClassificationSettings) -> cdata.ImageSet:
        """The training set with crop, flip and ``cutout``, augmentation seeded by ``seed``."""
        if s.data is None:
            return cdata.synthetic("train", s.synthetic_train, augment=True, cutout=s.cutout, seed=s.seed)
        return cdata.cifar10(s.data, train=True, augment=True, cutout=s.cutout, seed=s.seed)

    def search_data(self, s: ClassificationSettings) -> SearchData:
        """Lower set (the first ``train_portion`` of the training set) and upper set (the rest),
        both with crop and flip (and cutout if configured), as DARTS's search."""
        return SearchData(*cdata.split_by_portion(self._train_set(s), s.train_portion))

    def train_data(self, s: ClassificationSettings) -> TrainData:
        """The training set (crop, flip, cutout) less a seeded validation slice (without
        augmentation) when ``val_fraction > 0``; the test set is never read here."""
        train = self._train_set(s)
        if s.val_fraction <= 0:
            return TrainData(train, None, note="validation: none (val_fraction 0); the latest model is kept, as DARTS")
        train_idx, val_idx = split_train_val(len(train), s.val_fraction, s.seed)
        plain = (cdata.synthetic("train", s.synthetic_train, seed=s.seed) if s.data is None
                 else cdata.cifar10(s.data, train=True))
        note = (f"validation: {len(val_idx)} of the {len(train)} training images held out "
                f"(val_fraction {s.val_fraction}, seed {s.seed}); the test set is never read")
        return TrainData(cdata.Split(train, train_idx), cdata.Split(plain, val_idx), note=note)

    def training_note(self, s: ClassificationSettings, data: TrainData, network: nn.Module,
                      result: SearchResult) -> str:
        aux = f" + {s.auxiliary_weight} x auxiliary head" if s.auxiliary_weight > 0 else ""
        return f"optimising: cross entropy{aux} (SGD)"

    def test_data(self, data: str | None, s: ClassificationSettings) -> TestData:
        """The CIFAR-10 test set of folder ``data``, or the synthetic test split when None."""
        if data is None:
            return TestData(cdata.synthetic("test", s.synthetic_test))
        return TestData(cdata.cifar10(data, train=False))

    # -- search ----------------------------------------------------------------------------
    def build_search(self, s: ClassificationSettings, device: torch.device) -> SearchSetup:
        """Supernet (seeded by ``seed``), one upper group ``"arch"`` (the alphas, Adam) over one lower
        level (the weights, SGD with a cosine schedule over ``epochs``, stepped per epoch)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            supernet = DartsSupernet(C=s.channels, num_classes=NUM_CLASSES, layers=s.layers,
                                     primitives=self.primitives)
        supernet = supernet.to(device)
        weights, arch = supernet.weight_parameters(), supernet.arch_parameters()
        loss = _cross_entropy(supernet)
        problem = bilevel.BilevelProblem(lower=weights, upper=arch, lower_loss=loss, upper_loss=loss,
                                         buffers=dict(supernet.named_buffers()))
        sgd = make_optimizer("sgd", list(weights.values()), s.lr, s.weight_decay, s.momentum)
        adam = make_optimizer("adam", list(arch.values()), s.arch_lr, s.arch_weight_decay, betas=ARCH_BETAS)
        level = LowerLevel("weights", sgd, grad_clip=s.lower_grad_clip)
        return SearchSetup(supernet, [Group("arch", problem, adam, level, grad_clip=s.grad_clip)],
                           make_schedule("cosine", sgd, s.epochs, s.lr_min))

    # -- train -----------------------------------------------------------------------------
    def build_network(self, result: SearchResult, s: ClassificationSettings) -> nn.Module:
        """``DartsNetwork`` of the genotype (``channels``, ``layers``; auxiliary head when
        ``auxiliary_weight > 0``; it expects 32x32 inputs), seeded by ``seed``."""
        self.check_result(result)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            return DartsNetwork(C=s.channels, num_classes=NUM_CLASSES, layers=s.layers, genotype=result.genotype,
                                auxiliary=s.auxiliary_weight > 0)

    def build_training(self, network: nn.Module, s: ClassificationSettings, steps_per_epoch: int) -> TrainSetup:
        """SGD (lr, momentum, weight decay) with cosine annealing to ``lr_min`` over ``epochs``."""
        optimizer = make_optimizer("sgd", network.parameters(), s.lr, s.weight_decay, s.momentum)
        return TrainSetup([TrainGroup("weights", optimizer, grad_clip=s.grad_clip)],
                          make_schedule("cosine", optimizer, s.epochs, s.lr_min))

    def on_epoch(self, network: nn.Module, epoch: int, s: ClassificationSettings) -> None:
        """Drop path ``drop_path * epoch / epochs`` (epoch counted from 0), as DARTS's ``train.py``."""
        network.drop_path_prob = s.drop_path * epoch / max(s.epochs, 1)

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: ClassificationSettings) -> dict[str, Tensor]:
        """``loss``: cross entropy of the logits, plus ``auxiliary_weight`` x that of the auxiliary head."""
        out = network(batch["image"])
        if isinstance(out, tuple):
            logits, aux = out
            return {"loss": F.cross_entropy(logits, batch["label"])
                    + s.auxiliary_weight * F.cross_entropy(aux, batch["label"])}
        return {"loss": F.cross_entropy(out, batch["label"])}

    def count_parameters(self, network: nn.Module) -> int:
        """Parameters without the auxiliary head (DARTS_V2 at 36 x 20: 3.3M)."""
        return count_parameters(network, exclude_auxiliary=True)

    # -- evaluate --------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any], s: ClassificationSettings,
                       scoring: Scoring) -> tuple[list[dict[str, Any]], Any]:
        """Per image ``{"name", "top1"}`` (100.0 if the arg-max class is the label, else 0.0);
        outputs: the predicted classes, int64 ``[N]``."""
        out = network(batch["image"])
        logits = out[0] if isinstance(out, tuple) else out
        pred = logits.argmax(dim=1)
        correct = (pred == batch["label"].to(pred.device)).tolist()
        records = [{"name": name, "top1": 100.0 if ok else 0.0} for name, ok in zip(batch["name"], correct)]
        return records, pred.cpu()

    output_name = "logits"

    def example_size(self, s: ClassificationSettings) -> tuple[int, ...]:
        return (32, 32)

    def evaluation_note(self, s: ClassificationSettings, scoring: Scoring) -> str:
        return "top1: % of test images whose highest logit is the true class (DARTS reports error = 100 - top1)"


def _cross_entropy(supernet: nn.Module):
    """The lower and upper loss of the search: cross entropy of the supernet run with the given
    weights, buffers and alphas on ``batch["image"]`` ``[N, 3, H, W]`` vs ``batch["label"]`` ``[N]``."""

    def loss(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
        logits = bilevel.call(supernet, {**lower, **upper}, batch["image"])
        return F.cross_entropy(logits, batch["label"])

    return loss


