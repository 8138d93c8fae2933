"""The low-light enhancement application (RUAS, Liu et al., CVPR 2021) as a ``Task``.

Search: a RUAS supernet (IEM and NRM cells with alphas) and two upper groups, ``"iem"`` (the IEM
alphas, every step, upper loss IEM + NRM) and ``"nrm"`` (the NRM alphas, every ``nrm_every``
steps, upper loss NRM), each with its own bilevel problem. With ``lower_problems="shared"`` (the
default recipe) both groups sit over one lower level: all supernet weights on IEM + NRM losses,
stepped once per step. With ``"separate"`` (the ``ruas`` recipe, RUAS's cooperative search) each
group has its own: IEM weights on the IEM loss every step, NRM weights on the NRM loss every
``nrm_every`` steps. Each problem holds every other variable (the other alphas and, when
separate, the other weights) as constant ``buffers``: detached views that follow the other
group's optimizer steps. The search is unsupervised (no reference needed) unless ``supervised``.

Training retrains the discrete ``RUASNet``: one Adam group on one loss (default recipe: L1 to the
reference + ``unsupervised_weight`` x RUAS losses when the data has references), or two SGD groups
(``train_optimizer="sgd"``, the ``ruas`` recipe): IEM weights on the IEM loss every step, NRM
weights on the NRM loss every ``nrm_every`` steps. The model is selected on validation PSNR
(a validation split, never the test files). Evaluation: PSNR and SSIM on RGB in [0, 1] at full
resolution (LOL convention), of the network or of a folder of outputs made elsewhere
(``score_predictions``). Settings and the recipes: ``settings.py``.

Recipe ``adapt`` (``adapt: true``): the search meta-learns an initialisation of the reference genotype's
network over scenes (episodes of support and query crops, ``adapt.py``, ``adapt_data.py``) and writes
it as model.pt; ``train.py --from`` adapts it to one scene in a few steps (no validation split).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

import bilevel
from bilevel import Group, LowerLevel
from datasets import DataError, write_image
from datasets.transforms import unpad
from restoration.lowlight import adapt, adapt_data
from restoration.lowlight import data as lldata
from restoration.lowlight.genotype import CELL_NAMES, SPACE, derive_ruas, genotype_to_ops, reference_genotype
from restoration.lowlight.losses import ruas_losses
from restoration.lowlight.model import RUASNet, RUASSearch
from restoration.lowlight.ops import RUAS_PRIMITIVES
from restoration.lowlight.released import ruas_released
from restoration.lowlight.settings import RECIPES, LowLightSettings, add_task_arguments
from restoration.metrics import psnr, ssim
from restoration.gray import keep_gray
from restoration.grid import labelled_grid
from restoration.panels import PANELS, item_panel
from restoration.predictions import PredictionFolder
from tasks import Scoring, SearchData, SearchResult, SearchSetup, Task, TestData, TrainData, TrainGroup, TrainSetup
from tasks.meta import episode_tasks
from tasks.released import ReleasedWeights
from tasks.training import ARCH_BETAS, make_optimizer, make_schedule

__all__ = ["LowLightTask"]


def _use_supervision(s: LowLightSettings, batch: dict[str, Any]) -> bool:
    has_target = "target" in batch
    if s.supervised == "auto":
        return has_target
    if s.supervised and not has_target:
        raise DataError("supervised training needs reference images, but the data has none; "
                        "use a paired folder (e.g. ROOT/{low,high}) or pass --no-supervised")
    return bool(s.supervised)


def objective(outputs: dict[str, Tensor], batch: dict[str, Any], s: LowLightSettings, terms: str) -> Tensor:
    """RUAS losses ``terms`` (``"both"``: IEM + NRM, ``"iem"``, ``"nrm"``), plus the L1 to the target
    when supervised (then the RUAS terms are scaled by ``unsupervised_weight``)."""
    losses = ruas_losses(outputs, batch["input"])
    unsup = losses["iem"] + losses["nrm"] if terms == "both" else losses[terms]
    if not _use_supervision(s, batch):
        return unsup
    sup = F.l1_loss(outputs[s.output], batch["target"])
    return sup + s.unsupervised_weight * unsup


def _require_pairs_if_supervised(dataset: Dataset, s: LowLightSettings) -> None:
    if s.supervised is True and not lldata.is_paired(dataset):
        raise DataError(f"--supervised needs reference images, but '{s.data}' has none; "
                        "drop --supervised or use a paired folder")


def _objective(s: LowLightSettings, paired: bool) -> str:
    """What the losses are, in words, and why (for the search and training notes)."""
    if s.supervised is True or (s.supervised == "auto" and paired):
        return f"L1 to the reference + {s.unsupervised_weight:g} x RUAS's losses (IEM + NRM)"
    if not paired:
        return "RUAS's losses (IEM + NRM) only: the data has no reference images, so it is unsupervised"
    return "RUAS's losses (IEM + NRM), unsupervised (the references are not used: --supervised adds L1 to them)"


def _frozen(*dicts: dict[str, Tensor]) -> dict[str, Tensor]:
    """Detached views sharing storage: they follow the owning optimizer, no gradient flows in."""
    return {k: v.detach() for d in dicts for k, v in d.items()}


class LowLightTask(Task):
    """RUAS low-light enhancement (see the module docstring)."""

    name = "lowlight"
    space, cell_names, primitives = SPACE, CELL_NAMES, tuple(RUAS_PRIMITIVES)  # the genotype space
    Settings = LowLightSettings
    recipes = RECIPES
    metrics, select = {"psnr": "max", "ssim": "max"}, "psnr"
    cell_titles = {"iem": "illumination estimation (IEM), each stage: illumination t, enhanced u = input / t",
                   "nrm": "noise removal (NRM): denoises the enhanced u"}
    data_help = ("low-light pairs: LOL (DIR/our485/{low,high}, DIR/eval15/{low,high}), DIR/{low,high}, "
                 "DIR/{input,expert} or split folders DIR/{train,val,test}/...; validation is DIR/val or a "
                 "seeded slice of the training split, never the test files; a folder of images without "
                 "references works unsupervised; default: embedded synthetic pairs. --recipe adapt: search reads "
                 "ROOT/<scene>/ sub-folders (one scene or camera each, at least 2; default: 6 embedded synthetic "
                 "cameras), train adapts to the one folder given (default: the embedded held-out camera)")
    pairs_help = "--pairs LOW_DIR REFERENCE_DIR: low-light images and their references"
    can_score_predictions = True
    reads_released = True

    def add_arguments(self, parser: argparse.ArgumentParser, stage: str) -> None:
        add_task_arguments(parser, stage)

    # -- search ----------------------------------------------------------------------------
    def search_data(self, s: LowLightSettings) -> SearchData:
        if s.adapt:
            adapt.check_adapt_search(s)  # before the data is read
            data = adapt_data.search_data(s)
            first = data.lower.scenes[0]  # type: ignore[attr-defined]
            _require_pairs_if_supervised(first, s)
            note = f"inner steps: {adapt.inner_rule(s)}; objective: {_objective(s, lldata.is_paired(first))}"
            return dataclasses.replace(data, note=f"{data.note}\n{note}")
        data = lldata.search_data(s)
        _require_pairs_if_supervised(data.lower, s)
        objective_note = _objective(s, lldata.is_paired(data.lower))
        return dataclasses.replace(data, note=f"{data.note}\nobjective: {objective_note}")

    def reference_network(self, s: LowLightSettings) -> RUASNet:
        """The network of the reference genotype (recipe adapt), its weights drawn from the global RNG."""
        return self.build_network(SearchResult(genotype=reference_genotype()), s)  # type: ignore[return-value]

    def build_search(self, s: LowLightSettings, device: torch.device) -> SearchSetup:
        if s.adapt:  # meta-learning the initialisation of a fixed network
            return adapt.build_meta_search(self.reference_network(s), s, device,
                                           lambda outputs, batch: objective(outputs, batch, s, "both"))
        supernet = RUASSearch(s.iem_stages, s.nrm_cells, s.nrm_channels, self.primitives).to(device)
        alphas = {part: supernet.arch_parameters(part) for part in CELL_NAMES}

        def loss(terms: str) -> bilevel.problem.Loss:
            def f(lower: dict[str, Tensor], upper: dict[str, Tensor], batch: dict[str, Any]) -> Tensor:
                return objective(bilevel.call(supernet, {**lower, **upper}, batch["input"]), batch, s, terms)
            return f

        def weights_optimizer(params: Any) -> torch.optim.Optimizer:
            return make_optimizer(s.lower_optimizer, params, s.lr, s.weight_decay, s.momentum)

        upper_terms = {"iem": "both", "nrm": "nrm"}
        every = {"iem": 1, "nrm": s.nrm_every}
        if s.lower_problems == "shared":
            weights = supernet.weight_parameters()
            shared = LowerLevel("weights", weights_optimizer(weights.values()), grad_clip=s.lower_grad_clip)
            levels = {"iem": shared, "nrm": shared}
            lower_vars = {"iem": weights, "nrm": weights}
            lower_terms = {"iem": "both", "nrm": "both"}
        else:
            lower_vars = {part: supernet.weight_parameters(part) for part in CELL_NAMES}
            levels = {part: LowerLevel(part, weights_optimizer(lower_vars[part].values()),
                                       every=every[part], grad_clip=s.lower_grad_clip) for part in CELL_NAMES}
            lower_terms = {"iem": "iem", "nrm": "nrm"}
        groups = []
        for part in CELL_NAMES:
            other = "nrm" if part == "iem" else "iem"
            constants = _frozen(alphas[other], {} if lower_vars[other] is lower_vars[part] else lower_vars[other])
            problem = bilevel.BilevelProblem(lower_vars[part], alphas[part], loss(lower_terms[part]),
                                             loss(upper_terms[part]), buffers=constants)
            adam = make_optimizer("adam", alphas[part].values(), s.arch_lr, s.arch_weight_decay, betas=ARCH_BETAS)
            groups.append(Group(part, problem, adam, levels[part], every=every[part], grad_clip=s.grad_clip))
        schedulers = [sched for level in dict.fromkeys(levels.values())
                      for sched in make_schedule(s.lr_schedule, level.optimizer, s.epochs, s.lr_min)]
        return SearchSetup(supernet, groups, schedulers)

    def search_batches(self, lower: Any, upper: Any, s: LowLightSettings) -> tuple[Any, Any]:
        """Recipe adapt: a batch of episodes as ``bilevel.Tasks`` of support sets and of query sets."""
        if s.adapt:
            return episode_tasks(lower, "support"), episode_tasks(upper, "query")
        return lower, upper

    def search_model(self, setup: SearchSetup, s: LowLightSettings) -> nn.Module | None:
        """Recipe adapt: the network holding the learned initialisation (CPU); None otherwise."""
        if not s.adapt:
            return None
        with torch.random.fork_rng(devices=[]):  # the fresh copy's random weights are overwritten
            return adapt.learned_network(setup, self.reference_network(s))

    def search_result(self, setup: SearchSetup, s: LowLightSettings) -> SearchResult:
        if s.adapt:  # no cells searched: the reference genotype the initialisation is learned for
            return SearchResult(genotype=reference_genotype())
        net = setup.supernet
        return SearchResult(genotype=derive_ruas({"iem": net.alphas_iem, "nrm": net.alphas_nrm}, self.primitives))

    # -- train -----------------------------------------------------------------------------
    def train_data(self, s: LowLightSettings) -> TrainData:
        data = adapt_data.train_data(s) if s.adapt else lldata.train_data(s)
        _require_pairs_if_supervised(data.train, s)
        return data

    def training_note(self, s: LowLightSettings, data: TrainData, network: nn.Module, result: SearchResult) -> str:
        if s.adapt:
            rule = "plain SGD" if s.train_optimizer == "sgd" and s.momentum == 0 else s.train_optimizer
            return (f"adapting: all weights, {rule} at {s.lr} (no schedule), one batch of {s.batch_size} random "
                    f"{s.crop} px crops per step, on {_objective(s, lldata.is_paired(data.train))}")
        if s.train_optimizer == "sgd":
            what = (f"IEM weights on the IEM loss every step, NRM weights on the NRM loss every {s.nrm_every} steps "
                    "(SGD)")
        else:
            what = "all weights (Adam)"
        if data.scoring.references:
            select = "model selected on validation psnr"
        else:
            select = ("model: the last epoch's (the validation images have no references: no psnr can select "
                      "a model)")
        return f"optimising: {what} on {_objective(s, lldata.is_paired(data.train))}; {select}"

    def check_genotype(self, genotype: Any, source: str = "") -> None:
        super().check_genotype(genotype, source)
        genotype_to_ops(genotype, source)

    def build_network(self, result: SearchResult, s: LowLightSettings) -> nn.Module:
        self.check_result(result)
        ops = genotype_to_ops(result.genotype)
        return RUASNet(ops["iem_ops"], ops["nrm_ops"], s.iem_stages, s.nrm_cells, s.nrm_channels, s.output)

    def released_weights(self, state: dict[str, Tensor], source: str = "") -> ReleasedWeights | None:
        """RUAS's released files (``released.py``) mapped onto ``RUASNet``; ``None`` for other names."""
        return ruas_released(state, source)

    def build_training(self, network: nn.Module, s: LowLightSettings, steps_per_epoch: int) -> TrainSetup:
        if s.adapt:
            return adapt.adapt_training(network, s)
        if s.train_optimizer == "adam":
            groups = [TrainGroup("all", make_optimizer("adam", network.parameters(), s.lr, s.weight_decay),
                                 loss="loss", grad_clip=s.grad_clip)]
        else:
            def sgd(module: nn.Module, lr: float) -> torch.optim.Optimizer:
                return make_optimizer("sgd", module.parameters(), lr, s.weight_decay, s.momentum)
            groups = [TrainGroup("iem", sgd(network.iem, s.iem_lr), loss="iem", grad_clip=s.grad_clip),
                      TrainGroup("nrm", sgd(network.nrm, s.nrm_lr), loss="nrm", every=s.nrm_every,
                                 grad_clip=s.grad_clip)]
        schedulers = [sched for g in groups for sched in make_schedule(s.lr_schedule, g.optimizer, s.epochs, s.lr_min)]
        return TrainSetup(groups, schedulers)

    def train_losses(self, network: nn.Module, batch: dict[str, Any], s: LowLightSettings) -> dict[str, Tensor]:
        """``loss`` (IEM + NRM terms: the Adam group's, recipe adapt's group's), ``iem`` and ``nrm`` (the SGD
        groups')."""
        outputs = network(batch["input"])
        if s.train_optimizer == "adam" or s.adapt:
            return {"loss": objective(outputs, batch, s, "both")}
        return {"iem": objective(outputs, batch, s, "iem"), "nrm": objective(outputs, batch, s, "nrm")}

    # -- evaluate --------------------------------------------------------------------------
    def test_data(self, data: str | list[str] | None, s: LowLightSettings) -> TestData:
        """The folder ``data`` (its test split), or the embedded test split; recipe adapt without a folder: the
        embedded held-out scene's evaluation images."""
        return adapt_data.test_data(data, s) if s.adapt else lldata.test_data(data, s)

    @torch.no_grad()
    def enhance(self, network: nn.Module, batch: dict[str, Any], output: str = "out") -> list[dict[str, Any]]:
        """Per item: ``name``, ``input``, ``output`` (the network's output ``output``, clamped to [0, 1])
        and ``target`` if any, each ``[3, H, W]`` cropped back to the item's ``size`` (undoing any padding)."""
        x = batch["input"]
        out = keep_gray(x, network(x)[output]).clamp(0.0, 1.0)  # no cast on gray
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
    def evaluate_batch(self, network: nn.Module, batch: dict[str, Any], s: LowLightSettings,
                       scoring: Scoring) -> tuple[list[dict[str, Any]], Any]:
        """Records ``{"name", <metric>: value}`` (the metrics of ``scoring``, on items with a reference)
        and the items of ``enhance`` (each with its ``metrics``, for the panels)."""
        items = self.enhance(network, batch, s.output)
        records = []
        for item in items:
            rec: dict[str, Any] = {"name": item["name"]}
            if "target" in item:
                item["metrics"] = _scores(item["output"], item["target"], scoring.metrics or tuple(self.metrics))
                rec.update(item["metrics"])
            records.append(rec)
        return records, items

    def score_predictions(self, pred_dir: str, data: str | None,
                          s: LowLightSettings) -> tuple[list[dict[str, Any]], Scoring]:
        """Records ``{"name", "psnr", "ssim"}`` of enhanced images made elsewhere: each test item of
        ``data`` (or of the embedded test split) is matched to ``pred_dir/NAME.*`` by file name (any
        image extension; what ``evaluate.py --save-images`` writes) and scored as ``evaluate_batch``
        does."""
        test = self.test_data(data, s)
        if not test.scoring.references:
            raise DataError(f"'{data}' has no reference images: predictions cannot be scored; pass a paired "
                            "folder (e.g. DIR/{low,high}) to --data")
        folder = PredictionFolder(pred_dir)
        records = []
        for index in range(len(test.test)):  # type: ignore[arg-type]
            item = test.test[index]
            target = unpad(item["target"], item["size"])
            output = folder.read(str(item["name"]), target.shape[-2:], reference=target)  # RGB metrics
            records.append({"name": item["name"], **_scores(output, target)})
        return records, test.scoring

    def save_outputs(self, outputs: Any, batch: dict[str, Any], folder: str) -> None:
        """``NAME.png`` (the enhanced image) and ``panels/NAME.png`` (input | enhanced | reference, the
        input's and the output's PSNR/SSIM against the reference in their titles)."""
        for item in outputs:
            stem = Path(str(item["name"])).stem
            write_image(Path(folder) / f"{stem}.png", item["output"])
            write_image(Path(folder) / PANELS / f"{stem}.png", item_panel(item, PANEL_COLUMNS, _scores))

    def samples(self, network: nn.Module, batch: dict[str, Any]) -> Tensor | None:
        was_training = network.training
        network.eval()
        assert isinstance(network, RUASNet)  # the bare network of build_network; it holds the output used
        small = {k: (v[:4] if isinstance(v, (Tensor, list)) else v) for k, v in batch.items()}
        items = self.enhance(network, small, network.output)
        network.train(was_training)
        return _grid(items)

    def evaluation_note(self, s: LowLightSettings, scoring: Scoring) -> str:
        if not scoring.references:
            return ("no reference images in this folder: no reference metrics (PSNR/SSIM) can be computed; "
                    "records carry only names, use --save-images to inspect the outputs")
        return ("PSNR and SSIM on RGB in [0, 1] at full resolution, no border crop, no Y channel (LOL "
                "convention); SSIM with an 11x11 Gaussian window (sigma 1.5) over valid positions")


#: Columns of the ``--save-images`` panels (the reference left out without one).
PANEL_COLUMNS = (("input", "low-light input"), ("output", "enhanced"), ("target", "reference"))


#: The metrics by name: ``[B, 3, H, W]`` image and reference -> ``[B]``.
_METRICS = {"psnr": psnr, "ssim": ssim}


def _scores(image: Tensor, reference: Tensor, names: tuple[str, ...] = tuple(_METRICS)) -> dict[str, float]:
    """Metrics ``names`` of ``image`` ``[3, H, W]`` against ``reference`` (RGB in [0, 1], full resolution)."""
    return {name: float(_METRICS[name](image[None], reference[None])[0]) for name in names}


def _grid(items: list[dict[str, Any]]) -> Tensor:
    """Rows ``input | enhanced | reference`` (reference omitted without one), labelled: ``[3, H', W']``."""
    paired = all("target" in i for i in items)
    keys = ("input", "output", "target") if paired else ("input", "output")
    labels = ("low-light input", "enhanced", "reference")[:len(keys)]
    return labelled_grid([[item[k] for k in keys] for item in items], labels)
