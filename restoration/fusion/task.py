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

Where the op latencies live: the table is measured in ``build_search`` and stored in the settings
field ``latency_table`` (``{"settings": what it was measured with, "latency_ms": {cell: {op: ms}}}``);
the search command writes the settings to the run folder's ``config.json`` and ``checkpoint.pt`` after
``build_search``, so the table is cached in the run folder and a ``--resume`` (or a ``--config`` of that
``config.json``) on the same device, torch version, width, size and primitives reuses it instead of
timing again. Every derived genotype's discrete network is timed too (``measure_latency``) and printed
with the result when ``latency_weight > 0``; ``last_latency_ms`` holds the value.

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
from restoration.fusion import data as fdata
from restoration.fusion.color import split_luma
from restoration.fusion.evaluation import item_panel, labelled_grid, restore, score_item
from restoration.panels import PANELS
from restoration.fusion.evaluation import score_predictions as score_folder
from restoration.fusion.genotype import FUSION_PRIMITIVES
from restoration.fusion.latency import expected_latency, measure_latency, reuse_or_measure
from restoration.fusion.losses import LOSS_TERMS, fusion_loss
from restoration.fusion.metrics import METRIC_NAMES, VIF_MIN_SIZE
from restoration.fusion.metrics_conventions import CONVENTIONS, DEFAULT_CONVENTION
from restoration.fusion.model import CELL_NAMES, SPACE, FusionNet, FusionSearchNet, check_fusion_genotype
from restoration.fusion.settings import ARCH_BETAS, RECIPES, FusionSettings, add_task_arguments
from restoration.ops import RESTORATION_OPS
from restoration.training import single_group_training
from tasks import SearchResult, SearchSetup, Task, TrainSetup
from tasks.results import HparamsError

__all__ = ["FusionSearch", "FusionNetwork", "FusionTask", "VALIDATION_METRICS", "check_loss_weights", "sources"]

#: Metrics scored on validation during training (``select`` and the cheap ones).
VALIDATION_METRICS = ("en", "sd", "sf", "ag", "qabf", "scd", "cc", "psnr", "mse")


