"""The low-light enhancement application (RUAS, Liu et al., CVPR 2021) as a ``Task``.

Search (RUAS's cooperative search): the lower variables are ALL supernet weights (IEM and NRM),
trained on ``IEM loss + NRM loss`` of the lower half of the training split (unsupervised, no
reference needed). Two upper groups share them:

* ``"iem"``: the IEM alphas, every step, on ``IEM loss + NRM loss`` of the upper half;
* ``"nrm"``: the NRM alphas, every ``nrm_every`` steps (RUAS: 10), on the NRM loss.

Each group's ``BilevelProblem`` holds the OTHER group's alphas as constant ``buffers`` (detached
views sharing storage, so they follow that group's optimizer): the supernet always runs with
every architecture variable, and the lower step, which the loop makes through the last group's
problem, sees both alphas as constants.

Training retrains the discrete ``RUASNet`` with Adam. ``supervised`` (``"auto"`` by default:
on when the data has references) adds ``L1(output, target)`` to the RUAS losses, weighted by
``unsupervised_weight``; without references the loss is RUAS's. Evaluation: PSNR and SSIM on
RGB in [0, 1] at full resolution (LOL convention). See ``task_defaults.py`` for the budgets.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset
from torchvision.utils import make_grid

import bilevel
from datasets import DataError, write_image
from datasets.transforms import unpad
from nas.genotype import Genotype
from nas.task import Config, SearchSetup, Task, TrainSetup, UpperGroup
from restoration.lowlight import data as lldata
from restoration.lowlight.genotype import CELL_NAMES, SPACE, derive_ruas, genotype_to_ops
from restoration.lowlight.losses import ruas_losses
from restoration.lowlight.model import RUASNet, RUASSearch
from restoration.lowlight.ops import RUAS_PRIMITIVES
from restoration.lowlight.task_defaults import ARCH_BETAS, SEARCH_DEFAULTS, TRAIN_DEFAULTS, add_task_arguments
from restoration.metrics import psnr, ssim

__all__ = ["LowLightTask", "OUTPUT_KEYS"]

#: Network outputs that can be evaluated: ``out`` (IEM + NRM, RUAS's LOL results) or ``u`` (IEM only).
OUTPUT_KEYS = ("out", "u")


def _use_supervision(config: Config, batch: dict[str, Any]) -> bool:
    mode = config.get("supervised", "auto")
    has_target = "target" in batch
    if mode in (None, "auto"):
        return has_target
    if mode and not has_target:
        raise DataError("supervised training needs reference images, but the data has none; "
                        "use a paired folder (e.g. ROOT/{low,high}) or pass --no-supervised")
    return bool(mode)


def objective(outputs: dict[str, Tensor], batch: dict[str, Any], config: Config, terms: str) -> Tensor:
    """``terms`` = ``"both"`` (IEM + NRM) or ``"nrm"``, plus the weighted L1 to the target when
    supervised (then the RUAS terms are scaled by ``unsupervised_weight``)."""
    losses = ruas_losses(outputs, batch["input"])
    unsup = losses["iem"] + losses["nrm"] if terms == "both" else losses["nrm"]
    if not _use_supervision(config, batch):
        return unsup
    key = config.get("output", "out")
    sup = F.l1_loss(outputs[key], batch["target"])
    return sup + float(config.get("unsupervised_weight", 0.0)) * unsup


def _require_pairs_if_supervised(dataset: Dataset, config: Config) -> None:
    if config.get("supervised") is True and not lldata.is_paired(dataset):
        raise DataError(f"--supervised needs reference images, but '{config.get('data')}' has none; "
                        "drop --supervised or use a paired folder")


class LowLightTask(Task):
    """RUAS low-light enhancement. Config keys: see ``task_defaults.py``."""

    name = "lowlight"
    space = SPACE
    cell_names = CELL_NAMES
    primitives = tuple(RUAS_PRIMITIVES)
    default_method = "darts2"
    metric = "psnr"
    metric_keys = ("psnr", "ssim")
    data_help = ("low-light pairs: LOL (DIR/our485/{low,high}, DIR/eval15/{low,high}), DIR/{low,high}, "
                 "DIR/{input,expert} or split folders DIR/{train,val,test}/...; a folder of images "
                 "without references works unsupervised; default: embedded synthetic pairs")
    search_defaults = SEARCH_DEFAULTS
    train_defaults = TRAIN_DEFAULTS

    def __init__(self) -> None:
        self._references = True  # whether the last test_data had references (evaluation_note)

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        add_task_arguments(parser, stage)

    # -- search ----------------------------------------------------------------------------
    def search_data(self, config: Config) -> tuple[Dataset, Dataset]:
        lower, upper = lldata.search_sets(config)
        _require_pairs_if_supervised(lower, config)
        return lower, upper

    def build_search(self, config: Config, device: torch.device) -> SearchSetup:
        supernet = RUASSearch(int(config["iem_stages"]), int(config["nrm_cells"]), int(config["nrm_channels"]),
                              self.primitives).to(device)
        weights = supernet.weight_parameters()
        alphas = {part: supernet.arch_parameters(part) for part in CELL_NAMES}

        def run(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
            return bilevel.call(supernet, {**lower, **upper}, batch["input"])

        def lower_loss(lower, upper, batch):  # type: ignore[no-untyped-def]
            return objective(run(lower, upper, batch), batch, config, "both")

        def upper_loss_iem(lower, upper, batch):  # type: ignore[no-untyped-def]
            return objective(run(lower, upper, batch), batch, config, "both")

        def upper_loss_nrm(lower, upper, batch):  # type: ignore[no-untyped-def]
            return objective(run(lower, upper, batch), batch, config, "nrm")

        def frozen(part: str) -> dict[str, Tensor]:
            # Detached views share storage with the parameters: they follow the other group's
            # optimizer steps, and no gradient reaches them through this problem.
            return {k: v.detach() for k, v in alphas[part].items()}

        problems = {
            "iem": bilevel.BilevelProblem(weights, alphas["iem"], lower_loss, upper_loss_iem, buffers=frozen("nrm")),
            "nrm": bilevel.BilevelProblem(weights, alphas["nrm"], lower_loss, upper_loss_nrm, buffers=frozen("iem")),
        }
        every = {"iem": 1, "nrm": int(config["nrm_every"])}
        if every["nrm"] < 1:
            raise DataError(f"nrm_every must be >= 1, got {every['nrm']}")
        groups = [
            UpperGroup(part, problems[part],
                       torch.optim.Adam(alphas[part].values(), lr=float(config["arch_lr"]), betas=ARCH_BETAS,
                                        weight_decay=float(config["arch_weight_decay"])),
                       every=every[part])
            for part in CELL_NAMES
        ]
        lower_optimizer = self._lower_optimizer(weights.values(), config)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            lower_optimizer, T_max=int(config["epochs"]), eta_min=float(config["lr_min"]))
        return SearchSetup(supernet, groups, lower_optimizer, scheduler)

    @staticmethod
    def _lower_optimizer(params: Any, config: Config) -> torch.optim.Optimizer:
        kind = config.get("lower_optimizer", "sgd")
        lr, wd = float(config["lr"]), float(config["weight_decay"])
        if kind == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=float(config["momentum"]), weight_decay=wd)
        if kind == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=wd)
        raise DataError(f"lower_optimizer must be 'sgd' or 'adam', got {kind!r}")

    def derive(self, supernet: nn.Module) -> Genotype:
        return derive_ruas({"iem": supernet.alphas_iem, "nrm": supernet.alphas_nrm}, self.primitives)

    # -- train -----------------------------------------------------------------------------
    def train_data(self, config: Config) -> tuple[Dataset, Dataset]:
        train, val = lldata.train_sets(config)
        _require_pairs_if_supervised(train, config)
        return train, val

    def check_genotype(self, genotype: Genotype, source: str = "") -> None:
        super().check_genotype(genotype, source)
        genotype_to_ops(genotype, source)

    def build_network(self, genotype: Genotype, config: Config) -> nn.Module:
        self.check_genotype(genotype)
        ops = genotype_to_ops(genotype)
        net = RUASNet(ops["iem_ops"], ops["nrm_ops"], int(config.get("iem_stages", 3)),
                      int(config.get("nrm_cells", 3)), int(config.get("nrm_channels", 6)))
        key = config.get("output", "out")
        if key not in OUTPUT_KEYS:
            raise DataError(f"output must be one of {OUTPUT_KEYS}, got {key!r}")
        net.output_key = key  # read by evaluate_batch/samples (evaluate.py rebuilds from the config)
        return net

    def build_training(self, network: nn.Module, config: Config, steps_per_epoch: int) -> TrainSetup:
        optimizer = torch.optim.Adam(network.parameters(), lr=float(config["lr"]),
                                     weight_decay=float(config["weight_decay"]))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=int(config["epochs"]), eta_min=float(config["lr_min"]))
        return TrainSetup(optimizer, scheduler)

    def train_loss(self, network: nn.Module, batch: dict[str, Any], config: Config) -> Tensor:
        return objective(network(batch["input"]), batch, config, "both")

    # -- evaluate --------------------------------------------------------------------------
    def test_data(self, data: str | None, config: Config) -> Dataset:
        dataset = lldata.test_set(data, config)
        self._references = lldata.is_paired(dataset)
        return dataset

    @torch.no_grad()
    def enhance(self, network: nn.Module, batch: dict[str, Any]) -> list[dict[str, Any]]:
        """Per item: ``name``, ``input``, ``output`` (clamped to [0, 1]) and ``target`` if any,
        each ``[3, H, W]`` cropped back to the item's ``size`` (undoing any padding)."""
        x = batch["input"]
        out = network(x)[getattr(network, "output_key", "out")].clamp(0.0, 1.0)
        names = batch.get("name", [f"{i:04d}.png" for i in range(x.shape[0])])
        sizes = batch.get("size", torch.tensor([x.shape[-2:]] * x.shape[0]))
        items = []
        for i in range(x.shape[0]):
            item = {"name": names[i], "input": unpad(x[i], sizes[i]), "output": unpad(out[i], sizes[i])}
            if "target" in batch:
                item["target"] = unpad(batch["target"][i], sizes[i])
            items.append(item)
        return items

    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
        items = self.enhance(network, batch)
        records = []
        for item in items:
            rec: dict[str, Any] = {"name": item["name"]}
            if "target" in item:
                o, t = item["output"][None], item["target"][None]
                rec["psnr"] = float(psnr(o, t)[0])
                rec["ssim"] = float(ssim(o, t)[0])
            records.append(rec)
        return records, items

    def save_outputs(self, outputs: Any, batch: dict[str, Any], folder: str) -> None:
        """``NAME.png`` (the enhanced image) and ``NAME_grid.png`` (input | output | reference)."""
        for item in outputs:
            stem = Path(str(item["name"])).stem
            write_image(Path(folder) / f"{stem}.png", item["output"])
            write_image(Path(folder) / f"{stem}_grid.png", _grid([item]))

    def samples(self, network: nn.Module, batch: dict[str, Any]) -> Tensor | None:
        was_training = network.training
        network.eval()
        items = self.enhance(network, {k: (v[:4] if isinstance(v, (Tensor, list)) else v) for k, v in batch.items()})
        network.train(was_training)
        same = len({tuple(i["input"].shape) for i in items}) == 1
        return _grid(items if same else items[:1])

    def evaluation_note(self) -> str:
        if not self._references:
            return ("no reference images in this folder: no reference metrics (PSNR/SSIM) can be computed; "
                    "records carry only names, use --save-images to inspect the outputs")
        return ("PSNR and SSIM on RGB in [0, 1] at full resolution, no border crop, no Y channel (LOL "
                "convention); SSIM with an 11x11 Gaussian window (sigma 1.5) over valid positions")


def _grid(items: list[dict[str, Any]]) -> Tensor:
    """Rows ``input | output | reference`` (reference omitted without one): ``[3, H', W']``."""
    cols = 3 if all("target" in i for i in items) else 2
    tiles = []
    for item in items:
        tiles += [item["input"], item["output"]] + ([item["target"]] if cols == 3 else [])
    return make_grid([t.detach().float().cpu().clamp(0, 1) for t in tiles], nrow=cols, padding=2, pad_value=1.0)
