"""The ``Task`` protocol: what an application brings to the three commands.

A task declares:

* its **settings** (``Settings``, a validated dataclass) and named **recipes** of defaults per
  stage (``"default"`` and, where the paper's procedure differs, the paper's own);
* its **search**: upper groups, each with its own lower problem (``bilevel.Group`` over a
  ``bilevel.LowerLevel``), stepped by the core's ``bilevel.GroupedLoop``; the **result** of a
  search: a genotype, learned hyper-parameters, or both (``results``);
* its **retraining**: the network built from a search result, one or more optimizer groups
  (``TrainGroup``: parameters, the loss that drives them, update period);
* its **metrics** with their direction (``"max"`` or ``"min"`` is better) and the one that
  selects the model on the validation split;
* its **data**: search, train/validation and test sets; validation never reads test files. A data
  method returns a small record (``SearchData``, ``TrainData``, ``TestData``: the sets, the split
  written to ``config.json``, the line printed, and how the sets are scored); whatever a later
  method needs is passed to it. A task holds no state that depends on the order of its calls:
  no attribute is assigned outside ``__init__``.
* its optional **capabilities**, declared as class attributes (``can_score_predictions``,
  ``can_tile``, ``conventions``, ``reads_released``, ``intervals``), never probed.

A meta-learning task searches over episodes (``SearchData.paired``, ``search_batches``) and its
search yields a network (``search_model``: the learned initialisation, written as model.pt).

Batches are dicts of tensors plus lists of names (one image, two sources, a frame window, or a
fixed/moving pair with label maps); the commands move tensors to the device.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from bilevel import Group, LoopLevel
from nas.genotype import GenotypeError
from tasks.released import ReleasedWeights
from tasks.results import HparamsError, SearchResult
from tasks.settings import Recipes, Settings, SettingsError

__all__ = ["Scoring", "SearchData", "SearchSetup", "Task", "TestData", "TrainData", "TrainGroup", "TrainSetup"]


@dataclass(frozen=True)
class Scoring:
    """How ``evaluate_batch`` scores a set: the metrics it computes (empty: all of the task's), whether
    the items have references, and the set's role (``"val"`` during training, ``"test"`` in evaluate.py)."""

    metrics: tuple[str, ...] = ()
    references: bool = True
    role: str = "test"


@dataclass(frozen=True)
class SearchData:
    """The lower-level (training) and upper-level (validation) sets of a search, the line printed
    about them and their record in ``config.json`` (``split``). ``paired``: one set whose items hold
    both levels' data (meta-learning episodes: a support and a query set), read once per step and
    handed to ``Task.search_batches`` (``lower`` and ``upper`` are then the same set)."""

    lower: Dataset
    upper: Dataset
    note: str = ""
    split: dict[str, Any] = field(default_factory=dict)
    paired: bool = False


@dataclass(frozen=True)
class TrainData:
    """The training set and the validation set of a retraining (None: no validation, the latest model
    is kept), the line printed, the ``config.json`` record and how validation is scored."""

    train: Dataset
    val: Dataset | None
    note: str = ""
    split: dict[str, Any] = field(default_factory=dict)
    scoring: Scoring = Scoring(role="val")
    #: values the data decides that the network is built with (e.g. the number of classes of a folder):
    #: the command writes them into the run's settings, so config.json, model.pt and a resume keep them
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TestData:
    """The evaluation set, the line printed about it and how it is scored."""

    test: Dataset
    note: str = ""
    scoring: Scoring = Scoring()


@dataclass
class SearchSetup:
    """What a search needs: the module holding every searched variable (checkpointed whole), the
    upper groups with their lower levels, and schedulers stepped once per epoch. ``settings``: values
    the build measured that the run keeps (e.g. a latency table): the command writes them into the
    run's settings, so ``config.json`` records them and a resumed run reuses them. A search over more
    than two levels gives ``levels`` (``bilevel.LoopLevel``, top first, stepped by a
    ``bilevel.MultilevelLoop`` with the run's ``--method``) and no groups."""

    supernet: nn.Module
    groups: list[Group] = field(default_factory=list)
    schedulers: list[Any] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    levels: list[LoopLevel] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.groups and self.levels:
            raise ValueError("a SearchSetup has upper groups (two levels) or levels (more), not both")


@dataclass
class TrainGroup:
    """Parameters of ``optimizer`` trained on ``losses[loss]`` every ``every`` steps, the gradient
    norm clipped to ``grad_clip`` (None: no clip)."""

    name: str
    optimizer: torch.optim.Optimizer
    loss: str = "loss"
    every: int = 1
    grad_clip: float | None = None

    def parameters(self) -> list[Tensor]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]


@dataclass
class TrainSetup:
    """Optimizer groups of a retraining and schedulers stepped once per epoch."""

    groups: list[TrainGroup]
    schedulers: list[Any] = field(default_factory=list)


