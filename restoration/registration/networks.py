"""The two modules the registration task builds around ``RegUNet``: the search supernet, holding
the log loss weights as parameters, and the network trained and evaluated, holding the searched
(fixed) log loss weights as buffers, so ``model.pt`` records them.

Both take ``moving`` and ``fixed`` ``[N, C, *S]`` and return ``RegUNet``'s dict (``flow``,
``warped``, ``velocity`` when integrating). Log weights are 0-dim float32 tensors named as
``losses.lower_loss`` reads them (``HPARAM_NAMES``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nas.genotype import Genotype
from restoration.registration.model import RegSearchNet

__all__ = ["HPARAM_NAMES", "RegistrationNetwork", "RegistrationSearch"]

#: names in hparams.json -> log-weight keys of ``losses.lower_loss``
HPARAM_NAMES = {"smooth": "log_smooth", "jacobian": "log_jacobian"}


class RegistrationSearch(nn.Module):
    """Everything a search optimises: ``net`` (``RegNet``, or ``RegSearchNet`` when the cells are
    searched) and ``log_smooth`` (and ``log_jacobian`` when ``jacobian`` is given), the logs of the
    start weights ``smooth`` and ``jacobian`` as 0-dim parameters, trainable when ``learn``."""

    def __init__(self, net: nn.Module, smooth: float, jacobian: float | None, learn: bool) -> None:
        super().__init__()
        self.net = net
        self.log_smooth = nn.Parameter(torch.tensor(math.log(smooth)), requires_grad=learn)
        if jacobian is not None:
            self.log_jacobian = nn.Parameter(torch.tensor(math.log(jacobian)), requires_grad=learn)

    def forward(self, moving: Tensor, fixed: Tensor) -> dict[str, Tensor]:
        return self.net(moving, fixed)

    def log_weights(self) -> dict[str, nn.Parameter]:
        """``{"log_smooth": ...[, "log_jacobian": ...]}``."""
        return {n: p for n, p in self.named_parameters(recurse=False) if n in HPARAM_NAMES.values()}

    def hparams(self) -> dict[str, Tensor]:
        """The loss weights themselves (not their logs) by their names in hparams.json, on the CPU."""
        logw = self.log_weights()
        return {name: torch.exp(logw[key].detach()).cpu() for name, key in HPARAM_NAMES.items() if key in logw}

    def genotype(self) -> Genotype | None:
        """The searched cells' genotype (None when the cells are not searched)."""
        return self.net.genotype() if isinstance(self.net, RegSearchNet) else None

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if n.startswith("net.") and "alphas_" not in n}

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        return {n: p for n, p in self.named_parameters() if "alphas_" in n}


class RegistrationNetwork(nn.Module):
    """``net`` with the (fixed) log loss weights of ``hparams`` (``{"smooth": w[, "jacobian": w]}``)
    as buffers. ``forward(moving, fixed, loss_weights=False)``: ``net``'s dict; with ``loss_weights``
    the log weights join it under their keys (``log_smooth``[, ``log_jacobian``]), for the loss."""

    def __init__(self, net: nn.Module, hparams: dict[str, Tensor]) -> None:
        super().__init__()
        self.net = net
        for name, value in hparams.items():
            self.register_buffer(HPARAM_NAMES[name], torch.log(value.detach().float().reshape(())))

    def forward(self, moving: Tensor, fixed: Tensor, loss_weights: bool = False) -> dict[str, Tensor]:
        out = self.net(moving, fixed)
        if loss_weights:
            out.update({n: b for n, b in self.named_buffers(recurse=False) if n in HPARAM_NAMES.values()})
        return out
