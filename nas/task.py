"""The ``Task`` protocol: what an application brings to the three commands.

A task bundles its datasets (a folder or the embedded synthetic default), the search supernet and
its upper-variable groups, ``build_network(genotype)``, losses, metrics and default budgets. The
commands (``search.py``, ``train.py``, ``evaluate.py``) drive any task with one generic loop; a
new application is a new ``Task`` subclass and one line in the ``TASKS`` dict.

Batches are dicts of tensors (plus lists of names); the commands move tensors to the device.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from bilevel import BilevelProblem
from nas.genotype import Genotype, GenotypeError

Config = dict[str, Any]


@dataclass
class UpperGroup:
    """One set of upper variables with its own objective, optimizer and update period.

    ``problem.lower`` is shared by all groups of a search (the supernet weights); the loop steps
    the lower variables once per step, and this group's upper variables every ``every`` steps.
    """

    name: str
    problem: BilevelProblem
    optimizer: torch.optim.Optimizer
    every: int = 1


@dataclass
class SearchSetup:
    """What a search needs: the supernet, its upper groups, the lower optimizer and schedule."""

    supernet: nn.Module
    groups: list[UpperGroup]
    lower_optimizer: torch.optim.Optimizer
    scheduler: Any = None  # stepped once per epoch
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainSetup:
    """What a retraining needs: optimizer and per-epoch scheduler for the discrete network."""

    optimizer: torch.optim.Optimizer
    scheduler: Any = None


class Task:
    """Base class of the applications; subclasses fill in the class attributes and methods.

    Class attributes: ``name``; ``space`` (genotype space) and ``cell_names``; ``primitives``;
    ``default_method`` (hypergradient method of ``search.py``); ``search_defaults`` and
    ``train_defaults`` (epochs, batch_size, learning rates, ...); ``metric`` (the validation
    metric that selects the best model, higher is better); ``metric_keys`` (what ``evaluate.py``
    reports)."""

    name: str = ""
    space: str = ""
    cell_names: Sequence[str] = ()
    primitives: Sequence[str] = ()
    default_method: str = "darts2"
    search_defaults: Config = {}
    train_defaults: Config = {}
    metric: str = ""
    metric_keys: Sequence[str] = ()
    data_help: str = ""

    # -- command line ---------------------------------------------------------------------
    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        """Task-specific flags (default ``None``: the task's default) for ``stage`` in
        ``search``, ``train``, ``evaluate``."""

    # -- search ----------------------------------------------------------------------------
    def search_data(self, config: Config) -> tuple[Dataset, Dataset]:
        """The lower-level (training) and upper-level (validation) sets of the search."""
        raise NotImplementedError

    def build_search(self, config: Config, device: torch.device) -> SearchSetup:
        """Supernet on ``device``, upper groups (problems sharing the supernet weights), optimizers."""
        raise NotImplementedError

    def derive(self, supernet: nn.Module) -> Genotype:
        """The genotype the supernet currently encodes."""
        return supernet.genotype()

    # -- train -----------------------------------------------------------------------------
    def train_data(self, config: Config) -> tuple[Dataset, Dataset]:
        """Training and validation sets for retraining a genotype."""
        raise NotImplementedError

    def build_network(self, genotype: Genotype, config: Config) -> nn.Module:
        """The discrete network of ``genotype`` (on the CPU)."""
        raise NotImplementedError

    def build_training(self, network: nn.Module, config: Config, steps_per_epoch: int) -> TrainSetup:
        raise NotImplementedError

    def train_loss(self, network: nn.Module, batch: dict[str, Any], config: Config) -> Tensor:
        raise NotImplementedError

    def on_epoch(self, network: nn.Module, epoch: int, config: Config) -> None:
        """Called before each training epoch (drop-path schedules and the like)."""

    def count_parameters(self, network: nn.Module) -> int:
        """Parameters as the papers count them (auxiliary heads excluded)."""
        return sum(p.numel() for p in network.parameters())

    # -- evaluate --------------------------------------------------------------------------
    def test_data(self, data: str | None, config: Config) -> Dataset:
        """The evaluation set: the folder ``data`` or the embedded default's test split."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
        """Per-item records (``name`` plus metric values; no metrics without references) and
        the outputs (for ``save_outputs``)."""
        raise NotImplementedError

    def save_outputs(self, outputs: Any, batch: dict[str, Any], folder: str) -> None:
        """Write what ``evaluate_batch`` produced for a batch into ``folder`` (images)."""

    def samples(self, network: nn.Module, batch: dict[str, Any]) -> Tensor | None:
        """An image grid ``[3, H, W]`` in [0, 1] showing the network on ``batch`` (train runs)."""
        return None

    def evaluation_note(self) -> str:
        """One line printed with the results (conventions of the metrics)."""
        return ""

    # -- checks ----------------------------------------------------------------------------
    def check_genotype(self, genotype: Genotype, source: str = "") -> None:
        """Refuse a genotype of another space, with a one-line error naming ``source``."""
        where = f" {source}" if source else ""
        if genotype.space != self.space:
            raise GenotypeError(f"genotype{where} is of space {genotype.space!r}, task {self.name!r} needs "
                                f"{self.space!r}; pass a genotype.json written by search.py --task {self.name}")
        missing = [c for c in self.cell_names if c not in genotype.cells]
        if missing:
            raise GenotypeError(f"genotype{where} lacks cells {missing} of space {self.space!r}")
        bad = sorted({op for genes in genotype.cells.values() for op, _ in genes} - set(self.primitives))
        if bad:
            raise GenotypeError(f"genotype{where} uses ops {bad} unknown to task {self.name!r}")