class Task:
    """Base class of the applications; subclasses set the class attributes and the methods.

    Class attributes: ``name``; ``space`` (genotype space, ``None`` when the task searches no
    cells), ``cell_names``, ``primitives``; ``results`` (what retraining requires of a search:
    ``"genotype"``, ``"hparams"``; a genotype given beside required hyper-parameters is checked and
    used too); ``Settings`` and ``recipes``; ``default_method``; ``metrics`` (name ->
    ``"max"``/``"min"``), ``select`` (the metric that selects the model); ``data_help``; ``pairs_help``;
    ``cell_titles``; the capabilities ``can_score_predictions``, ``can_tile``, ``conventions``, ``reads_released``
    and ``intervals``.
    """

    name: str = ""
    space: str | None = None
    cell_names: Sequence[str] = ()
    primitives: Sequence[str] = ()
    results: tuple[str, ...] = ("genotype",)
    Settings: type[Settings] = Settings
    recipes: Recipes = {"default": {"search": {}, "train": {}}}
    default_method: str = "darts2"
    metrics: dict[str, str] = {}
    select: str = ""
    data_help: str = ""
    #: what ``--pairs INPUT_DIR TARGET_DIR`` reads for the task; empty: the task reads no pairs of folders
    pairs_help: str = ""
    #: cell name -> what the cell is, in a few words (titles of the genotype picture)
    cell_titles: dict[str, str] = {}
    #: whether ``score_predictions`` scores a folder of outputs made elsewhere (``evaluate.py --predictions``)
    can_score_predictions: bool = False
    #: whether the settings have ``tile`` / ``tile_overlap`` (``evaluate.py --tile``)
    can_tile: bool = False
    #: named metric conventions the settings' ``convention`` takes (``evaluate.py --convention``); empty: one
    conventions: tuple[str, ...] = ()
    #: whether ``released_weights`` recognises a paper's released weight files (``--checkpoint``, ``--init``)
    reads_released: bool = False
    #: whether evaluate.py reports a 95% confidence interval of each metric's mean (``<metric>_ci95``:
    #: 1.96 x the standard error over the items; items are independent draws, such as few-shot episodes)
    intervals: bool = False

    # -- settings ---------------------------------------------------------------------------
    def settings(self, stage: str, recipe: str = "default") -> Settings:
        """The defaults of ``recipe`` for ``stage`` (``"search"`` or ``"train"``)."""
        if recipe not in self.recipes:
            raise SettingsError(f"task {self.name!r} has no recipe {recipe!r}; recipes: {', '.join(self.recipes)}")
        return self.Settings().replace({"recipe": recipe, **self.recipes[recipe].get(stage, {})},
                                       source=f"recipe {recipe!r}")

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        """Task-specific flags (dest = settings key, default ``None``: the recipe's value)."""

    def better(self, a: float, b: float) -> bool:
        """Whether validation score ``a`` is better than ``b`` for the selecting metric."""
        return a < b if self.metrics.get(self.select, "max") == "min" else a > b

    def worst(self) -> float:
        return float("inf") if self.metrics.get(self.select, "max") == "min" else float("-inf")

    # -- search -----------------------------------------------------------------------------
    def search_data(self, s: Settings) -> SearchData:
        """The lower-level (training) and upper-level (validation) sets of the search."""
        raise NotImplementedError

    def build_search(self, s: Settings, device: torch.device) -> SearchSetup:
        raise NotImplementedError

    def search_result(self, setup: SearchSetup, s: Settings) -> SearchResult:
        """What the search has found so far (default: the supernet's genotype)."""
        return SearchResult(genotype=setup.supernet.genotype())

    def search_batches(self, lower: Any, upper: Any, s: Settings) -> tuple[Any, Any]:
        """The lower and upper batches of one search step from those loaded (default: as loaded). With
        ``SearchData.paired`` both are the same batch of items: a meta-learning task turns a batch of
        episodes into ``bilevel.Tasks`` of support sets and of query sets."""
        return lower, upper

    def search_model(self, setup: SearchSetup, s: Settings) -> nn.Module | None:
        """A network the search itself yields, written as model.pt beside the search result and read by
        evaluate.py and ``train.py --from`` (meta-learning: the learned initialisation); None (default):
        the search yields a genotype and/or hyper-parameters only."""
        return None

    def upper_warmup_steps(self, s: Settings, steps_per_epoch: int) -> int:
        """Steps at the start of a search during which the upper variables do not move (default 0)."""
        return 0

    # -- train ------------------------------------------------------------------------------
    def train_data(self, s: Settings) -> TrainData:
        """Training set and validation set (None: no validation, the latest model is kept)."""
        raise NotImplementedError

    def build_network(self, result: SearchResult, s: Settings) -> nn.Module:
        """The network of a search result (on the CPU)."""
        raise NotImplementedError

    def build_training(self, network: nn.Module, s: Settings, steps_per_epoch: int) -> TrainSetup:
        raise NotImplementedError

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: Settings) -> dict[str, Tensor]:
        """Named scalar losses of one forward pass; each ``TrainGroup`` backpropagates its own."""
        raise NotImplementedError

    def on_epoch(self, network: nn.Module, epoch: int, s: Settings) -> None:
        """Called before each training epoch (drop-path schedules and the like)."""

    def training_note(self, s: Settings, data: TrainData, network: nn.Module, result: SearchResult) -> str:
        """One line: what is optimised and what selects the model (the command prints ``data.note`` after it);
        ``network``: the bare network being trained, on its device; ``result``: what it was built from."""
        return ""

    def count_parameters(self, network: nn.Module) -> int:
        """Parameters as the papers count them (auxiliary heads excluded)."""
        return sum(p.numel() for p in network.parameters())

    # -- evaluate ---------------------------------------------------------------------------
    def test_data(self, data: str | None, s: Settings) -> TestData:
        """The evaluation set: the folder ``data`` or the embedded default's test split."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any], s: Settings,
                       scoring: Scoring) -> tuple[list[dict[str, Any]], Any]:
        """Per-item records (``name`` plus metric values) and the outputs (for ``save_outputs``)."""
        raise NotImplementedError

    def score_predictions(self, predictions: str, data: str | None, s: Settings) -> tuple[list[dict[str, Any]], Scoring]:
        """Per-item records of a folder of outputs made elsewhere, scored against the test items of ``data``
        (tasks with ``can_score_predictions``), and how they were scored."""
        raise NotImplementedError(f"task {self.name!r} cannot score a folder of predictions")

    def released_weights(self, state: dict[str, Tensor], source: str = "") -> ReleasedWeights | None:
        """A paper's released weights mapped onto the task's network (tasks with ``reads_released``): None when
        ``state``'s names are not that paper's; a one-line ``ValueError`` when they are but do not fit."""
        return None

    def save_outputs(self, outputs: Any, batch: dict[str, Any], folder: str) -> None:
        """Write what ``evaluate_batch`` produced for a batch into ``folder``."""

    def samples(self, network: nn.Module, batch: dict[str, Any]) -> Tensor | None:
        """An image grid ``[3, H, W]`` in [0, 1] showing the network on ``batch`` (train runs)."""
        return None

    def evaluation_note(self, s: Settings, scoring: Scoring) -> str:
        """One line printed with the results (conventions of the metrics)."""
        return ""

    def metrics_record(self, s: Settings, scoring: Scoring) -> dict[str, str]:
        """Extra string entries of ``metrics.json`` beside the means (e.g. the metrics' convention)."""
        return {}

    # -- export (export.py) -----------------------------------------------------------------
    #: ONNX name of the output of a network that returns one tensor (dict outputs keep their keys)
    output_name: str = "output"

    def example_size(self, s: Settings) -> tuple[int, ...]:
        """Spatial size ``(H, W)`` (or ``(D, H, W)``) of the input ``export.py`` traces by default."""
        return (64, 64)

    def example_inputs(self, s: Settings, size: Sequence[int], batch: int = 1,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Random inputs of the network's ``forward``, by argument name in call order: axis 0 is the
        batch, the last ``len(size)`` axes the spatial ``size``. Default: one RGB image ``input``
        ``[batch, 3, *size]`` in [0, 1]."""
        return {"input": torch.rand(batch, 3, *size, generator=generator)}

    def min_opset(self, s: Settings) -> tuple[int, str]:
        """The lowest ONNX opset the network needs and why (``(0, "")``: no need of its own)."""
        return 0, ""

    # -- checks -----------------------------------------------------------------------------
    def check_result(self, result: SearchResult, source: str = "") -> None:
        """Refuse a search result this task cannot train from, with a one-line error naming ``source``."""
        where = f" {source}" if source else ""
        if "genotype" in self.results and result.genotype is None:
            raise GenotypeError(f"task {self.name!r} needs a genotype; pass --genotype FILE or --from RUN_DIR")
        if result.genotype is not None:  # required, or optional (e.g. cells searched beside loss weights)
            if self.space is None:
                raise GenotypeError(f"task {self.name!r} searches no cells: the genotype{where} cannot be used")
            self.check_genotype(result.genotype, source)
        if "hparams" in self.results and not result.hparams:
            raise HparamsError(f"task {self.name!r} needs learned hyper-parameters{where}; pass --hparams FILE "
                               "or --from RUN_DIR")

    def check_genotype(self, genotype: Any, source: str = "") -> None:
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
