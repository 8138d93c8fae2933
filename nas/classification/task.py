"""The classification reference task: DARTS on CIFAR-10 (Liu et al., ICLR 2019).

Search: an 8-cell, 16-channel ``DartsSupernet``; the first half of the training set trains the
weights (lower level), the second half the architecture (upper level), as DARTS's
``train_portion = 0.5``. Retraining: a 20-cell, 36-channel ``DartsNetwork`` with auxiliary head,
cutout and drop path on the whole training set, top-1 accuracy on the test set. The defaults are
DARTS's (``train_search.py``, ``train.py``); the embedded synthetic set replaces CIFAR-10 when no
folder is given.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

import bilevel
from nas.classification import data as cdata
from nas.genotype import Genotype
from nas.network import DartsNetwork, count_parameters
from nas.ops import DARTS_PRIMITIVES
from nas.supernet import DartsSupernet
from nas.task import Config, SearchSetup, Task, TrainSetup, UpperGroup

__all__ = ["ClassificationTask", "NUM_CLASSES", "ARCH_BETAS"]

NUM_CLASSES = 10
#: Adam betas of DARTS's architecture optimizer.
ARCH_BETAS = (0.5, 0.999)

_COMMON: Config = {
    "momentum": 0.9,
    "weight_decay": 3e-4,
    "eval_batch_size": 256,
    "synthetic_train": 2000,
    "synthetic_test": 500,
}


class ClassificationTask(Task):
    """DARTS's CIFAR-10 classification as a ``Task`` (see the module docstring).

    Config keys (``search_defaults`` / ``train_defaults``, overridden by the command line):
    ``epochs``, ``batch_size``, ``lr`` (weights, SGD), ``momentum``, ``weight_decay``, ``lr_min``
    (cosine schedule floor), ``arch_lr``, ``arch_weight_decay`` (Adam on the alphas),
    ``grad_clip`` (search: of the hypergradient, none as in DARTS; train: of the weights),
    ``lower_grad_clip`` (search: of the weights), ``channels``, ``layers``, ``auxiliary_weight``,
    ``cutout``, ``drop_path`` (final drop-path probability, ramped linearly over the epochs),
    ``eval_batch_size``, ``train_portion`` (search: share of the training set for the weights),
    ``synthetic_train`` / ``synthetic_test`` (sizes of the embedded set); plus ``data`` (CIFAR-10
    folder or None) and ``seed`` given by the commands.
    """

    name = "classification"
    space = "darts"
    cell_names = ("normal", "reduce")
    primitives = DARTS_PRIMITIVES
    default_method = "darts2"
    metric = "top1"
    metric_keys = ("top1",)
    data_help = ("CIFAR-10 in torchvision's format: DIR/cifar-10-batches-py/ (or DIR itself) with "
                 "data_batch_1..5, test_batch, batches.meta; without --data an embedded synthetic "
                 "10-class set of 32x32 patterns is used")
    search_defaults: Config = {
        **_COMMON,
        "epochs": 50, "batch_size": 64, "lr": 0.025, "lr_min": 0.001,
        "arch_lr": 3e-4, "arch_weight_decay": 1e-3, "grad_clip": None, "lower_grad_clip": 5.0,
        "channels": 16, "layers": 8, "auxiliary_weight": 0.0, "cutout": 0, "drop_path": 0.0,
        "train_portion": 0.5,
    }
    train_defaults: Config = {
        **_COMMON,
        "epochs": 600, "batch_size": 96, "lr": 0.025, "lr_min": 0.0,
        "arch_lr": None, "arch_weight_decay": None, "grad_clip": 5.0, "lower_grad_clip": None,
        "channels": 36, "layers": 20, "auxiliary_weight": 0.4, "cutout": 16, "drop_path": 0.2,
        "train_portion": 1.0,
    }

    # -- command line ---------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        """``--channels``, ``--layers``, ``--cutout`` (search and train), ``--train-portion``
        (search), ``--auxiliary-weight``, ``--drop-path`` (train); nothing for evaluate (the
        checkpoint holds its config). Defaults ``None``: the task's default for the stage."""
        if stage not in ("search", "train"):
            return
        d = self.search_defaults if stage == "search" else self.train_defaults
        group = parser.add_argument_group(f"task {self.name!r} ({stage})")
        group.add_argument("--channels", type=_positive_int, default=None, metavar="C",
                           help=f"initial channels of the network (default {d['channels']}; DARTS: "
                                "16 to search, 36 to retrain)")
        group.add_argument("--layers", type=_positive_int, default=None, metavar="L",
                           help=f"number of cells, two of them reductions (default {d['layers']}; "
                                "DARTS: 8 to search, 20 to retrain)")
        group.add_argument("--cutout", type=_non_negative_int, default=None, metavar="PX",
                           help=f"side of the cutout square on training images, 0 for none "
                                f"(default {d['cutout']})")
        if stage == "search":
            group.add_argument("--train-portion", type=float, default=None, metavar="P",
                               help="share of the training set that trains the weights; the rest "
                                    f"trains the architecture (default {d['train_portion']})")
        else:
            group.add_argument("--auxiliary-weight", type=float, default=None, metavar="W",
                               help="weight of the auxiliary head's loss, 0 drops the head "
                                    f"(default {d['auxiliary_weight']})")
            group.add_argument("--drop-path", type=float, default=None, metavar="P",
                               help="drop-path probability reached at the last epoch, ramped "
                                    f"linearly from 0 (default {d['drop_path']})")

    # -- data ------------------------------------------------------------------------------
    def _train_set(self, config: Config, cutout: int) -> cdata.ImageSet:
        seed = int(config.get("seed") or 0)
        if config.get("data") is None:
            count = int(config.get("synthetic_train", _COMMON["synthetic_train"]))
            return cdata.synthetic("train", count, augment=True, cutout=cutout, seed=seed)
        return cdata.cifar10(config["data"], train=True, augment=True, cutout=cutout, seed=seed)

    def search_data(self, config: Config) -> tuple[Dataset, Dataset]:
        """Lower set (the first ``train_portion`` of the training set) and upper set (the rest),
        both with crop and flip (and cutout if configured), as DARTS's search."""
        base = self._train_set(config, int(config.get("cutout") or 0))
        return cdata.split_by_portion(base, float(config.get("train_portion") or 0.5))

    def train_data(self, config: Config) -> tuple[Dataset, Dataset]:
        """The whole training set (crop, flip, cutout) and the test set, as DARTS retrains."""
        train = self._train_set(config, int(config.get("cutout") or 0))
        return train, self.test_data(config.get("data"), config)

    def test_data(self, data: str | None, config: Config) -> Dataset:
        """The CIFAR-10 test set of folder ``data``, or the synthetic test split when None."""
        if data is None:
            count = int(config.get("synthetic_test", _COMMON["synthetic_test"]))
            return cdata.synthetic("test", count)
        return cdata.cifar10(data, train=False)

    # -- search ----------------------------------------------------------------------------
    def build_search(self, config: Config, device: torch.device) -> SearchSetup:
        """Supernet (seeded by ``config["seed"]``), one upper group ``"arch"`` (the alphas, Adam),
        SGD on the weights with a cosine schedule over ``epochs`` (stepped per epoch)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config.get("seed") or 0))
            supernet = DartsSupernet(C=int(config["channels"]), num_classes=NUM_CLASSES,
                                     layers=int(config["layers"]), primitives=self.primitives)
        supernet = supernet.to(device)
        weights, arch = supernet.weight_parameters(), supernet.arch_parameters()
        loss = _cross_entropy(supernet)
        problem = bilevel.BilevelProblem(lower=weights, upper=arch, lower_loss=loss, upper_loss=loss,
                                         buffers=dict(supernet.named_buffers()))
        lower_optimizer = torch.optim.SGD(list(weights.values()), lr=config["lr"],
                                          momentum=config["momentum"], weight_decay=config["weight_decay"])
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            lower_optimizer, T_max=float(config["epochs"]), eta_min=config["lr_min"])
        arch_optimizer = torch.optim.Adam(list(arch.values()), lr=config["arch_lr"], betas=ARCH_BETAS,
                                          weight_decay=config["arch_weight_decay"])
        return SearchSetup(supernet, [UpperGroup("arch", problem, arch_optimizer, every=1)],
                           lower_optimizer, scheduler)

    # -- train -----------------------------------------------------------------------------
    def build_network(self, genotype: Genotype, config: Config) -> nn.Module:
        """``DartsNetwork`` of ``genotype`` (``channels``, ``layers``; auxiliary head when
        ``auxiliary_weight > 0``; it expects 32x32 inputs), seeded by ``config["seed"]``."""
        self.check_genotype(genotype)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(config.get("seed") or 0))
            return DartsNetwork(C=int(config["channels"]), num_classes=NUM_CLASSES,
                                layers=int(config["layers"]), genotype=genotype,
                                auxiliary=float(config.get("auxiliary_weight") or 0.0) > 0)

    def build_training(self, network: nn.Module, config: Config, steps_per_epoch: int) -> TrainSetup:
        """SGD (lr, momentum, weight decay) with cosine annealing to ``lr_min`` over ``epochs``."""
        optimizer = torch.optim.SGD(network.parameters(), lr=config["lr"], momentum=config["momentum"],
                                    weight_decay=config["weight_decay"])
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=float(config["epochs"]), eta_min=config.get("lr_min") or 0.0)
        return TrainSetup(optimizer, scheduler)

    def on_epoch(self, network: nn.Module, epoch: int, config: Config) -> None:
        """Drop path ``drop_path * epoch / epochs`` (epoch counted from 0), as DARTS's ``train.py``."""
        network.drop_path_prob = float(config.get("drop_path") or 0.0) * epoch / max(int(config["epochs"]), 1)

    def train_loss(self, network: nn.Module, batch: dict[str, Any], config: Config) -> Tensor:
        """Cross entropy of the logits, plus ``auxiliary_weight`` x that of the auxiliary head."""
        out = network(batch["image"])
        if isinstance(out, tuple):
            logits, aux = out
            return (F.cross_entropy(logits, batch["label"])
                    + float(config.get("auxiliary_weight") or 0.0) * F.cross_entropy(aux, batch["label"]))
        return F.cross_entropy(out, batch["label"])

    def count_parameters(self, network: nn.Module) -> int:
        """Parameters without the auxiliary head (DARTS_V2 at 36 x 20: 3.3M)."""
        return count_parameters(network, exclude_auxiliary=True)

    # -- evaluate --------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
        """Per image ``{"name", "top1"}`` (100.0 if the arg-max class is the label, else 0.0);
        outputs: the predicted classes, int64 ``[N]``."""
        out = network(batch["image"])
        logits = out[0] if isinstance(out, tuple) else out
        pred = logits.argmax(dim=1)
        correct = (pred == batch["label"].to(pred.device)).tolist()
        records = [{"name": name, "top1": 100.0 if ok else 0.0} for name, ok in zip(batch["name"], correct)]
        return records, pred.cpu()

    def evaluation_note(self) -> str:
        return "top1: % of test images whose highest logit is the true class (DARTS reports error = 100 - top1)"


def _cross_entropy(supernet: nn.Module):
    """The lower and upper loss of the search: cross entropy of the supernet run with the given
    weights, buffers and alphas on ``batch["image"]`` ``[N, 3, H, W]`` vs ``batch["label"]`` ``[N]``."""

    def loss(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
        logits = bilevel.call(supernet, {**lower, **upper}, batch["image"])
        return F.cross_entropy(logits, batch["label"])

    return loss


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
