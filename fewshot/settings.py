"""Settings, recipes and command-line flags of the few-shot task.

Three recipes:

* ``"default"``: sized for a CPU, on the embedded procedural classes (1 x 28 x 28): 5-way 1-shot,
  15 queries per class, Conv4 with 32 filters; meta-training with ``maml``, 1 inner step of 0.4
  (MAML's Omniglot 5-way values), meta-batch 4, Adam 1e-3, 24 epochs of 100 episodes; test-time
  adaptation 3 steps of 0.4. The baseline (``train.py``): the same network pre-trained on all
  meta-train classes (cross entropy, Adam 1e-3, batch 64, 20 epochs), validated by adapting on
  100 meta-validation episodes.
* ``"maml-omniglot"``: MAML's Omniglot 5-way settings (Finn et al., ICML 2017, and the README of
  its code, github.com/cbfinn/maml): 64 filters, 1 inner step of 0.4 at training, 3 at test,
  meta-batch 32, 60000 meta-iterations (``max_steps``), Adam 1e-3; 28 x 28, rotations as new classes.
* ``"maml-miniimagenet"``: MAML's miniImageNet 5-way 1-shot settings: 32 filters, 5 inner steps of
  0.01 at training, 10 at test, meta-batch 4, 15 queries per class, 60000 meta-iterations, 84 x 84.

Both MAML recipes are GPU recipes: they keep MAML's budgets, far beyond a CPU session. What differs
from MAML's network: max-pooling in every block for both data sets (MAML's Omniglot network uses
strided convolutions instead), and batch normalisation with batch statistics always (as MAML's,
which keeps no running statistics), so one episode's adaptation never leaks into another.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from tasks.settings import (Recipes, TrainingSettings, at_least, doc, flag_group, in_range, positive, positive_float,
                            positive_int)

__all__ = ["FewShotSettings", "RECIPES", "add_task_arguments"]


@dataclass
class FewShotSettings(TrainingSettings):
    """Settings of the few-shot task (see the module docstring for the recipes)."""

    # TrainingSettings' fields, redeclared for what they mean here
    batch_size: int = field(default=4, metadata=doc("search: episodes per meta-batch; train: images per batch"))
    lr: float = field(default=1e-3, metadata=doc("train: Adam learning rate of the baseline's pre-training"))
    arch_lr: float = field(default=1e-3, metadata=doc("search: Adam learning rate of the initialisation (meta step)"))
    arch_weight_decay: float = field(default=0.0, metadata=doc("search: weight decay of the initialisation"))
    weight_decay: float = field(default=0.0, metadata=doc("train: weight decay of the baseline's pre-training"))
    grad_clip: float | None = field(default=None, metadata=doc("search: meta-gradient clip; train: gradient clip"))
    lower_grad_clip: float | None = field(default=None, metadata=doc("unused: the inner steps are not clipped"))
    eval_batch_size: int = field(default=1, metadata=doc("episodes per evaluation batch"))
    # the episodes
    ways: int = field(default=5, metadata=doc("classes per episode (N-way)"))
    shots: int = field(default=1, metadata=doc("support images per class (K-shot)"))
    queries: int = field(default=15, metadata=doc("query images per class"))
    episodes: int = field(default=100, metadata=doc("search: meta-training episodes per epoch"))
    val_episodes: int = field(default=100, metadata=doc("train: meta-validation episodes that select the baseline"))
    test_episodes: int = field(default=600, metadata=doc("evaluate: meta-test episodes"))
    test_seed: int = field(default=0, metadata=doc("seed of the validation and test episodes (the same for every model)"))
    # adaptation
    inner_lr: float = field(default=0.4, metadata=doc("step size of the inner steps (meta-training and test-time)"))
    adapt_steps: int = field(default=3, metadata=doc("evaluate: adaptation steps on each episode's support set"))
    # the network and the data
    filters: int = field(default=32, metadata=doc("filters of each of the four convolution blocks"))
    image_size: int | None = field(default=None, metadata=doc("image side (None: the layout's, 28 or 84)"))
    channels: int | None = field(default=None, metadata=doc("image channels (None: the layout's, 1 or 3)"))
    classes: int | None = field(default=None, metadata=doc("outputs of the network (None: ways; the baseline: "
                                                             "all meta-train classes, set from the data)"))
    rotations: bool = field(default=True, metadata=doc("Omniglot: rotated characters as new meta-train classes"))

    def check(self) -> None:
        super().check()
        for key in ("ways", "shots", "queries", "episodes", "val_episodes", "test_episodes", "filters"):
            at_least(self, key, 1)
        at_least(self, "ways", 2)
        at_least(self, "adapt_steps", 0)
        at_least(self, "image_size", 16, optional=True)
        at_least(self, "classes", 2, optional=True)
        in_range(self, "channels", 1, 4, optional=True)
        positive(self, "inner_lr")


RECIPES: Recipes = {
    "default": {
        "search": {"method": "maml", "method_options": {"steps": 1}, "epochs": 24, "batch_size": 4},
        "train": {"epochs": 20, "batch_size": 64},
    },
    "maml-omniglot": {
        "search": {"method": "maml", "method_options": {"steps": 1}, "max_steps": 60000, "batch_size": 32,
                   "filters": 64, "inner_lr": 0.4, "adapt_steps": 3},
        "train": {"epochs": 20, "batch_size": 64, "filters": 64, "inner_lr": 0.4, "adapt_steps": 3},
    },
    "maml-miniimagenet": {
        "search": {"method": "maml", "method_options": {"steps": 5}, "max_steps": 60000, "batch_size": 4,
                   "filters": 32, "inner_lr": 0.01, "adapt_steps": 10},
        "train": {"epochs": 20, "batch_size": 64, "filters": 32, "inner_lr": 0.01, "adapt_steps": 10},
    },
}


def add_task_arguments(parser: argparse.ArgumentParser, stage: str, task: str, defaults: FewShotSettings) -> None:
    """``--ways``, ``--shots``, ``--queries``, ``--inner-lr``, ``--adapt-steps``, ``--filters``,
    ``--image-size`` (search and train), ``--episodes`` (search), ``--val-episodes`` (train); defaults
    ``None``: the recipe's value."""
    d = defaults
    add = flag_group(parser, task, stage, "default (CPU-sized, embedded classes), maml-omniglot, "
                     "maml-miniimagenet (MAML's settings, GPU recipes)")
    add("--ways", type=positive_int, default=None, metavar="N", help=f"classes per episode (default {d.ways})")
    add("--shots", type=positive_int, default=None, metavar="K", help=f"support images per class (default {d.shots})")
    add("--queries", type=positive_int, default=None, metavar="Q",
        help=f"query images per class (default {d.queries})")
    add("--inner-lr", type=positive_float, default=None, metavar="LR",
        help=f"step size of the inner steps, in meta-training and in test-time adaptation (default {d.inner_lr}); "
             "the number of meta-training inner steps is the method's option steps (--option steps=N)")
    add("--adapt-steps", type=int, default=None, metavar="K",
        help=f"adaptation steps on each test episode's support set (default {d.adapt_steps})")
    add("--filters", type=positive_int, default=None, metavar="F",
        help=f"filters of the four convolution blocks (default {d.filters})")
    add("--image-size", type=positive_int, default=None, metavar="PX",
        help="image side (default: the layout's: 28 for Omniglot and the embedded classes, 84 for miniImageNet)")
    if stage == "search":
        add("--episodes", type=positive_int, default=None, metavar="E",
            help=f"meta-training episodes per epoch (default {d.episodes})")
    else:
        add("--val-episodes", type=positive_int, default=None, metavar="E",
            help=f"meta-validation episodes that select the baseline (default {d.val_episodes})")
