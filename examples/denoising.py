"""A minimal application: Gaussian denoising with a searched chain cell, in one file.

It is the worked example of ``docs/add_application.md``: not a shipped task, but any command runs
it once it is registered, e.g. from Python::

    from tasks import register
    register("denoise", "examples.denoising:DenoisingTask")

Search: a chain cell of three edges over three restoration ops; the network weights are the
lower variables (SGD on the training loss), the edge weights ``alphas`` the upper ones (Adam on
the validation loss); the result is the argmax op per edge. Training: the discrete cell, Adam,
L1 loss, selected on validation PSNR. Data: embedded gray images (smooth random patterns) with
Gaussian noise of ``sigma``, drawn from seeds, so every split is distinct and nothing is read.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

import bilevel
from bilevel import Group, LowerLevel
from datasets.errors import DataError
from nas.chain import ChainCell, ChainSearchCell
from nas.genotype import Genotype, derive_chain
from restoration.metrics import psnr
from restoration.ops import RESTORATION_OPS
from tasks import (
    Scoring,
    SearchData,
    SearchResult,
    SearchSetup,
    Task,
    TestData,
    TrainData,
    TrainingSettings,
    TrainSetup,
)
from tasks.settings import at_least, doc, in_range, one_of, positive_float
from tasks.training import ARCH_BETAS, OPTIMIZERS, SCHEDULES, make_optimizer, make_schedule, single_group_training

SPACE, CELL, EDGES = "denoise_chain", "cell", (0, 1, 2)
PRIMITIVES = ("skip_connect", "conv_3x3", "dil_conv_3x3")


@dataclass
class DenoisingSettings(TrainingSettings):
    """The shared fields plus the network's width, the noise and the embedded set's sizes."""

    channels: int = field(default=8, metadata=doc("feature channels of the cell"))
    sigma: float = field(default=0.1, metadata=doc("standard deviation of the Gaussian noise on [0, 1] images"))
    size: int = field(default=24, metadata=doc("side of the embedded images"))
    count: int = field(default=32, metadata=doc("embedded training images (validation and test: a quarter)"))
    lr_min: float = field(default=1e-4, metadata=doc("cosine floor of the weights' learning rate"))
    train_optimizer: str = field(default="adam", metadata=doc("train: adam, adamw or sgd"))
    lr_schedule: str = field(default="cosine", metadata=doc("cosine or constant"))

    def check(self) -> None:
        super().check()
        for key in ("channels", "count"):
            at_least(self, key, 1)
        at_least(self, "size", 8)
        in_range(self, "sigma", 0.0, 1.0)
        one_of(self, "train_optimizer", OPTIMIZERS)
        one_of(self, "lr_schedule", SCHEDULES)


class NoisyPatterns(Dataset):
    """``count`` gray images ``[1, size, size]`` (sums of random sinusoids in [0, 1]) with noise of
    ``sigma``; item ``i`` is drawn from ``(seed, i)`` alone: ``{"input", "target", "name"}``."""

    def __init__(self, count: int, size: int, sigma: float, seed: int) -> None:
        self.count, self.size, self.sigma, self.seed = count, size, sigma, seed

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < self.count:
            raise IndexError(f"item {i} of {self.count}")
        g = torch.Generator().manual_seed(self.seed * 100_003 + i)
        axis = torch.linspace(0, 2 * math.pi, self.size)
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        freq, phase = torch.rand(2, 3, generator=g) * torch.tensor([[4.0], [2 * math.pi]])
        clean = sum(torch.sin(f * (xx if k % 2 else yy) + p) for k, (f, p) in enumerate(zip(freq, phase)))
        clean = (clean - clean.min()) / (clean.max() - clean.min() + 1e-8)
        noisy = clean + self.sigma * torch.randn(clean.shape, generator=g)
        return {"input": noisy[None], "target": clean[None], "name": f"{self.seed}_{i:03d}"}


class DenoiseNet(nn.Module):
    """Head conv, one chain cell, tail conv; predicts the noise: ``[N, 1, H, W] -> [N, 1, H, W]``.
    ``genotype`` None: the search cell (every edge mixes ``PRIMITIVES`` by softmax(``alphas``))."""

    def __init__(self, channels: int, genotype: Genotype | None = None) -> None:
        super().__init__()
        self.head, self.tail = nn.Conv2d(1, channels, 3, padding=1), nn.Conv2d(channels, 1, 3, padding=1)
        if genotype is None:
            self.cell: nn.Module = ChainSearchCell(PRIMITIVES, RESTORATION_OPS, channels, EDGES)
            self.alphas = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(PRIMITIVES)))
        else:
            self.cell = ChainCell(genotype.cells[CELL], RESTORATION_OPS, channels)
            self.alphas = None

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        h = self.cell(h) if self.alphas is None else self.cell(h, self.alphas.softmax(-1))
        return x - self.tail(h)

    def arch_parameters(self) -> dict[str, Tensor]:
        return {"alphas": self.alphas}

    def weight_parameters(self) -> dict[str, Tensor]:
        return {n: p for n, p in self.named_parameters() if n != "alphas"}

    def genotype(self) -> Genotype:
        return derive_chain(SPACE, {CELL: self.alphas}, PRIMITIVES, EDGES)


def _data(s: DenoisingSettings, seed: int, count: int) -> NoisyPatterns:
    return NoisyPatterns(count, s.size, s.sigma, seed)


class DenoisingTask(Task):
    name = "denoise"
    space, cell_names, primitives = SPACE, (CELL,), PRIMITIVES
    Settings = DenoisingSettings
    recipes = {"default": {"search": {"epochs": 2, "batch_size": 4}, "train": {"epochs": 3, "batch_size": 4,
                                                                               "lr": 2e-3}}}
    metrics, select = {"psnr": "max"}, "psnr"
    data_help = "embedded only: noisy sinusoid patterns (no folder is read)"

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        parser.add_argument("--sigma", type=positive_float, default=None, help="noise level (default 0.1)")

    def search_data(self, s: DenoisingSettings) -> SearchData:
        lower, upper = _data(s, 1, s.count), _data(s, 2, max(1, s.count // 4))
        return SearchData(lower, upper, f"search: {len(lower)} training and {len(upper)} validation images",
                          {"lower_items": len(lower), "upper_items": len(upper)})

    def build_search(self, s: DenoisingSettings, device: torch.device) -> SearchSetup:
        supernet = DenoiseNet(s.channels).to(device)
        weights, alphas = supernet.weight_parameters(), supernet.arch_parameters()

        def loss(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
            out = bilevel.call(supernet, {**lower, **upper}, batch["input"])
            return (out - batch["target"]).abs().mean()

        opt = make_optimizer("sgd", weights.values(), s.lr, s.weight_decay, s.momentum)
        upper_opt = make_optimizer("adam", alphas.values(), s.arch_lr, s.arch_weight_decay, betas=ARCH_BETAS)
        group = Group("cell", bilevel.BilevelProblem(weights, alphas, loss, loss), upper_opt,
                      LowerLevel("weights", opt, grad_clip=s.lower_grad_clip), grad_clip=s.grad_clip)
        return SearchSetup(supernet, [group], make_schedule(s.lr_schedule, opt, s.epochs, s.lr_min))

    def train_data(self, s: DenoisingSettings) -> TrainData:
        train, val = _data(s, 1, s.count), _data(s, 2, max(1, s.count // 4))
        return TrainData(train, val, f"training on {len(train)} images, validation on {len(val)}",
                         {"train_items": len(train), "val_items": len(val)})

    def build_network(self, result: SearchResult, s: DenoisingSettings) -> nn.Module:
        self.check_result(result)
        return DenoiseNet(s.channels, result.genotype)

    def build_training(self, network: nn.Module, s: DenoisingSettings, steps_per_epoch: int) -> TrainSetup:
        return single_group_training(network, s)

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: DenoisingSettings) -> dict[str, Tensor]:
        return {"loss": (network(batch["input"]) - batch["target"]).abs().mean()}

    def test_data(self, data: str | None, s: DenoisingSettings) -> TestData:
        if data is not None:
            raise DataError(f"the denoising example reads no folders (got --data {data}); drop --data")
        return TestData(_data(s, 3, max(1, s.count // 4)))

    @torch.no_grad()
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any], s: DenoisingSettings,
                       scoring: Scoring) -> tuple[list[dict[str, Any]], Any]:
        out = network(batch["input"]).clamp(0, 1)
        scores = psnr(out, batch["target"]).tolist()
        return [{"name": n, "psnr": v} for n, v in zip(batch["name"], scores)], out
