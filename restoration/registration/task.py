"""The deformable registration application as a ``Task``: bilevel-learned loss weights (TPAMI 2021
bilevel registration, AutoReg's objective learning) and, with ``--search-cells``, AutoReg's cells.

Search: one upper group over one lower level. Lower variables: the network weights, on
``similarity + lambda * smoothness [+ mu * Jacobian penalty]`` (``losses.lower_loss``); upper
variables: ``log lambda`` (and ``log mu``; and the cells' alphas with ``--search-cells``), on
``1 - soft Dice`` of the moving label maps warped by the field against the fixed ones plus
``folding_weight`` x the folding penalty (``losses.upper_loss``), on the upper half of the training
subjects. The result is ``hparams.json`` ``{"smooth": lambda[, "jacobian": mu]}`` (the weights
themselves, not their logs), and ``genotype.json`` with ``--search-cells``.

Training: the network (plain U-Net, or with the genotype's cells) with the searched weights fixed
(kept as buffers of the network, so ``model.pt`` records them), Adam or SGD on the lower loss
(learning rate constant, or cosine per epoch to 0 at the last: ``lr_schedule``);
the model is selected on validation Dice (fixed validation pairs, never test subjects).
Evaluation: ``dice``, ``folding_pct``, ``jacobian_std`` per pair (``metrics.py``), per-label Dice
and the unregistered Dice in ``per_image.csv`` (the test set's line gives its mean); ``--save-images`` writes, per pair,
``NAME.png`` (the warped moving image), ``panels/NAME.png`` (fixed | moving | warped | deformation
grid | det J, with the metrics: ``pictures.py``) and ``fields/NAME.npy``: the displacement
``[dims, *S]`` float32 in pixels/voxels, channel ``i`` along spatial axis ``i``
(``warped(p) = moving(p + u(p))``). Settings and recipes: ``settings.py``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn

import bilevel
from bilevel import Group, LowerLevel
from restoration.registration import data as regdata
from restoration.registration.evaluate import register, save_outputs
from restoration.registration.genotype import CELL_NAMES, SPACE, check_genotype
from restoration.registration.losses import lower_loss, upper_loss
from restoration.registration.metrics import labels_present, unregistered_dice
from restoration.registration.model import RegNet, RegSearchNet
from restoration.registration.networks import HPARAM_NAMES, RegistrationNetwork, RegistrationSearch
from restoration.registration.ops import AUTOREG_PRIMITIVES
from restoration.registration.pictures import pair_panel
from restoration.registration.settings import RECIPES, RegistrationSettings, add_task_arguments
from tasks import SearchResult, SearchSetup, Task, TrainGroup, TrainSetup
from tasks.base import Scoring, SearchData, TestData, TrainData
from tasks.results import HparamsError
from tasks.training import ARCH_BETAS, make_optimizer

__all__ = ["RegistrationTask", "check_hparams"]


def check_hparams(hparams: dict[str, Tensor], source: str = "") -> None:
    """One-line ``HparamsError`` unless ``hparams`` is ``{"smooth": w[, "jacobian": w]}``, weights > 0."""
    where = f" {source}" if source else ""
    unknown = sorted(set(hparams) - set(HPARAM_NAMES))
    if unknown or "smooth" not in hparams:
        raise HparamsError(f"hyper-parameters{where} must be {{\"smooth\": lambda[, \"jacobian\": mu]}}, got names "
                           f"{sorted(hparams)}; pass the hparams.json of a registration search")
    for k, v in hparams.items():
        if v.numel() != 1 or not math.isfinite(float(v.reshape(-1)[0])) or float(v.reshape(-1)[0]) <= 0:
            raise HparamsError(f"hyper-parameter {k!r}{where} must be one positive number, got {v.tolist()}")


def _learned(s: RegistrationSettings) -> list[str]:
    """The log loss weights a search learns, sorted."""
    if not s.learn_weights:
        return []
    return sorted(["log_smooth"] + (["log_jacobian"] if s.jacobian_weight is not None else []))


def _search_note(s: RegistrationSettings, lower: int, upper: int) -> str:
    """The search's sets, what each level optimises, and darts1's blind spot."""
    source = "embedded training pairs" if s.data is None else f"training subjects of '{s.data}'"
    hyper = _learned(s)
    what = ", ".join(([f"log loss weights {hyper}"] if hyper else []) + (["cell alphas"] if s.search_cells else []))
    note = (f"search: lower level on {lower} pairs, upper level on {upper} pairs "
            f"(two disjoint halves of the {source}); validation and test subjects unread"
            f"\nupper: {what} (Adam) on 1 - soft Dice + {s.folding_weight} x folding; lower: network "
            f"weights ({s.lower_optimizer_for(s.method)}) on {s.similarity} + lambda x smoothness"
            + (" + mu x Jacobian penalty" if s.jacobian_weight is not None else ""))
    if s.method == "darts1" and hyper:
        note += ("\nnote: darts1 ignores how the weights depend on the loss weights: their "
                 "hypergradient is 0 and they keep their start values (use neumann, cg or darts2)")
    return note


def _train_optimizer(s: RegistrationSettings) -> str:
    """The retraining optimizer: ``sgd`` when ``lower_optimizer`` says so, else ``adam`` (``auto`` too)."""
    return "sgd" if s.lower_optimizer == "sgd" else "adam"


class RegistrationTask(Task):
    """Deformable registration (see the module docstring)."""

    name = "registration"
    space = SPACE
    cell_names = CELL_NAMES
    primitives = tuple(AUTOREG_PRIMITIVES)
    #: retraining requires the learned loss weights; a genotype (``--search-cells``) is used when given
    results = ("hparams",)
    Settings = RegistrationSettings
    recipes = RECIPES
    default_method = "cg"
    metrics = {"dice": "max", "folding_pct": "min", "jacobian_std": "min"}
    select = "dice"
    cell_titles = {"coarse": "coarse level (the U-Net's bottleneck)", "fine": "fine level (full resolution)"}
    data_help = ("neurite-OASIS 2D (DIR/OASIS_OAS1_xxxx_MR1/slice_norm.nii.gz + slice_seg24.nii.gz) or 3D "
                 "(aligned_norm.nii.gz + aligned_seg35.nii.gz, --dims 3; NIfTI needs pip install -e .[registration]), "
                 "or DIR/*.npz with 'vol' and 'seg'; DIR/{train,val,test}/ or a seeded subject split; --atlas FILE "
                 "for scan-to-atlas pairs; default: embedded photos (2D) or ellipsoid volumes (3D) deformed by "
                 "random diffeomorphisms")
    can_score_predictions = False
    can_tile = False
    conventions = ()

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        add_task_arguments(parser, stage)

    def check_result(self, result: SearchResult, source: str = "") -> None:
        where = f" {source}" if source else ""
        if not result.hparams:
            raise HparamsError(f"task 'registration' needs its learned loss weights{where}; pass --hparams FILE "
                               "(hparams.json of a search, e.g. {\"smooth\": 0.1}) or --from RUN_DIR")
        check_hparams(result.hparams, source)
        super().check_result(result, source)
        if result.genotype is not None:
            check_genotype(result.genotype, source)

    # -- search ----------------------------------------------------------------------------
    def search_data(self, s: RegistrationSettings) -> SearchData:
        lower, upper = regdata.search_sets(s)
        return SearchData(lower, upper, note=_search_note(s, len(lower), len(upper)))

    def build_search(self, s: RegistrationSettings, device: torch.device) -> SearchSetup:
        kw = dict(dims=s.dims, channels=tuple(s.channels), velocity=s.velocity, int_steps=s.int_steps)
        net = RegSearchNet(**kw) if s.search_cells else RegNet(**kw)
        supernet = RegistrationSearch(net, s.smooth_weight, s.jacobian_weight, s.learn_weights).to(device)
        weights = supernet.weight_parameters()
        hyper = {k: p for k, p in supernet.log_weights().items() if p.requires_grad}
        alphas = supernet.arch_parameters()

        def run(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
            return bilevel.call(supernet, {**lower, **upper}, batch["moving"], batch["fixed"])

        def f(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
            logw = {k: upper[k] if k in upper else v.detach() for k, v in supernet.log_weights().items()}
            return lower_loss(run(lower, upper, batch), batch, logw, s.similarity, s.ncc_window)

        def F(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
            labels = labels_present(batch["moving_seg"], batch["fixed_seg"])
            return upper_loss(run(lower, upper, batch), batch, labels, s.folding_weight)

        opt = make_optimizer(s.lower_optimizer_for(s.method), weights.values(), s.lr, s.weight_decay, s.momentum)
        level = LowerLevel("weights", opt, grad_clip=s.lower_grad_clip)
        param_groups = []
        if hyper:
            param_groups.append({"params": list(hyper.values()), "lr": s.hyper_lr, "weight_decay": 0.0})
        if alphas:
            param_groups.append({"params": list(alphas.values()), "lr": s.arch_lr,
                                 "weight_decay": s.arch_weight_decay})
        upper_opt = make_optimizer("adam", param_groups, s.hyper_lr, betas=ARCH_BETAS)  # rates: the groups'
        problem = bilevel.BilevelProblem(weights, {**hyper, **alphas}, f, F)
        group = Group("upper", problem, upper_opt, level, every=s.upper_every, grad_clip=s.grad_clip)
        schedulers = []
        if s.upper_warmup_epochs:
            warm = s.upper_warmup_epochs
            schedulers.append(torch.optim.lr_scheduler.LambdaLR(upper_opt, lambda e: 0.0 if e < warm else 1.0))
        return SearchSetup(supernet, [group], schedulers)

    def upper_warmup_steps(self, s: RegistrationSettings, steps_per_epoch: int) -> int:
        """``upper_warmup_epochs`` in steps: the upper learning rate is 0 until then."""
        return s.upper_warmup_epochs * steps_per_epoch

    def search_result(self, setup: SearchSetup, s: RegistrationSettings) -> SearchResult:
        supernet = setup.supernet
        return SearchResult(genotype=supernet.genotype(), hparams=supernet.hparams())

    # -- train -----------------------------------------------------------------------------
    def train_data(self, s: RegistrationSettings) -> TrainData:
        train, val = regdata.train_sets(s)
        pairs = f"atlas '{s.atlas}'" if s.atlas else "scan-to-scan"
        note = (f"training on {len(train)} pairs ({pairs}), validation on {len(val)} fixed pairs "
                "of held-out subjects (never the test subjects)")
        split = {"train_pairs": len(train), "val_pairs": len(val), "atlas": s.atlas}
        return TrainData(train, val, note=note, split=split, scoring=Scoring(role="val"))

    def build_network(self, result: SearchResult, s: RegistrationSettings) -> nn.Module:
        self.check_result(result)
        net = RegNet(s.dims, tuple(s.channels), result.genotype, velocity=s.velocity, int_steps=s.int_steps)
        return RegistrationNetwork(net, result.hparams)

    def build_training(self, network: nn.Module, s: RegistrationSettings, steps_per_epoch: int) -> TrainSetup:
        opt = make_optimizer(_train_optimizer(s), network.parameters(), s.lr, s.weight_decay, s.momentum)
        schedulers = []
        if s.lr_schedule == "cosine":  # over the epochs the budget takes (the last may be cut): not make_schedule's
            steps = s.epochs * steps_per_epoch if s.max_steps is None else min(s.epochs * steps_per_epoch, s.max_steps)
            epochs = max(1, math.ceil(steps / steps_per_epoch))
            schedulers.append(torch.optim.lr_scheduler.LambdaLR(
                opt, lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, epochs) / epochs))))
        return TrainSetup([TrainGroup("weights", opt, loss="loss", grad_clip=s.grad_clip)], schedulers)

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: RegistrationSettings) -> dict[str, Tensor]:
        out = network(batch["moving"], batch["fixed"], loss_weights=True)
        log_weights = {k: out[k] for k in HPARAM_NAMES.values() if k in out}
        return {"loss": lower_loss(out, batch, log_weights, s.similarity, s.ncc_window)}

    def training_note(self, s: RegistrationSettings, data: TrainData, network: nn.Module,
                      result: SearchResult) -> str:
        weights = ", ".join(f"{k}={float(v.reshape(-1)[0]):.4g}" for k, v in result.hparams.items())
        return (f"optimising: network weights ({_train_optimizer(s)}, lr {s.lr:g} {s.lr_schedule}) on {s.similarity} "
                f"+ smoothness [+ Jacobian] with the searched weights {weights}; model selected on validation dice")

    # -- evaluate --------------------------------------------------------------------------
    def test_data(self, data: str | None, s: RegistrationSettings) -> TestData:
        test = regdata.test_set(data, s)
        items = (test[k] for k in range(len(test)))
        before = [unregistered_dice(it["moving_seg"], it["fixed_seg"], it["size"]) for it in items]
        note = f"unregistered Dice of these pairs: {sum(before) / len(before):.4f}" if before else ""
        return TestData(test, note=note)

    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any], s: RegistrationSettings,
                       scoring: Scoring) -> tuple[list[dict[str, Any]], Any]:
        results = register(network, batch)
        records = []
        for n, r in enumerate(results):
            before = unregistered_dice(batch["moving_seg"][n], batch["fixed_seg"][n], batch["size"][n])
            r["dice_before"] = before
            rec: dict[str, Any] = {"name": r["name"], **r["metrics"], "dice_unregistered": before}
            rec.update({f"dice_{lab}": d for lab, d in r["dice_per_label"].items()})
            records.append(rec)
        return records, results

    def save_outputs(self, outputs: Any, batch: dict[str, Any], folder: str) -> None:
        """``NAME.png`` (warped), ``panels/NAME.png`` and ``fields/NAME.npy`` per pair."""
        for r in outputs:
            save_outputs(r, folder)

    def samples(self, network: nn.Module, batch: dict[str, Any]) -> Tensor | None:
        """Rows ``fixed | moving | warped | deformation grid | det J`` for up to 4 pairs (3D: middle slice),
        titled with the metrics (``pictures.pair_panel``)."""
        was_training = network.training
        network.eval()
        small = {k: (v[:4] if isinstance(v, (Tensor, list)) else v) for k, v in batch.items()}
        results = register(network, small)
        network.train(was_training)
        return pair_panel(results)

    def example_size(self, s: RegistrationSettings) -> tuple[int, ...]:
        """The embedded default's side (``--size``, else 64 in 2D, 32 in 3D) on each of ``dims`` axes."""
        return (s.size or (64 if s.dims == 2 else 32),) * s.dims

    def example_inputs(self, s: RegistrationSettings, size: Sequence[int], batch: int = 1,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``moving`` and ``fixed``, each ``[batch, 1, *size]``."""
        return {"moving": torch.rand(batch, 1, *size, generator=generator),
                "fixed": torch.rand(batch, 1, *size, generator=generator)}

    def min_opset(self, s: RegistrationSettings) -> tuple[int, str]:
        """3D: opset 20 (ONNX GridSample samples volumes from opset 20 on; 2D images from 16)."""
        return (20, "ONNX GridSample samples volumes only from opset 20 on") if s.dims == 3 else (0, "")

    def evaluation_note(self, s: RegistrationSettings, scoring: Scoring) -> str:
        return ("dice: mean hard Dice over the labels present (background 0 left out; moving labels warped by "
                "nearest neighbour); folding_pct: % of pixels/voxels with det(Jacobian) <= 0 (central "
                "differences); jacobian_std: std of det(Jacobian)"
                "; fields/NAME.npy: displacement [dims, *S] in pixels/voxels, channel i along spatial axis i")