def sources(batch: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """(infrared ``[N, 1, H, W]``, visible luma ``[N, 1, H, W]``) of a batch (RGB visible: its Y)."""
    ir, vi = batch["ir"], batch["vi"]
    return ir, (vi if vi.shape[1] == 1 else split_luma(vi)[0])


def _weights_tensor(weights: dict[str, float]) -> Tensor:
    return torch.tensor([float(weights[k]) for k in LOSS_TERMS])


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
    ``forward(ir, vi)``: ``[N, 1, H, W]`` x2 -> fused ``[N, 1, H, W]``."""

    def __init__(self, net: FusionNet, weights: dict[str, float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("loss_weights", _weights_tensor(weights))
        self.textbook_ssim = False  # read by evaluate_batch (evaluate.py rebuilds it from the settings)

    def forward(self, ir: Tensor, vi: Tensor) -> Tensor:
        return self.net(ir, vi)


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


def _verified(dataset: Dataset) -> Dataset:
    dataset.verify()  # every file checked (headers) before the first step: one-line DataError
    return dataset


class FusionTask(Task):
    """Infrared/visible fusion (see the module docstring)."""

    name = "fusion"
    space = SPACE
    cell_names = CELL_NAMES
    primitives = FUSION_PRIMITIVES
    #: a search yields a genotype; with ``--learn-loss-weights`` loss weights too (``__init__``
    #: makes train.py read an hparams.json when the run has one; ``check_result`` keeps it optional)
    results = ("genotype",)
    Settings = FusionSettings
    recipes = RECIPES
    default_method = "darts2"
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

    def __init__(self) -> None:
        self.results = ("genotype", "hparams")
        self.split_note = ""
        self.split: dict[str, Any] = {}
        self.last_latency_ms: float | None = None
        self._settings: FusionSettings | None = None
        self._metric_names: tuple[str, ...] = METRIC_NAMES

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        add_task_arguments(parser, stage)

    def check_result(self, result: SearchResult, source: str = "") -> None:
        if result.genotype is None:
            from nas.genotype import GenotypeError

            raise GenotypeError("task 'fusion' needs a genotype; pass --genotype FILE (e.g. "
                                "restoration/fusion/fusion_reference.json) or --from RUN_DIR")
        self.check_genotype(result.genotype, source)
        check_fusion_genotype(result.genotype, RESTORATION_OPS, source)
        if result.hparams:
            check_loss_weights(result.hparams, source)

    # -- search ----------------------------------------------------------------------------
    def search_data(self, s: FusionSettings) -> tuple[Dataset, Dataset]:
        lower, upper = fdata.search_sets(s.data_settings())
        lower, upper = _verified(lower), _verified(upper)
        where = "embedded training photographs" if s.data is None else f"'{describe_data(s.data)}'"
        self.split_note = (f"search: lower level on {len(lower)} training pairs, upper level on {len(upper)} "
                           f"validation pairs ({where}); test pairs unread")
        return lower, upper

    def build_search(self, s: FusionSettings, device: torch.device) -> SearchSetup:
        self.results = ("genotype", "hparams") if s.learn_loss_weights else ("genotype",)
        self._settings = s
        supernet = FusionSearch(s).to(device)
        weights, alphas = supernet.weight_parameters(), supernet.arch_parameters()
        hyper = {"loss_logits": supernet.loss_logits} if s.learn_loss_weights else {}
        fixed = _weights_tensor(s.loss_weights()).to(device)
        table = None
        if s.latency_weight > 0:
            record, measured = reuse_or_measure(s.latency_table, RESTORATION_OPS, FUSION_PRIMITIVES, s.channels,
                                                s.latency_size, device, repeats=s.latency_repeats)
            s.latency_table = record  # the command writes the settings (and so the table) to the run folder
            table = record["latency_ms"]
            self.split_note += (f"\nop latencies {'timed now' if measured else 'reused from the run settings'} on "
                                f"{record['settings']['device']} ({s.latency_size}x{s.latency_size} input, ms): "
                                + "; ".join(f"{c}: " + ", ".join(f"{k} {v:.3g}" for k, v in row.items())
                                            for c, row in table.items()))

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

        if s.lower_optimizer == "sgd":
            opt = torch.optim.SGD(weights.values(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
        else:
            opt = torch.optim.Adam(weights.values(), lr=s.lr, weight_decay=s.weight_decay)
        level = LowerLevel("weights", opt, grad_clip=s.lower_grad_clip)
        groups = [{"params": list(alphas.values()), "lr": s.arch_lr, "weight_decay": s.arch_weight_decay}]
        if hyper:
            groups.append({"params": list(hyper.values()), "lr": s.hyper_lr, "weight_decay": 0.0})
        upper_opt = torch.optim.Adam(groups, betas=ARCH_BETAS)
        problem = bilevel.BilevelProblem(weights, {**alphas, **hyper}, f, F_)
        group = Group("upper", problem, upper_opt, level, grad_clip=s.grad_clip)
        schedulers = [] if s.lr_schedule == "constant" else [
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=s.epochs, eta_min=s.lr_min)]
        what = "alphas" + (" and loss-weight logits" if hyper else "")
        self.split_note += (f"\nupper: {what} (Adam) on the fusion loss with fixed weights "
                            f"{_fmt(s.loss_weights())} on validation"
                            + (f" + {s.latency_weight:g} x expected latency (ms)" if table is not None else "")
                            + f"; lower: weights ({s.lower_optimizer}) on the fusion loss with "
                            + ("the learned weights" if hyper else "the same weights"))
        if s.method == "darts1" and hyper:
            self.split_note += ("\nnote: darts1 ignores how the weights depend on the loss weights: their "
                                "hypergradient is 0 and they keep their start values (use darts2, cg, neumann or ias)")
        return SearchSetup(supernet, [group], schedulers)

    def search_result(self, setup: SearchSetup) -> SearchResult:
        net: FusionSearch = setup.supernet
        genotype = net.net.genotype()
        hparams = {}
        if net.loss_logits.requires_grad:
            w = net.weights_from(net.loss_logits.detach()).cpu()
            hparams = {k: w[i].clone() for i, k in enumerate(LOSS_TERMS)}
        s = self._settings
        if s is not None and s.latency_weight > 0:
            device = next(net.parameters()).device
            discrete = FusionNet(genotype, RESTORATION_OPS, C=s.channels, use_decomposition=s.decomposition,
                                 gf_kernel=s.gf_kernel, gf_eps=s.gf_eps).to(device)
            self.last_latency_ms = measure_latency(discrete, s.latency_size, s.latency_size, repeats=s.latency_repeats)
            tqdm.write(f"searched network: {self.last_latency_ms:.3f} ms per {s.latency_size}x{s.latency_size} pair "
                       f"on {device} (median of {s.latency_repeats}); genotype {genotype.to_json()}")
        return SearchResult(genotype=genotype, hparams=hparams)

    # -- train -----------------------------------------------------------------------------
    def train_data(self, s: FusionSettings) -> tuple[Dataset, Dataset | None]:
        train, val = fdata.train_sets(s.data_settings())
        train, val = _verified(train), _verified(val)
        self._metric_names = VALIDATION_METRICS
        where = "embedded photographs" if s.data is None else f"'{describe_data(s.data)}'"
        self.split_note = (f"training on {len(train)} pairs, validation on {len(val)} pairs ({where}; never the "
                           "test files)")
        self.split = {"train_pairs": len(train), "val_pairs": len(val)}
        return train, val

    def build_network(self, result: SearchResult, s: FusionSettings) -> nn.Module:
        self.check_result(result)
        weights = check_loss_weights(result.hparams) if result.hparams else s.loss_weights()
        net = FusionNetwork(FusionNet(result.genotype, RESTORATION_OPS, C=s.channels, use_decomposition=s.decomposition,
                                      gf_kernel=s.gf_kernel, gf_eps=s.gf_eps), weights)
        net.textbook_ssim = s.textbook_ssim
        net.convention = s.convention
        self._weights_source = "searched" if result.hparams else "fixed"
        return net

    def build_training(self, network: nn.Module, s: FusionSettings, steps_per_epoch: int) -> TrainSetup:
        return single_group_training(network, s)

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: FusionSettings) -> dict[str, Tensor]:
        ir, vi = sources(batch)
        total, terms = fusion_loss(network(ir, vi), ir, vi, network.loss_weights)
        return {"loss": total, **{f"loss_{k}": v for k, v in terms.items()}}

    def training_note(self, s: FusionSettings, train_set: Dataset) -> str:
        w = getattr(self, "_weights_source", "fixed")
        return (f"optimising: network weights ({s.train_optimizer}) on the fusion loss (intensity + gradient + SSIM, "
                f"{w} weights); model selected on validation qabf\n{self.split_note}")

    # -- evaluate --------------------------------------------------------------------------
    def test_data(self, data: str | None, s: FusionSettings) -> Dataset:
        self._metric_names = METRIC_NAMES
        self._textbook = s.textbook_ssim
        self._convention = s.convention
        return _verified(fdata.test_set(data, s.data_settings()))

    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
        items = restore(network, batch)
        textbook = bool(getattr(network, "textbook_ssim", False))
        convention = str(getattr(network, "convention", DEFAULT_CONVENTION))
        records = [{"name": it["name"], **score_item(it, self._metric_names, textbook, convention)} for it in items]
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

    def score_predictions(self, pred_dir: str, data: str | None, s: FusionSettings) -> list[dict[str, Any]]:
        """Records ``{"name", <metric>: value}`` of the fused images in ``pred_dir`` (matched to the pairs
        of ``data``, or of the embedded test split, by file stem; any image extension), all thirteen
        metrics (``s.textbook_ssim`` picks the SSIM, ``s.convention`` the definitions)."""
        return score_folder(pred_dir, self.test_data(data, s), METRIC_NAMES, s.textbook_ssim, s.convention)

    def metrics_record(self) -> dict[str, str]:
        """``{"convention": name, "convention_note": ...}``: the definitions the scores use."""
        return {"convention": getattr(self, "_convention", DEFAULT_CONVENTION), "convention_note": self.evaluation_note()}

    output_name = "fused"

    def example_inputs(self, s: FusionSettings, size: Sequence[int], batch: int = 1,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``ir`` and ``vi_y`` (the visible image's luma, ``fuse_color``), each ``[batch, 1, H, W]``."""
        return {"ir": torch.rand(batch, 1, *size, generator=generator),
                "vi_y": torch.rand(batch, 1, *size, generator=generator)}

    def evaluation_note(self) -> str:
        ssim = ("ssim: Wang et al.'s (Gaussian 11x11, sigma 1.5, range 255), summed over the two sources"
                if getattr(self, "_textbook", False) else
                "ssim: the evaluator's scikit-image call (7x7 uniform window, effective data_range 2), summed over "
                "the two sources")
        convention = getattr(self, "_convention", DEFAULT_CONVENTION)
        return (f"fusion metrics, convention {convention!r} ({CONVENTIONS[convention].note}): gray images on "
                "[0, 255] (8-bit rounding, RGB via OpenCV's 0.299/0.587/0.114); MI summed over the two sources (mi "
                "in nats, mi_bits in bits); VIF, Qabf, SCD summed too; CC and MSE averaged; PSNR from the averaged "
                f"MSE and the fused image's peak; EN in bits; {ssim}; VIF only on images >= {VIF_MIN_SIZE} px a side")


def _fmt(weights: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in weights.items())
