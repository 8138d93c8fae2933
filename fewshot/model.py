"""The few-shot network (MAML's Conv4) and its adaptation to an episode.

``FewShotNet``: four blocks of 3x3 convolution (``filters``, padding 1), batch normalisation with
batch statistics always (``track_running_stats=False``, as MAML's: an episode's statistics never
leak into another), ReLU and 2x2 max-pooling, then a linear head to ``classes`` outputs. Input
``[B, C, S, S]``; output logits ``[B, classes]``; features ``filters * (S // 16)**2``
(28 -> 1 x 1, 84 -> 5 x 5). With ``step_sizes`` it also holds Meta-SGD's learned per-parameter
step sizes as buffers (``rate_<i>``, shaped like the i-th parameter).

``adapt``: plain gradient steps of the cross entropy on a support set from the network's weights
(or Meta-SGD's per-parameter step sizes), the weights of the network itself untouched; a head of another width
(a baseline pre-trained on all meta-train classes) is first replaced by the nearest-class-mean head of the
support features (``prototype_head``, Proto-MAML's), then every weight takes the same steps as a
meta-learned network's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import bilevel

__all__ = ["FewShotNet", "accuracy", "adapt", "prototype_head"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout, track_running_stats=False),
                         nn.ReLU(inplace=False), nn.MaxPool2d(2))


class FewShotNet(nn.Module):
    """MAML's Conv4 classifier (module docstring). ``image_size`` >= 16 fixes the head's input width."""

    def __init__(self, channels: int, filters: int, classes: int, image_size: int, step_sizes: bool = False) -> None:
        super().__init__()
        self.body = nn.Sequential(_block(channels, filters), *[_block(filters, filters) for _ in range(3)])
        side = image_size
        for _ in range(4):
            side //= 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for four 2x2 poolings; use 16 or more")
        self.head = nn.Linear(filters * side * side, classes)
        self.step_sizes = bool(step_sizes)
        if step_sizes:
            for i, p in enumerate(self.parameters()):
                self.register_buffer(f"rate_{i}", torch.zeros_like(p.detach()))

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, C, S, S]`` -> logits ``[B, classes]``."""
        return self.head(self.body(x).flatten(1))

    def rates(self) -> dict[str, Tensor] | None:
        """Meta-SGD's step sizes by parameter name, or None."""
        if not self.step_sizes:
            return None
        return {name: getattr(self, f"rate_{i}") for i, (name, _) in enumerate(self.named_parameters())}


def adapt(net: FewShotNet, support: dict[str, Tensor], steps: int, lr: float, ways: int) -> dict[str, Tensor]:
    """The weights after ``steps`` gradient steps of the cross entropy on ``support`` (``image [n, C, S, S]``,
    ``label [n]`` in ``0..ways-1``) from ``net``'s, with step size ``lr`` (or ``net``'s Meta-SGD rates);
    a head of another width than ``ways`` starts as ``prototype_head``. ``net`` is not changed."""
    params = {k: p.detach().clone() for k, p in net.named_parameters()}
    if net.head.out_features != ways:
        params.update(prototype_head(net, params, support, ways))
    rates = net.rates() or {}
    with torch.enable_grad():
        for _ in range(steps):
            leaves = {k: v.requires_grad_(True) for k, v in params.items()}
            loss = F.cross_entropy(bilevel.call(net, leaves, support["image"]), support["label"])
            grads = torch.autograd.grad(loss, list(leaves.values()))
            params = {k: (v - _rate(rates.get(k), g, lr) * g).detach() for (k, v), g in zip(leaves.items(), grads)}
    return params


@torch.no_grad()
def prototype_head(net: FewShotNet, params: dict[str, Tensor], support: dict[str, Tensor], ways: int
                   ) -> dict[str, Tensor]:
    """A head of ``ways`` outputs that is the nearest-class-mean classifier of the support features:
    ``W_c = 2 mu_c``, ``b_c = -||mu_c||^2`` (``mu_c``: the mean body features of class ``c``), so that the
    logits are ``-||f - mu_c||^2`` up to a term common to every class (Proto-MAML's head, Triantafillou et
    al., "Meta-Dataset", ICLR 2020). ``head.weight [ways, F]``, ``head.bias [ways]``."""
    body = {k[len("body."):]: v for k, v in params.items() if k.startswith("body.")}
    features = bilevel.call(net.body, body, support["image"]).flatten(1)  # [n, F]
    onehot = F.one_hot(support["label"], ways).to(features.dtype)  # [n, ways]
    mu = onehot.t() @ features / onehot.sum(0).clamp_min(1.0)[:, None]  # [ways, F]
    return {"head.weight": 2.0 * mu, "head.bias": -(mu * mu).sum(1)}


def _rate(rate: Tensor | None, g: Tensor, lr: float) -> Tensor | float:
    """A learned step size shaped like ``g``, else ``lr`` (no rates, or a replaced head)."""
    return rate if rate is not None and rate.shape == g.shape else lr


@torch.no_grad()
def accuracy(net: FewShotNet, params: dict[str, Tensor], query: dict[str, Tensor]) -> float:
    """Percent of ``query`` images (``image [m, C, S, S]``, ``label [m]``) classified right with ``params``."""
    logits = bilevel.call(net, params, query["image"])
    return 100.0 * float((logits.argmax(1) == query["label"]).float().mean())
