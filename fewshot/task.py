"""N-way K-shot few-shot classification as a ``Task``: meta-learning by bilevel optimisation.

Search (``search.py``) meta-trains: every step draws a meta-batch of episodes from the meta-train
classes; the lower variables are the network's weights, adapted on each episode's support set by
the method's inner steps from the initialisation ``init/<name>`` (upper variables), whose
meta-gradient comes from the query sets (``maml``, ``fomaml``, ``metasgd``, ``reptile``, ``imaml``;
``metasgd`` also learns per-parameter step sizes ``lr/<name>``, started at ``inner_lr``). The search
yields ``model.pt``: the network holding the learned initialisation (and Meta-SGD's step sizes).

Retraining (``train.py``) trains the baseline: the same network pre-trained on all meta-train
classes at once (cross entropy over every class), selected by its accuracy after adaptation on
meta-validation episodes. ``evaluate.py`` adapts either model the same way on each meta-test
episode's support set (``adapt_steps`` plain gradient steps of ``inner_lr``, or Meta-SGD's step
sizes; the baseline's head replaced by the nearest-class-mean head of the support features) and reports the query
accuracy with its 95% confidence interval over ``test_episodes`` (600) episodes, the same episodes for
every model (``test_seed``). Validation never reads the meta-test classes.

Data: Omniglot and miniImageNet folders read in place, or the embedded procedural classes
(``fewshot.data``); settings and recipes: ``fewshot.settings``.
"""
from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import bilevel
from bilevel import Tasks
from fewshot import data as fdata
from fewshot.episodes import EpisodeSet, LabelledImages
from fewshot.model import FewShotNet, accuracy, adapt
from fewshot.settings import RECIPES, FewShotSettings, add_task_arguments
from tasks.meta import MetaInit, episode_tasks, meta_group
from tasks.base import Scoring, SearchData, SearchSetup, Task, TestData, TrainData, TrainGroup, TrainSetup
from tasks.results import SearchResult
from tasks.settings import SettingsError
from tasks.training import make_optimizer, make_schedule

__all__ = ["FewShotTask", "META_METHODS"]

#: the methods that meta-learn an initialisation (``bilevel.methods.meta``)
META_METHODS = ("maml", "fomaml", "metasgd", "reptile", "imaml")


