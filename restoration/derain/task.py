"""Single-image and video deraining (after the TMIC / TMICS line of work) as a ``Task``.

Search: the chain-cell supernet ``model.DerainSearch`` (``cells`` cells of ``steps`` edges over the
14 restoration ops, one architecture shared by every cell, as TMICS shares its genotype) and ONE
upper group over one lower level. Lower variables: the network weights, on the deraining loss
(``losses.derain_loss``: Charbonnier or L1 + ``ssim_weight`` x (1 - SSIM), kornia) of a training
batch. Upper variables: the alphas (Adam), on the same loss of a validation batch. Any ``--method``.

Result: ``genotype.json`` (argmax op per edge). Training retrains ``model.DerainNet`` of the
genotype on the deraining loss; the model is selected on validation ``psnr`` (Y channel, MATLAB
convention, unless ``--no-y-channel``). ``--frames T`` (odd) stacks a window of T frames as the
input and restores the middle frame (windows reflected at the ends of a video); the network
predicts the rain layer and subtracts it from the middle frame.

Evaluation: PSNR and SSIM of the outputs clamped to [0, 1] against the clean images at full
resolution, on the Y channel of BT.601 YCbCr as MATLAB's ``rgb2ycbcr(im2double(img))`` gives it
(studio-swing Y, not rounded, peak 255, SSIM as Wang's ``ssim_index.m``) or on RGB; ``tile`` runs
overlapping blended tiles (``restoration.tiling``) for images too large for memory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

import bilevel
from bilevel import Group, LowerLevel
from datasets.io import write_image
from datasets.pairs import describe_data
from restoration.complexity import describe_size
from restoration.derain import data as ddata
from restoration.derain.evaluation import (METRIC_NOTE, derain_metrics, item_panel, labelled_grid,
                                          match_predictions, restore)
from restoration.derain.genotype import CELL_NAMES, SPACE, genotype_ops
from restoration.derain.losses import derain_loss
from restoration.derain.model import DerainNet, DerainSearch, network_input
from restoration.derain.settings import RECIPES, DerainSettings, add_task_arguments
from restoration.derain.tmics import SPACE as TMICS_SPACE
from restoration.derain.tmics import TMICSNet, TMICSSearch, tmics_parts
from restoration.derain.triple import aas_hparams, tmics_levels
from restoration.ops import RESTORATION_PRIMITIVES
from restoration.panels import PANELS
from tasks.results import HparamsError
from tasks.settings import SettingsError
from tasks import Scoring, SearchData, SearchResult, SearchSetup, Task, TestData, TrainData, TrainSetup
from tasks.training import ARCH_BETAS, make_optimizer, make_schedule, single_group_training

__all__ = ["DerainTask"]


def _three_frames(s: DerainSettings) -> None:
    if s.frames < 3:
        raise SettingsError(f"the tmics structure reads frame windows: pass --frames 3 or more (5 as TMICS), got "
                            f"{s.frames}")


def _verified(dataset: Dataset) -> Dataset:
    dataset.verify(progress=True)  # every file checked before the first step: one-line DataError
    return dataset


def _where(s: DerainSettings) -> str:
    if s.data is not None:
        return f"'{describe_data(s.data)}'"
    return "embedded synthetic video" if (s.frames > 1 or s.video) else "embedded synthetic rain photographs"


class DerainTask(Task):
    """Deraining with searched chain cells (see the module docstring)."""

    name = "derain"
    space, cell_names, primitives = SPACE, CELL_NAMES, tuple(RESTORATION_PRIMITIVES)  # the genotype space
    Settings = DerainSettings
    recipes = RECIPES
    metrics, select = {"psnr": "max", "ssim": "max"}, "psnr"
    data_help = ("rainy/clean pairs read in place: Rain100L/H as distributed (DIR/rainy/rain-XXX.png + "
                 "DIR/norain-XXX.png), DIR/rain-XXX.png + DIR/norain-XXX.png, DIR/{rainy,norain}, DIR/{input,target} "
                 "(Rain13K, Test100, Test2800), DIR/{inputcrop,cleancrop} (MSPFN), Rain1400 "
                 "(DIR/rainy_image/<id>_<k>.jpg + DIR/ground_truth/<id>.jpg), videos DIR/<video>/rfc-<k>.jpg + "
                 "gtc-<k>.jpg (RainSynLight25/Complex25), each optionally under DIR/{train,val,test}/; validation "
                 "is DIR/val or a seeded slice of the training split, never the test files; default: embedded "
                 "synthetic rain over photographs (--frames > 1 or --video: a synthetic video)")
    pairs_help = "--pairs RAINY_DIR CLEAN_DIR: rainy images and their clean partners"
    can_score_predictions = True
    can_tile = True

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        add_task_arguments(parser, stage)

    def check_genotype(self, genotype: Any, source: str = "") -> None:
        """A chain genotype (space ``derain``: one cell shared by every cell) or TMICS's (space ``tmics``: DNA and
        CNA cells and the inter-frame module)."""
        if genotype.space == TMICS_SPACE:
            tmics_parts(genotype, source)
            return
        super().check_genotype(genotype, source)
        genotype_ops(genotype, source)

    # -- search ----------------------------------------------------------------------------
    def search_data(self, s: DerainSettings) -> SearchData:
        lower, upper = ddata.search_sets(s)
        lower, upper = _verified(lower), _verified(upper)
        loss = f"{s.pixel_loss} + {s.ssim_weight:g} x (1 - SSIM)"
        what = (f"upper: alphas (Adam) on the deraining loss of validation batches; lower: weights ({s.lower_optimizer}) "
                f"on the same loss of training batches ({loss}); {s.cells} cells x {s.steps} edges over "
                f"{len(self.primitives)} ops, {s.frames}-frame input")
        if s.structure == "tmics":
            what = (f"top: AAS weights, middle: DNA and CNA alphas and the inter-frame choice (OFM / TGM), both Adam on "
                    f"the deraining loss of validation batches; bottom: weights ({s.lower_optimizer}) on the same loss of "
                    f"training batches ({loss}); {s.cells} cell(s) x {s.steps} edges per branch over "
                    f"{len(self.primitives)} ops, {s.frames}-frame input")
        note = (f"search: lower level on {len(lower)} training items, upper level on {len(upper)} "
                f"validation items ({_where(s)}); test files unread\n{what}")
        return SearchData(lower, upper, note, {"lower_items": len(lower), "upper_items": len(upper)})

    def build_search(self, s: DerainSettings, device: torch.device) -> SearchSetup:
        if s.structure == "tmics":  # three levels: AAS weights, architecture, weights (restoration.derain.triple)
            _three_frames(s)
            supernet = TMICSSearch(s.channels, s.cells, s.steps, s.frames, self.primitives).to(device)
            levels = tmics_levels(supernet, s)
            return SearchSetup(supernet, levels=levels,
                               schedulers=make_schedule(s.lr_schedule, levels[-1].optimizer, s.epochs, s.lr_min))
        supernet = DerainSearch(s.channels, s.cells, s.steps, s.frames, self.primitives).to(device)
        weights, alphas = supernet.weight_parameters(), supernet.arch_parameters()
        w = s.loss_weights()

        def loss(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
            out = bilevel.call(supernet, {**lower, **upper}, network_input(batch))["out"]
            return derain_loss(out, batch["target"], w, s.pixel_loss)

        opt = make_optimizer(s.lower_optimizer, weights.values(), s.lr, s.weight_decay, s.momentum)
        level = LowerLevel("weights", opt, grad_clip=s.lower_grad_clip)
        upper_opt = make_optimizer("adam", alphas.values(), s.arch_lr, s.arch_weight_decay, betas=ARCH_BETAS)
        problem = bilevel.BilevelProblem(weights, alphas, loss, loss)
        group = Group("cell", problem, upper_opt, level, grad_clip=s.grad_clip)
        return SearchSetup(supernet, [group], make_schedule(s.lr_schedule, opt, s.epochs, s.lr_min))

    # -- train -----------------------------------------------------------------------------
    def train_data(self, s: DerainSettings) -> TrainData:
        train, val = ddata.train_sets(s)
        train, val = _verified(train), _verified(val)
        note = f"training on {len(train)} items, validation on {len(val)} items ({_where(s)}; never the test files)"
        return TrainData(train, val, note, {"train_items": len(train), "val_items": len(val)})

    def search_result(self, setup: SearchSetup, s: DerainSettings) -> SearchResult:
        """The genotype; with the tmics structure also the learned top level, the AAS weights (hparams.json)."""
        supernet = setup.supernet
        if isinstance(supernet, TMICSSearch):
            return SearchResult(genotype=supernet.genotype(), hparams=aas_hparams(supernet))
        return SearchResult(genotype=supernet.genotype())

    def build_network(self, result: SearchResult, s: DerainSettings) -> nn.Module:
        """``DerainNet`` of a chain genotype, or ``TMICSNet`` of a TMICS genotype: then the AAS weights of
        ``result.hparams`` (a tmics search's top level), where given, are loaded and held fixed."""
        self.check_result(result)
        if result.genotype.space != TMICS_SPACE:
            return DerainNet(result.genotype, s.channels, s.cells, s.frames)
        _three_frames(s)
        net = TMICSNet(result.genotype, s.channels, s.cells, s.frames)
        aas = {k: v for k, v in result.hparams.items() if k.startswith("aas.")}
        if aas:
            own = net.aas_parameters()
            if set(aas) != set(own) or any(tuple(v.shape) != tuple(own[k].shape) for k, v in aas.items()):
                raise HparamsError("the hyper-parameters hold AAS weights of another shape than this network's; "
                                   "pass the hparams.json of the search that found the genotype")
            with torch.no_grad():
                for k, p in own.items():
                    p.copy_(aas[k])
                    p.requires_grad_(False)
        return net

    def build_training(self, network: nn.Module, s: DerainSettings, steps_per_epoch: int) -> TrainSetup:
        return single_group_training(network, s)

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: DerainSettings) -> dict[str, Tensor]:
        out = network(network_input(batch))["out"]
        return {"loss": derain_loss(out, batch["target"], s.loss_weights(), s.pixel_loss)}

    def training_note(self, s: DerainSettings, data: TrainData, network: nn.Module, result: SearchResult) -> str:
        metric = "Y-channel psnr (MATLAB rgb2ycbcr)" if s.y_channel else "RGB psnr"
        example = network_input(data.train[0])[None].to(next(network.parameters()).device)
        return (f"optimising: network weights ({s.train_optimizer}) on {s.pixel_loss} + {s.ssim_weight:g} x (1 - SSIM)"
                f", {s.frames}-frame input; model selected on validation {metric}; network "
                f"{describe_size(network, example)}")

    # -- evaluate --------------------------------------------------------------------------
    def test_data(self, data: str | None, s: DerainSettings) -> TestData:
        return TestData(_verified(ddata.test_set(data, s)))

    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any], s: DerainSettings,
                       scoring: Scoring) -> tuple[list[dict[str, Any]], Any]:
        """Records ``{"name", "psnr", "ssim"}`` (``s.y_channel``: on the MATLAB Y channel, else RGB) of the
        batch restored whole or in tiles of ``s.tile``, and the restored items."""
        items = restore(network, batch, s.tile, s.tile_overlap)
        records = []
        for item in items:
            rec: dict[str, Any] = {"name": item["name"]}
            if "target" in item:
                m = derain_metrics(item["output"][None], item["target"][None], s.y_channel)
                rec.update({k: float(v[0]) for k, v in m.items()})
                item["metrics"] = {k: rec[k] for k in m}
                item["y_channel"] = s.y_channel
            records.append(rec)
        return records, items

    def save_outputs(self, outputs: Any, batch: dict[str, Any], folder: str) -> None:
        """``NAME.png`` (the derained image, at the rainy file's relative path, so that
        ``--predictions`` scores it as is) and ``panels/NAME.png`` (rainy | derained | clean, the rainy
        and derained images' PSNR/SSIM against the clean one in their titles)."""
        for item in outputs:
            rel = Path(str(item["name"])).with_suffix(".png")
            write_image(Path(folder) / rel, item["output"])
            write_image(Path(folder) / PANELS / rel, item_panel(item))

    def samples(self, network: nn.Module, batch: dict[str, Any]) -> Tensor | None:
        small = {k: (v[:4] if isinstance(v, (Tensor, list)) else v) for k, v in batch.items()}
        items = restore(network, small)
        if len({tuple(i["output"].shape) for i in items}) > 1:
            items = items[:1]
        return labelled_grid(items)

    def score_predictions(self, predictions: str, data: str | None,
                          s: DerainSettings) -> tuple[list[dict[str, Any]], Scoring]:
        """Records ``{"name", "psnr", "ssim"}`` of the restored images in ``predictions`` matched to the test
        items of ``data`` (or the embedded test split) by relative path and stem, any image extension."""
        test = self.test_data(data, s)
        records = []
        for name, pred, target in match_predictions(predictions, test.test, s.y_channel):
            m = derain_metrics(pred[None], target[None], s.y_channel)
            records.append({"name": name, **{k: float(v[0]) for k, v in m.items()}})
        return records, test.scoring

    def metrics_record(self, s: DerainSettings, scoring: Scoring) -> dict[str, str]:
        """``{"convention": ...}``: which channel and convention the scores use."""
        return {"convention": self.evaluation_note(s, scoring)}

    def example_inputs(self, s: DerainSettings, size: Sequence[int], batch: int = 1,
                       generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``input`` ``[batch, 3, H, W]``, or with ``frames`` T > 1 ``frames`` ``[batch, T, 3, H, W]``."""
        if s.frames == 1:
            return {"input": torch.rand(batch, 3, *size, generator=generator)}
        return {"frames": torch.rand(batch, s.frames, 3, *size, generator=generator)}

    def evaluation_note(self, s: DerainSettings, scoring: Scoring) -> str:
        if s.y_channel:
            return METRIC_NOTE + "; full resolution, no border crop"
        return "PSNR/SSIM on RGB in [0, 1] (--no-y-channel), full resolution, no border crop"
