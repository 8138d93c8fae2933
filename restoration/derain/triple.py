"""The three-level search of ``--recipe tmics`` (TMICS, Mu et al., TIP 2021), as ``bilevel.LoopLevel``s.

Levels, top first (each level's variables minimise its loss given the levels above, with the levels
below at their best responses; ``bilevel.MultilevelLoop`` steps them, ``--method`` differentiates):

1. ``aas``: the hyper-parameters lambda, the weights of the Attention-based Averaging Scheme that
   merges the DNA and CNA outputs (the released code learns them on a stage of their own, the
   paper's ``argmin_lambda L_D``), Adam ``arch_lr`` on the deraining loss of validation batches;
2. ``arch``: the architecture, ``alphas_dna``, ``alphas_cna`` (the two searched cells) and ``beta``
   (the inter-frame module, OFM against TGM), Adam ``arch_lr`` on the same validation loss;
3. ``weights``: every other weight (cells, inter-frame modules, flow network, heads), ``lower_optimizer``
   on the deraining loss of training batches.

What the paper leaves to its code and the code leaves out (which loss each level reads, the order and
rates of the steps) is chosen here: every level reads the task's deraining loss (``pixel_loss`` +
``ssim_weight`` x (1 - SSIM)), the two upper levels on validation batches; the default method is
``one_step`` (one virtual step of each level below, DARTS's second order nested), with the weights'
learning rate as its step.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

import bilevel
from bilevel import Level, LoopLevel
from restoration.derain.losses import derain_loss
from restoration.derain.model import network_input
from restoration.derain.settings import DerainSettings
from restoration.derain.tmics import TMICSSearch
from tasks.training import ARCH_BETAS, make_optimizer

__all__ = ["tmics_levels", "aas_hparams"]


def tmics_levels(supernet: TMICSSearch, s: DerainSettings) -> list[LoopLevel]:
    """The three levels of the module docstring over ``supernet``'s parameters."""
    aas = supernet.aas_parameters()
    arch = supernet.arch_parameters()
    weights = {k: v for k, v in supernet.weight_parameters().items() if k not in aas}
    w = s.loss_weights()

    def loss(values: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
        out = bilevel.call(supernet, values, network_input(batch))["out"]
        return derain_loss(out, batch["target"], w, s.pixel_loss)

    def adam(params: dict[str, Tensor]) -> torch.optim.Optimizer:
        return make_optimizer("adam", params.values(), s.arch_lr, s.arch_weight_decay, betas=ARCH_BETAS)

    lower = make_optimizer(s.lower_optimizer, weights.values(), s.lr, s.weight_decay, s.momentum)
    return [LoopLevel("aas", Level(aas, loss), adam(aas), grad_clip=s.grad_clip),
            LoopLevel("arch", Level(arch, loss), adam(arch), grad_clip=s.grad_clip),
            LoopLevel("weights", Level(weights, loss), lower, batch="lower", grad_clip=s.lower_grad_clip)]


def aas_hparams(supernet: TMICSSearch) -> dict[str, Tensor]:
    """The learned top level (the AAS weights) by parameter name, for hparams.json."""
    return {k: v.detach().cpu() for k, v in supernet.aas_parameters().items()}
