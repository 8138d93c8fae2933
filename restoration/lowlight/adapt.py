"""Low-light fast adaptation (``--recipe adapt``; after Jin, Ma, Liu, Fan, "Bridging the Gap between
Low-Light Scenes: Bilevel Learning for Fast Adaptation", ACM MM 2021): meta-learn an initialisation
of the RUAS network from which a few steps on a few images of a new scene adapt it to that scene.

Search (``search.py --recipe adapt``) meta-trains, with no architecture search: the network is the
discrete ``RUASNet`` of the shipped reference genotype (``ruas_reference.json``); its weights are the
lower variables, adapted on each episode's support crops by the method's inner steps from the
initialisation ``init/<name>`` (the upper variables, ``tasks.meta.MetaInit``), whose meta-gradient
comes from the episode's query crops of the same scene (``fomaml``, ``maml``, ``reptile``,
``imaml``). Both levels' loss is the task's training objective (L1 to the reference +
``unsupervised_weight`` x RUAS's losses when the scenes have references, RUAS's losses alone
otherwise). The inner steps are the lower optimizer's rule (``lower_optimizer``, ``momentum``) with
the method's option ``lr``, from a fresh state, unclipped: the recipe makes it plain SGD with the
same step size as ``lr``, which ``train.py --recipe adapt`` adapts with, so that adapting a network
takes the very steps meta-training prepared it for. The search writes ``genotype.json`` (the fixed
genotype) and ``model.pt`` (the network holding the learned initialisation).

Adaptation (``train.py --task lowlight --recipe adapt --from S [--data NEW] --max-steps K``): the
network starts from ``S/model.pt`` and takes K steps of ``train_optimizer`` at ``lr`` (one group, no
schedule, no clip: the inner loop's steps), each on one batch of ``batch_size`` random crops of the
scene's images (``adapt_data``).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor, nn

import bilevel
from restoration.lowlight.settings import LowLightSettings
from tasks.base import SearchSetup, TrainGroup, TrainSetup
from tasks.meta import MetaInit, meta_group
from tasks.settings import SettingsError
from tasks.training import make_optimizer

__all__ = ["ADAPT_METHODS", "adapt_training", "build_meta_search", "check_adapt_search", "inner_lr", "inner_rule",
           "learned_network"]

#: Methods that meta-learn an initialisation and whose inner steps ``train.py`` can repeat.
ADAPT_METHODS = ("fomaml", "maml", "reptile", "imaml")

#: ``loss(outputs, batch) -> scalar``: the objective of both levels.
Objective = Callable[[dict[str, Tensor], dict[str, Any]], Tensor]


def _option(s: LowLightSettings, name: str) -> Any:
    """The method option ``name`` of the run (``--option``, the recipe's), else the method's default."""
    if name in s.method_options:
        return s.method_options[name]
    return getattr(bilevel.METHODS[str(s.method)].Config(), name, None)


def inner_lr(s: LowLightSettings) -> float:
    """The step size of the inner steps: the method option ``lr``."""
    return float(_option(s, "lr"))


def inner_rule(s: LowLightSettings) -> str:
    """The inner steps in words (search note; ``train.py --recipe adapt`` repeats them)."""
    lr, steps = inner_lr(s), _option(s, "steps")
    if s.method == "imaml":
        return f"{steps} plain gradient steps of {lr} on the proximal inner problem (lam {_option(s, 'lam')})"
    rule = "plain SGD" if s.lower_optimizer == "sgd" and s.momentum == 0 else s.lower_optimizer
    return f"{steps} steps of {rule} at {lr} from a fresh state"


def check_adapt_search(s: LowLightSettings) -> None:
    """One-line ``SettingsError`` for a method that cannot meta-learn the initialisation ``train.py``
    adapts, or an inner step size other than the adaptation's ``lr``."""
    if s.method not in ADAPT_METHODS:
        raise SettingsError(f"--recipe adapt meta-learns an initialisation: --method must be one of "
                            f"{', '.join(ADAPT_METHODS)}, got {s.method!r} (metasgd's learned step sizes have no "
                            "place in train.py's adaptation)")
    lr = inner_lr(s)
    if float(lr) != float(s.lr):
        raise SettingsError(f"the inner step size --option lr={lr} differs from --lr {s.lr}, the step size train.py "
                            f"--recipe adapt adapts with; give both the same value (e.g. --lr {lr})")


def build_meta_search(net: nn.Module, s: LowLightSettings, device: torch.device, objective: Objective) -> SearchSetup:
    """``net``'s weights as the lower variables (inner rule: ``lower_optimizer`` at ``lr``, no weight
    decay), its initialisation as the upper ones (Adam ``arch_lr``, ``arch_weight_decay``), one group
    ``init`` whose meta-gradient is clipped to ``grad_clip``."""
    check_adapt_search(s)
    search = MetaInit(net).to(device)

    def loss(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
        return objective(bilevel.call(net, lower, batch["input"]), batch)

    group = meta_group(search, loss, s.lower_optimizer, s.lr, s.momentum, s.arch_lr, s.arch_weight_decay,
                       s.grad_clip)
    return SearchSetup(search, [group])


def learned_network(setup: SearchSetup, net: nn.Module) -> nn.Module:
    """``net`` (a fresh network of the same genotype and sizes) holding the learned initialisation."""
    search: MetaInit = setup.supernet  # type: ignore[assignment]
    net.load_state_dict(search.initialisation())
    return net


def adapt_training(network: nn.Module, s: LowLightSettings) -> TrainSetup:
    """One group ``all`` on the loss ``loss``: ``train_optimizer`` at ``lr`` (SGD with ``momentum``),
    ``weight_decay``, gradients clipped to ``grad_clip`` (None: not), no schedule."""
    optimizer = make_optimizer(s.train_optimizer, network.parameters(), s.lr, s.weight_decay, s.momentum)
    return TrainSetup([TrainGroup("all", optimizer, loss="loss", grad_clip=s.grad_clip)], [])