def _cross_entropy(net: FewShotNet):
    """Both levels' loss: cross entropy of ``net`` run with the lower variables on an episode's set
    (``image [n, C, S, S]``, ``label [n]``)."""

    def loss(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(bilevel.call(net, lower, batch["image"]), batch["label"])

    return loss


class FewShotTask(Task):
    """Few-shot classification (module docstring)."""

    name = "fewshot"
    results = ()
    Settings = FewShotSettings
    recipes = RECIPES
    default_method = "maml"
    metrics = {"accuracy": "max"}
    select = "accuracy"
    intervals = True
    data_help = ("Omniglot as distributed (ROOT/<alphabet>/<character>/*.png, or ROOT/images_background and "
                 "ROOT/images_evaluation) or miniImageNet (ROOT/{train,val,test}/<class>/*.jpg, Ravi & Larochelle's "
                 "split); without --data embedded procedural classes (64 meta-train, 16 meta-validation, 20 "
                 "meta-test, disjoint)")

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        add_task_arguments(parser, stage, self.name, self.settings(stage))

    # -- data ------------------------------------------------------------------------------
    def _classes(self, s: FewShotSettings, split: str) -> fdata.ClassImages:
        return fdata.load_classes(s.data, split, size=s.image_size, rotations=s.rotations,
                                  min_images=s.shots + s.queries)

    def _shape(self, s: FewShotSettings) -> dict[str, int]:
        """``channels`` and ``image_size`` of the data where the settings leave them to the layout."""
        channels, size = fdata.image_format(s.data)
        return {"channels": s.channels or channels, "image_size": s.image_size or size}

    def _episodes(self, classes: fdata.ClassImages, s: FewShotSettings, count: int, seed: int) -> EpisodeSet:
        return EpisodeSet(classes, s.ways, s.shots, s.queries, count, seed)

    def search_data(self, s: FewShotSettings) -> SearchData:
        """Meta-training episodes of the meta-train classes (one set serving both levels: support and query)."""
        classes = self._classes(s, "train")
        episodes = self._episodes(classes, s, s.episodes, s.seed)
        note = (f"meta-training: {s.ways}-way {s.shots}-shot episodes ({s.queries} queries per class) of "
                f"{len(classes)} meta-train classes ({classes.source}); {s.episodes} episodes per epoch")
        return SearchData(episodes, episodes, note=note, split={"meta_train_classes": len(classes)}, paired=True)

    def train_data(self, s: FewShotSettings) -> TrainData:
        """Every image of the meta-train classes, labelled over all of them; validation: adaptation on
        ``val_episodes`` episodes of the meta-validation classes (never the meta-test ones)."""
        train = self._classes(s, "train")
        val = self._classes(s, "val")
        note = (f"pre-training on {len(train)} meta-train classes ({train.source}); validation: {s.val_episodes} "
                f"{s.ways}-way {s.shots}-shot episodes of the {len(val)} meta-validation classes, adapted "
                f"{s.adapt_steps} steps of {s.inner_lr}; the meta-test classes are never read")
        return TrainData(LabelledImages(train), self._episodes(val, s, s.val_episodes, s.test_seed), note=note,
                         split={"meta_train_classes": len(train), "meta_val_classes": len(val)},
                         settings={**self._shape(s), "classes": len(train)})

    def test_data(self, data: str | None, s: FewShotSettings) -> TestData:
        """``test_episodes`` episodes of the meta-test classes of ``data`` (or the embedded ones)."""
        s = s.replace({"data": data})
        classes = self._classes(s, "test")
        note = (f"{s.test_episodes} {s.ways}-way {s.shots}-shot episodes ({s.queries} queries per class) of "
                f"{len(classes)} meta-test classes ({classes.source}), seed {s.test_seed}")
        return TestData(self._episodes(classes, s, s.test_episodes, s.test_seed), note=note)

    # -- search ----------------------------------------------------------------------------
    def _network(self, s: FewShotSettings, classes: int | None = None, step_sizes: bool = False) -> FewShotNet:
        shape = {"channels": s.channels, "image_size": s.image_size}
        if None in shape.values():
            shape = self._shape(s)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            return FewShotNet(shape["channels"], s.filters, classes or s.classes or s.ways, shape["image_size"],
                              step_sizes=step_sizes)

    def build_search(self, s: FewShotSettings, device: torch.device) -> SearchSetup:
        """The network over ``ways`` classes, its initialisation as the upper variables (Adam ``arch_lr``),
        its weights as the lower ones (plain SGD of ``inner_lr``: the inner steps' rule)."""
        if s.method not in META_METHODS:
            raise SettingsError(f"task {self.name!r} meta-learns an initialisation: --method must be one of "
                                f"{', '.join(META_METHODS)}, got {s.method!r}")
        shape = self._shape(s)
        s = s.replace(shape)
        net = self._network(s, s.ways)
        search = MetaInit(net, s.inner_lr if s.method == "metasgd" else None).to(device)
        group = meta_group(search, _cross_entropy(net), "sgd", s.inner_lr, 0.0, s.arch_lr, s.arch_weight_decay,
                           s.grad_clip)
        return SearchSetup(search, [group], settings={**shape, "classes": s.ways})

    def search_batches(self, lower: Any, upper: Any, s: FewShotSettings) -> tuple[Tasks, Tasks]:
        """A batch of episodes as ``Tasks`` of support sets (lower) and of query sets (upper)."""
        return episode_tasks(lower, "support"), episode_tasks(upper, "query")

    def search_result(self, setup: SearchSetup, s: FewShotSettings) -> SearchResult:
        return SearchResult()

    def search_model(self, setup: SearchSetup, s: FewShotSettings) -> FewShotNet:
        """The network holding the learned initialisation (and Meta-SGD's step sizes), on the CPU."""
        search: MetaInit = setup.supernet
        rates = search.step_sizes()
        net = self._network(s, s.ways, step_sizes=rates is not None)
        state = search.initialisation()
        if rates is not None:
            state.update({f"rate_{i}": rates[k] for i, k in enumerate(search.names)})
        net.load_state_dict(state)
        return net

    # -- train -----------------------------------------------------------------------------
    def build_network(self, result: SearchResult, s: FewShotSettings) -> nn.Module:
        """Conv4 with ``classes`` outputs (a meta-learned network: ``ways``; the baseline: every
        meta-train class), with Meta-SGD's step sizes when ``method`` is ``metasgd``."""
        return self._network(s, step_sizes=s.method == "metasgd" and s.classes == s.ways)

    def build_training(self, network: nn.Module, s: FewShotSettings, steps_per_epoch: int) -> TrainSetup:
        """Adam (``lr``, ``weight_decay``) with cosine annealing over ``epochs``."""
        optimizer = make_optimizer("adam", network.parameters(), s.lr, s.weight_decay)
        return TrainSetup([TrainGroup("weights", optimizer, grad_clip=s.grad_clip)],
                          make_schedule("cosine", optimizer, s.epochs, 0.0))

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: FewShotSettings) -> dict[str, Tensor]:
        return {"loss": F.cross_entropy(network(batch["image"]), batch["label"])}

    def training_note(self, s: FewShotSettings, data: TrainData, network: nn.Module, result: SearchResult) -> str:
        return "optimising: cross entropy over every meta-train class (Adam), the baseline of the meta-learners"

    # -- evaluate --------------------------------------------------------------------------
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any], s: FewShotSettings,
                       scoring: Scoring) -> tuple[list[dict[str, Any]], Any]:
        """Per episode ``{"name", "accuracy"}``: percent of its queries right after adapting on its
        support set (``adapt_steps`` steps of ``inner_lr`` or the learned step sizes)."""
        net = next(m for m in network.modules() if isinstance(m, FewShotNet))
        support, query = episode_tasks(batch, "support"), episode_tasks(batch, "query")
        records = []
        for name, sup, que in zip(batch["name"], support, query):
            params = adapt(net, sup, s.adapt_steps, s.inner_lr, s.ways)
            records.append({"name": name, "accuracy": accuracy(net, params, que)})
        return records, None

    def evaluation_note(self, s: FewShotSettings, scoring: Scoring) -> str:
        return (f"accuracy: percent of query images right after {s.adapt_steps} adaptation steps on the support set, "
                "mean over episodes with its 95% confidence interval (1.96 standard errors)")

    def metrics_record(self, s: FewShotSettings, scoring: Scoring) -> dict[str, str]:
        return {"episodes": f"{s.ways}-way {s.shots}-shot, {s.queries} queries per class, "
                            f"{s.adapt_steps} adaptation steps of {s.inner_lr}"}

    output_name = "logits"

    def example_size(self, s: FewShotSettings) -> tuple[int, ...]:
        size = s.image_size or self._shape(s)["image_size"]
        return (size, size)

    def example_inputs(self, s: FewShotSettings, size: Any, batch: int = 1,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
        return {"input": torch.rand(batch, s.channels or 1, *size, generator=generator)}
