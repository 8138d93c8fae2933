"""Infrared/visible image fusion (after HAF, ACM MM 2021, and TIMFusion, TPAMI 2023) as a ``Task``.

Search: the multi-scale supernet (``model.FusionSearchNet`` over the shared restoration ops,
``genotype.FUSION_PRIMITIVES``) and ONE upper group over one lower level. Lower variables: the
network weights, on the unsupervised fusion loss (``losses.fusion_loss``: intensity + gradient +
SSIM) of a training batch. Upper variables: the cells' alphas (Adam ``arch_lr``) and, with
``learn_loss_weights``, the logits of the loss weights (a second Adam parameter group, ``hyper_lr``),
the weights being ``total x softmax(logits)`` (``total``: the sum of the starting weights, so the
weights cannot all shrink: scaling every weight only rescales the lower learning rate). Upper loss
(the validation objective): the fusion loss with the FIXED weights of the settings on a validation
batch, plus ``latency_weight x`` the supernet's expected latency in ms (``latency.expected_latency``
over op latencies timed on the current device at the start of the search). Any ``--method``.

Where the op latencies live: the table is measured in ``build_search`` and returned as the setting
``latency_table`` (``{"settings": what it was measured with, "latency_ms": {cell: {op: ms}}}``) in
``SearchSetup.settings``; the search command applies it to the run's settings, which it writes to the
run folder's ``config.json`` and ``checkpoint.pt``, so the table is cached in the run folder and a
``--resume`` (or a ``--config`` of that ``config.json``) on the same device, torch version, width, size
and primitives reuses it instead of timing again. When ``latency_weight > 0``, every derived genotype's
discrete network is timed too (``searched_latency``) and printed with the result.

Result: ``genotype.json``; with ``learn_loss_weights`` also ``hparams.json``
``{"intensity": w, "gradient": w, "ssim": w}``. Training retrains ``model.FusionNet`` of the genotype
on the fusion loss with the searched weights when the run has them (``--from`` a search with learned
weights, or ``--hparams``), else the settings' weights; the weights are buffers of the network, so
``model.pt`` records them. Visible RGB images are fused on Y and get their CbCr back (``color``).

Metrics: the thirteen keys of ``metrics`` (MI in nats and in bits, ``mi_bits``; the MMIF-CDDFuse
evaluator's definitions, or another named convention: ``metrics_conventions``), all "max" but
``mse``. The model is selected on validation ``qabf``: it measures the edge information carried over
from BOTH sources, is bounded, and is not raised by noise or contrast stretching (EN, SD, SF and AG
are) nor by copying one source (MI, and the evaluator's SSIM sum are highest for a copy or the
average). Validation scores only the cheap metrics and ``qabf`` (MI, VIF and SSIM cost most of the
time of a 96x96 image on a CPU); ``evaluate.py`` scores all of them. VIF needs images of at least
``VIF_MIN_SIZE`` pixels a side: smaller items carry no ``vif``.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset
from tqdm import tqdm

import bilevel
from bilevel import Group, LowerLevel
from datasets.io import write_image
from datasets.pairs import describe_data
from nas.genotype import Genotype, GenotypeError
from restoration.fusion import data as fdata
from restoration.fusion.color import split_luma
from restoration.fusion.evaluation import item_panel, labelled_grid, restore, score_item
from restoration.fusion.evaluation import score_predictions as score_folder
from restoration.fusion.genotype import FUSION_PRIMITIVES
from restoration.fusion.latency import expected_latency, measure_latency, reuse_or_measure
from restoration.fusion.losses import LOSS_TERMS, fusion_loss
from restoration.fusion.metrics import METRIC_NAMES, VIF_MIN_SIZE
from restoration.fusion.metrics_conventions import CONVENTIONS
from restoration.fusion.model import CELL_NAMES, SPACE, FusionNet, FusionSearchNet, check_fusion_genotype
from restoration.fusion.settings import RECIPES, FusionSettings, add_task_arguments
from restoration.ops import RESTORATION_OPS
from restoration.panels import PANELS
from tasks import Scoring, SearchData, SearchResult, SearchSetup, Task, TestData, TrainData, TrainSetup
from tasks.results import HparamsError
from tasks.training import ARCH_BETAS, make_optimizer, make_schedule, single_group_training

__all__ = ["FusionSearch", "FusionNetwork", "FusionTask", "VALIDATION_METRICS", "check_loss_weights",
           "searched_latency", "sources"]

#: Metrics scored on validation during training (``select`` and the cheap ones).
VALIDATION_METRICS = ("en", "sd", "sf", "ag", "qabf", "scd", "cc", "psnr", "mse")


def sources(batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """(infrared ``[N, 1, H, W]``, visible luma ``[N, 1, H, W]``) of a batch (RGB visible: its Y)."""
    ir, vi = batch["ir"], batch["vi"]
    return ir, (vi if vi.shape[1] == 1 else split_luma(vi)[0])


def _weights_tensor(weights: dict[str, float]) -> Tensor:
    return torch.tensor([float(weights[k]) for k in LOSS_TERMS])


def _discrete_net(genotype: Genotype, s: FusionSettings) -> FusionNet:
    return FusionNet(genotype, RESTORATION_OPS, C=s.channels, use_decomposition=s.decomposition,
                     gf_kernel=s.gf_kernel, gf_eps=s.gf_eps)


class FusionSearch(nn.Module):
    """Everything a search optimises: ``net`` (the supernet, its alphas ``net.alphas.<cell>``) and
    ``loss_logits`` ``[3]`` (upper variables only with ``learn``); ``forward(ir, vi)`` as the supernet."""

    def __init__(self, s: FusionSettings) -> None:
        super().__init__()
        self.net = FusionSearchNet(RESTORATION_OPS, FUSION_PRIMITIVES, C=s.channels, use_decomposition=s.decomposition,
                                   gf_kernel=s.gf_kernel, gf_eps=s.gf_eps, partial_k=s.partial_k)
        w = _weights_tensor(s.loss_weights())
        self.register_buffer("loss_total", w.sum())
        # a zero weight stays zero only when not learned (learning needs each > 0: settings check)
        self.loss_logits = nn.Parameter(torch.log(w.clamp_min(1e-12) / w.sum()), requires_grad=s.learn_loss_weights)

    def forward(self, ir: Tensor, vi: Tensor) -> Tensor:
        return self.net(ir, vi)

    def weights_from(self, logits: Tensor) -> Tensor:
        """Loss weights ``[3]`` (``LOSS_TERMS`` order) ``= total x softmax(logits)``."""
        return self.loss_total * F.softmax(logits, dim=0)

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        return {f"net.{k}": p for k, p in self.net.weight_parameters().items()}

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        return {f"net.{k}": p for k, p in self.net.arch_parameters().items()}


class FusionNetwork(nn.Module):
    """The network to train and evaluate with its loss weights ``[3]`` as a buffer.
    ``forward(ir, vi)``: ``[N, 1, H, W]`` x2 -> fused ``[N, 1, H, W]``; with ``with_weights``:
    ``(fused, loss weights [3])`` (the training loss reads them so)."""

    def __init__(self, net: FusionNet, weights: dict[str, float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("loss_weights", _weights_tensor(weights))

    def forward(self, ir: Tensor, vi: Tensor, with_weights: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        fused = self.net(ir, vi)
        return (fused, self.loss_weights) if with_weights else fused


def check_loss_weights(hparams: dict[str, Tensor], source: str = "") -> dict[str, float]:
    """``{"intensity", "gradient", "ssim"}`` -> finite numbers >= 0 (not all 0), else a one-line
    ``HparamsError``."""
    where = f" {source}" if source else ""
    if set(hparams) != set(LOSS_TERMS):
        raise HparamsError(f"hyper-parameters{where} must be the fusion loss weights {list(LOSS_TERMS)}, got "
                           f"{sorted(hparams)}; pass the hparams.json of a fusion search with --learn-loss-weights")
    out = {}
    for k, v in hparams.items():
        x = float(v.reshape(-1)[0]) if v.numel() == 1 else float("nan")
        if not (math.isfinite(x) and x >= 0):
            raise HparamsError(f"loss weight {k!r}{where} must be one number >= 0, got {v.tolist()}")
        out[k] = x
    if sum(out.values()) <= 0:
        raise HparamsError(f"loss weights{where} are all 0; at least one must be positive")
    return out


def searched_latency(genotype: Genotype, s: FusionSettings, device: torch.device) -> float:
    """Median forward time (ms) on ``device`` of the discrete network of ``genotype`` on an
    ``s.latency_size`` square pair (``s.latency_repeats`` timed runs)."""
    net = _discrete_net(genotype, s).to(device)
    return measure_latency(net, s.latency_size, s.latency_size, repeats=s.latency_repeats)


def _verified(dataset: Dataset) -> Dataset:
    dataset.verify()  # every file checked (headers) before the first step: one-line DataError
    return dataset


def _search_objective(s: FusionSettings) -> str:
    """What the two levels of a search optimise (lines of the search note)."""
    hyper = s.learn_loss_weights
    what = "alphas" + (" and loss-weight logits" if hyper else "")
    note = (f"upper: {what} (Adam) on the fusion loss with fixed weights {_fmt(s.loss_weights())} on validation"
            + (f" + {s.latency_weight:g} x expected latency (ms)" if s.latency_weight > 0 else "")
            + f"; lower: weights ({s.lower_optimizer}) on the fusion loss with "
            + ("the learned weights" if hyper else "the same weights"))
    if s.method == "darts1" and hyper:
        note += ("\nnote: darts1 ignores how the weights depend on the loss weights: their "
                 "hypergradient is 0 and they keep their start values (use darts2, cg, neumann or ias)")
    return note


class FusionTask(Task):
    """Infrared/visible fusion (see the module docstring)."""

    name = "fusion"
    space = SPACE
    cell_names = CELL_NAMES
    primitives = FUSION_PRIMITIVES
    #: a search yields a genotype; with ``--learn-loss-weights`` loss weights too (optional: ``check_result``)
    Settings = FusionSettings
    recipes = RECIPES
    metrics = {name: ("min" if name == "mse" else "max") for name in METRIC_NAMES}
    select = "qabf"
    cell_titles = {"scale1": "full-resolution branch", "scale2": "1/2-scale branch", "scale4": "1/4-scale branch"}
    data_help = ("registered infrared/visible pairs matched by name or number: DIR/{ir,vi} (TarDAL, M3FD, TNO and "
                 "RoadScene of MMIF-CDDFuse), DIR/{infrared,visible}, DIR/{Inf,Vis} (any case), DIDFuse's DIR/IR<n>.* + "
                 "DIR/VIS<n>.*, optionally under DIR/{train,val,test}/; 8- or 16-bit; "
                 "infrared gray, visible RGB (fused on Y, colour put back) or gray; validation is DIR/val or a "
                 "seeded slice of the training pairs, never the test files; default: embedded photographs rendered as a "
                 "night capture (visible) and a synthetic thermal image (infrared)")
    pairs_help = "--pairs IR_DIR VI_DIR: infrared images (INPUT_DIR) and visible images (TARGET_DIR)"
    can_score_predictions = True
    conventions = tuple(CONVENTIONS)

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        add_task_arguments(parser, stage)

    def check_result(self, result: SearchResult, source: str = "") -> None:
        if result.genotype is None:
            raise GenotypeError("task 'fusion' needs a genotype; pass --genotype FILE (e.g. "
                                "restoration/fusion/fusion_reference.json) or --from RUN_DIR")
        self.check_genotype(result.genotype, source)
        check_fusion_genotype(result.genotype, RESTORATION_OPS, source)
        if result.hparams:
            check_loss_weights(result.hparams, source)

    # -- search ----------------------------------------------------------------------------
    def search_data(self, s: FusionSettings) -> SearchData:
        lower, upper = fdata.search_sets(s)
        lower, upper = _verified(lower), _verified(upper)
        where = "embedded training photographs" if s.data is None else f"'{describe_data(s.data)}'"
        note = (f"search: lower level on {len(lower)} training pairs, upper level on {len(upper)} "
                f"validation pairs ({where}); test pairs unread\n{_search_objective(s)}")
        return SearchData(lower, upper, note)

    def build_search(self, s: FusionSettings, device: torch.device) -> SearchSetup:
        """The supernet, its group and the weights' schedule; with ``latency_weight > 0`` the op latency
        record (reused from ``s.latency_table`` or timed now, a line printed) as the setting
        ``latency_table``."""
        supernet = FusionSearch(s).to(device)
        weights, alphas = supernet.weight_parameters(), supernet.arch_parameters()
        hyper = {"loss_logits": supernet.loss_logits} if s.learn_loss_weights else {}
        fixed = _weights_tensor(s.loss_weights()).to(device)
        table, kept = None, {}
        if s.latency_weight > 0:
            record, measured = reuse_or_measure(s.latency_table, RESTORATION_OPS, FUSION_PRIMITIVES, s.channels,
                                                s.latency_size, device, repeats=s.latency_repeats)
            table, kept = record["latency_ms"], {"latency_table": record}
            print(f"op latencies {'timed now' if measured else 'reused from the run settings'} on "
                  f"{record['settings']['device']} ({s.latency_size}x{s.latency_size} input, ms): "
                  + "; ".join(f"{c}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items()) for c, row in table.items()))

        def run(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> tuple[Tensor, ...]:
            ir, vi = sources(batch)
            return bilevel.call(supernet, {**lower, **upper}, ir, vi), ir, vi

        def f(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
            fused, ir, vi = run(lower, upper, batch)
            w = supernet.weights_from(upper["loss_logits"]) if "loss_logits" in upper else fixed
            return fusion_loss(fused, ir, vi, w)[0]

        def F_(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
            fused, ir, vi = run(lower, upper, batch)
            loss = fusion_loss(fused, ir, vi, fixed)[0]
            if table is not None:
                probs = {c: F.softmax(upper[f"net.alphas.{c}"], dim=-1) for c in CELL_NAMES}
                loss = loss + s.latency_weight * expected_latency(probs, table, FUSION_PRIMITIVES)
            return loss

        opt = make_optimizer(s.lower_optimizer, weights.values(), s.lr, s.weight_decay, s.momentum)
        level = LowerLevel("weights", opt, grad_clip=s.lower_grad_clip)
        groups = [{"params": list(alphas.values()), "lr": s.arch_lr, "weight_decay": s.arch_weight_decay}]
        if hyper:
            groups.append({"params": list(hyper.values()), "lr": s.hyper_lr, "weight_decay": 0.0})
        upper_opt = make_optimizer("adam", groups, s.arch_lr, s.arch_weight_decay, betas=ARCH_BETAS)
        problem = bilevel.BilevelProblem(weights, {**alphas, **hyper}, f, F_)
        group = Group("upper", problem, upper_opt, level, grad_clip=s.grad_clip)
        return SearchSetup(supernet, [group], make_schedule(s.lr_schedule, opt, s.epochs, s.lr_min), kept)

    def search_result(self, setup: SearchSetup, s: FusionSettings) -> SearchResult:
        """The supernet's genotype and, with ``learn_loss_weights``, its loss weights; with
        ``latency_weight > 0`` the genotype's discrete network is timed and the time printed."""
        supernet: FusionSearch = setup.supernet
        genotype = supernet.net.genotype()
        hparams = {}
        if s.learn_loss_weights:
            w = supernet.weights_from(supernet.loss_logits.detach()).cpu()
            hparams = {k: w[i].clone() for i, k in enumerate(LOSS_TERMS)}
        if s.latency_weight > 0:
            device = next(supernet.parameters()).device
            ms = searched_latency(genotype, s, device)
            tqdm.write(f"searched network: {ms:.3f} ms per {s.latency_size}x{s.latency_size} pair "
                       f"on {device} (median of {s.latency_repeats}); genotype {genotype.to_json()}")
        return SearchResult(genotype=genotype, hparams=hparams)

    # -- train -----------------------------------------------------------------------------
    def train_data(self, s: FusionSettings) -> TrainData:
        train, val = fdata.train_sets(s)
        train, val = _verified(train), _verified(val)
        where = "embedded photographs" if s.data is None else f"'{describe_data(s.data)}'"
        note = f"training on {len(train)} pairs, validation on {len(val)} pairs ({where}; never the test files)"
        return TrainData(train, val, note, {"train_pairs": len(train), "val_pairs": len(val)},
                         Scoring(VALIDATION_METRICS, role="val"))

    def build_network(self, result: SearchResult, s: FusionSettings) -> nn.Module:
        self.check_result(result)
        weights = check_loss_weights(result.hparams) if result.hparams else s.loss_weights()
        return FusionNetwork(_discrete_net(result.genotype, s), weights)

    def build_training(self, network: nn.Module, s: FusionSettings, steps_per_epoch: int) -> TrainSetup:
        return single_group_training(network, s)

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: FusionSettings) -> dict[str, Tensor]:
        ir, vi = sources(batch)
        fused, weights = network(ir, vi, with_weights=True)
        total, terms = fusion_loss(fused, ir, vi, weights)
        return {"loss": total, **{f"loss_{k}": v for k, v in terms.items()}}

    def training_note(self, s: FusionSettings, data: TrainData, network: nn.Module, result: SearchResult) -> str:
        return (f"optimising: network weights ({s.train_optimizer}) on the fusion loss (intensity + gradient + SSIM, "
                f"{'searched' if result.hparams else 'fixed'} weights); model selected on validation qabf")

    # -- evaluate --------------------------------------------------------------------------
    def test_data(self, data: str | None, s: FusionSettings) -> TestData:
        return TestData(_verified(fdata.test_set(data)))

    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any], s: FusionSettings,
                       scoring: Scoring) -> tuple[list[dict[str, Any]], Any]:
        items = restore(network, batch)
        names = scoring.metrics or METRIC_NAMES
        records = [{"name": it["name"], **score_item(it, names, s.textbook_ssim, s.convention)} for it in items]
        for it, rec in zip(items, records):
            it["metrics"] = {k: v for k, v in rec.items() if k != "name"}
        return records, items

    def save_outputs(self, outputs: Any, batch: dict[str, Any], folder: str) -> None:
        """``STEM.png`` (the fused image, 8-bit, scored by ``--predictions`` as is) and ``panels/STEM.png``
        (``infrared | visible | fused``, each titled with its metrics)."""
        for item in outputs:
            stem = Path(str(item["name"])).stem
            write_image(Path(folder) / f"{stem}.png", item["fused"])
            write_image(Path(folder) / PANELS / f"{stem}.png", item_panel(item))

    def samples(self, network: nn.Module, batch: dict[str, Any]) -> Tensor | None:
        was_training = network.training
        network.eval()
        items = restore(network, {k: (v[:4] if isinstance(v, (Tensor, list)) else v) for k, v in batch.items()})
        network.train(was_training)
        return labelled_grid(items)

    def score_predictions(self, predictions: str, data: str | None,
                          s: FusionSettings) -> tuple[list[dict[str, Any]], Scoring]:
        """Records ``{"name", <metric>: value}`` of the fused images in ``predictions`` (matched to the pairs
        of ``data``, or of the embedded test split, by file stem; any image extension), all thirteen
        metrics (``s.textbook_ssim`` picks the SSIM, ``s.convention`` the definitions)."""
        test = self.test_data(data, s)
        return score_folder(predictions, test.test, METRIC_NAMES, s.textbook_ssim, s.convention), test.scoring

    def metrics_record(self, s: FusionSettings, scoring: Scoring) -> dict[str, str]:
        """``{"convention": name, "convention_note": ...}``: the definitions the scores use."""
        return {"convention": s.convention, "convention_note": self.evaluation_note(s, scoring)}

    output_name = "fused"

    def example_inputs(self, s: FusionSettings, size: Sequence[int], batch: int = 1,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``ir`` and ``vi_y`` (the visible image's luma, ``fuse_color``), each ``[batch, 1, H, W]``."""
        return {"ir": torch.rand(batch, 1, *size, generator=generator),
                "vi_y": torch.rand(batch, 1, *size, generator=generator)}

    def evaluation_note(self, s: FusionSettings, scoring: Scoring) -> str:
        ssim = ("ssim: Wang et al.'s (Gaussian 11x11, sigma 1.5, range 255), summed over the two sources"
                if s.textbook_ssim else
                "ssim: the evaluator's scikit-image call (7x7 uniform window, effective data_range 2), summed over "
                "the two sources")
        return (f"fusion metrics, convention {s.convention!r} ({CONVENTIONS[s.convention].note}): gray images on "
                "[0, 255] (8-bit rounding, RGB via OpenCV's 0.299/0.587/0.114); MI summed over the two sources (mi "
                "in nats, mi_bits in bits); VIF, Qabf, SCD summed too; CC and MSE averaged; PSNR from the averaged "
                f"MSE and the fused image's peak; EN in bits; {ssim}; VIF only on images >= {VIF_MIN_SIZE} px a side")


def _fmt(weights: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in weights.items())
