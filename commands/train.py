"""``train.py``: retrain the network of a search result (genotype and/or hyper-parameters)."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from bilevel import NonFiniteError
from datasets.io import write_image
from nas.genotype import Genotype
from runtime.precision import Precision
from runtime.speed import Runner, speed_note
from tasks import SearchResult, Settings, Task, load_hparams
from tasks.registry import get_task
from tasks.results import GENOTYPE_FILE, HPARAMS_FILE

from .budget import load_schedulers, step_budget
from .config import add_common, resolve, task_from_argv
from .data import loader, steps_per_epoch, to_device
from .distributed import World
from .errors import UserError
from .evaluation import evaluate
from .loop import begin, drive, launch, stopped_message
from .models import InitWeights, load_init, read_init
from .runs import MetricsCSV, save_torch
from .state import Averages, rng_state, set_rng_state

DESCRIPTION = """Retrain the network of a search result. Writes, in --out: model.pt (the network at its best
validation score, with task, search result, settings, step and parameter count: evaluate.py needs
nothing else), checkpoint.pt (to --resume; every --save-every steps, every epoch and on Ctrl-C),
config.json, metrics.csv (one row per epoch) and samples.png for image tasks.
Data-parallel: torchrun --nproc_per_node N train.py ... (--batch-size is per process; rank 0 validates
and writes)."""

OWNED = ("model.pt", "checkpoint.pt", "config.json", "metrics.csv", "samples.png")


def build_parser(argv: Sequence[str] | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION)
    add_common(parser, "train", task_from_argv(argv))
    parser.add_argument("--from", dest="from_run", default=None, metavar="RUN_DIR",
                        help="a search run folder: its genotype.json and/or hparams.json are used, its recipe unless "
                             "--recipe is given, and the network starts from its model.pt where the search wrote one (a meta-learned initialisation, "
                             "e.g. lowlight --recipe adapt: fast adaptation to --data NEW with --max-steps K) "
                             "(default: none; --genotype / --hparams / --init given win over its files)")
    parser.add_argument("--genotype", default=None,
                        help="genotype.json written by search.py (or a shipped reference genotype); default: that "
                             "of --from, else of --init; required by the tasks that train a searched architecture")
    parser.add_argument("--hparams", default=None,
                        help="hparams.json written by search.py (e.g. learned loss weights); default: that of --from, "
                             "else of --init; required by the tasks that train with learned hyper-parameters")
    parser.add_argument("--init", default=None, metavar="WEIGHTS",
                        help="start from these weights instead of from scratch (fine-tuning): a model.pt of the "
                             "task, or a paper's released weights the task maps onto its network (lowlight: RUAS's "
                             "ckpt/*.pt; model/denoise.pt initialises the NRM only, as RUAS's retraining does); "
                             "without --genotype/--from, the genotype the weights were made with (default: none, "
                             "random initial weights)")
    return parser


def search_result(task: Task, args: argparse.Namespace, init: InitWeights | None = None) -> SearchResult:
    """The search result named by ``--from`` / ``--genotype`` / ``--hparams`` (checked for the task); with
    none of them, that of the ``--init`` weights."""
    genotype_file, hparams_file = args.genotype, args.hparams
    # the --from search run's own model.pt (a learned initialisation) holds its search result too
    of_from = args.from_run is not None and init is not None and Path(init.path) == Path(args.from_run) / "model.pt"
    if init is not None and init.result is not None and not (genotype_file or hparams_file) and (
            args.from_run is None or of_from and not any((Path(args.from_run) / n).is_file()
                                                          for n in (GENOTYPE_FILE, HPARAMS_FILE))):
        task.check_result(init.result, source=init.path)
        return init.result
    if args.from_run is not None:
        folder = Path(args.from_run)
        if not folder.is_dir():
            raise UserError(f"--from {folder} is not a folder; give a search run folder")
        if genotype_file is None and hparams_file is None and not any(
                (folder / name).is_file() for name in (GENOTYPE_FILE, HPARAMS_FILE)):
            raise UserError(_not_a_search_folder(folder))
        if genotype_file is None and (folder / GENOTYPE_FILE).is_file():
            genotype_file = folder / GENOTYPE_FILE
        if hparams_file is None and (folder / HPARAMS_FILE).is_file():
            hparams_file = folder / HPARAMS_FILE
    result = SearchResult()  # everything given is loaded; the task says what it requires
    if genotype_file is not None:
        result.genotype = Genotype.load(genotype_file)
    if hparams_file is not None:
        result.hparams = load_hparams(hparams_file)
    task.check_result(result, source=str(genotype_file or hparams_file or args.from_run or ""))
    if init is not None and init.result is not None and init.result.genotype is not None \
            and result.genotype is not None and result.genotype != init.result.genotype:
        raise UserError(f"--init {init.path} holds weights of another genotype than {genotype_file or args.from_run}; "
                        "drop --genotype/--from to train the genotype of the weights")
    return result


def search_init(task: Task, args: argparse.Namespace) -> InitWeights | None:
    """The initialisation a ``--from`` search run learned (its model.pt, written by search.py), unless
    ``--init`` names other weights; None when there is none."""
    if args.from_run is None or args.init is not None:
        return None
    folder = Path(args.from_run)
    path = folder / "model.pt"
    if not path.is_file() or not _search_config(folder):
        return None  # no model.pt, or a train run's: --from refuses such a folder with its own message
    init = read_init(path, task)
    init.description = f"the initialisation search run {args.from_run} learned ({init.description})"
    return init


def _search_config(folder: Path) -> dict[str, Any]:
    """The settings a search run folder's config.json records (empty: no readable config.json, or not
    a search run's)."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) and config.get("stage") == "search" else {}


def _not_a_search_folder(folder: Path) -> str:
    """Why ``--from folder`` gives no search result, and what to pass instead."""
    wanted = f"pass the folder search.py wrote (it holds {GENOTYPE_FILE} or {HPARAMS_FILE})"
    if (folder / "model.pt").is_file():
        return (f"--from {folder} is a train run folder (it holds model.pt), not a search run folder; {wanted}, "
                f"or --init {folder / 'model.pt'} to start from its weights")
    return f"--from {folder} holds neither {GENOTYPE_FILE} nor {HPARAMS_FILE}; {wanted}, or --genotype FILE"


def _resumed_result(task: Task, args: argparse.Namespace, ckpt: dict[str, Any]) -> SearchResult:
    """The search result of the checkpoint; ``--from`` / ``--genotype`` / ``--hparams`` given with
    ``--resume`` must name that same result (one-line ``UserError`` otherwise)."""
    result = SearchResult.from_dict(ckpt)
    flags = [f for f, v in (("--from", args.from_run), ("--genotype", args.genotype), ("--hparams", args.hparams))
             if v is not None]
    if not flags:
        return result
    given = search_result(task, args)
    other_genotype = given.genotype is not None and given.genotype != result.genotype
    other_hparams = bool(given.hparams) and (given.hparams.keys() != result.hparams.keys() or not all(
        torch.equal(v.float(), result.hparams[k].float()) for k, v in given.hparams.items()))
    if other_genotype or other_hparams:
        what = " and ".join(w for w, o in (("genotype", other_genotype), ("hyper-parameters", other_hparams)) if o)
        raise UserError(f"{'/'.join(flags)} name{'s' if len(flags) == 1 else ''} another {what} than the run "
                        f"being resumed; a resumed run keeps its own: drop {'/'.join(flags)} to continue it, or "
                        "start a new run with another --out (or --force)")
    return result


class _Train:
    """The state of one training run."""

    def __init__(self, task: Task, s: Settings, result: SearchResult, device: torch.device, run_dir: Path,
                 world: World = World(), init: InitWeights | None = None, exact: bool = True,
                 device_flag: str = "auto") -> None:
        self.task, self.result, self.device, self.run_dir = task, result, device, run_dir
        self.world, self.device_flag = world, device_flag
        self.metrics = MetricsCSV(run_dir / "metrics.csv")
        torch.manual_seed(s.seed)
        self.data = task.train_data(s)
        if self.data.settings:  # values the data decides (a folder's class count): config.json and model.pt keep them
            s = s.replace(self.data.settings, source="the training data")
        self.train_set, self.val_set = self.data.train, self.data.val
        self.steps_per_epoch = steps_per_epoch(self.train_set, batch_size=s.batch_size * world.size,
                                               names=("training set",))
        # --max-steps N: exactly N steps; the epochs, and the schedules built over them, follow
        s, self.total, self.budget_note = step_budget(s, self.steps_per_epoch, exact)
        self.s, self.resume_note = s, ""
        self.net = task.build_network(result, s)
        self.init_note = f"--init {init.path}: {init.description}; loaded {load_init(self.net, init)}" if init else ""
        self.init = {"path": init.path, "description": init.description} if init else None
        self.net.to(device)
        self.precision = Precision(s.amp, device)
        # the network as the losses and the validation call it: autocast, channels-last, compiled
        self.runner = Runner(self.net, self.precision, s.channels_last, s.compile)
        self.n_params = task.count_parameters(self.net)
        self.setup = task.build_training(self.net, s, self.steps_per_epoch)
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.best = task.worst()
        self.averages = Averages()

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.epoch, self.step_in_epoch, self.global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        self.best = ckpt["best_metric"]
        self.net.load_state_dict(ckpt["state_dict"])
        for g in self.setup.groups:
            g.optimizer.load_state_dict(ckpt["optimizers"][g.name])
        self.resume_note = load_schedulers(self.setup.schedulers, ckpt["schedulers"])
        self.averages = Averages(ckpt["averages"])
        self.precision.load_state_dict(ckpt.get("scaler"))
        set_rng_state(ckpt["rng"])

    def module(self) -> torch.nn.Module:
        return self.net

    def start_epoch(self) -> Any:
        """This epoch's batches from the current position, on the device (the network in training mode)."""
        self.task.on_epoch(self.net, self.epoch, self.s)
        self.net.train()
        batches = loader(self.train_set, self.s.batch_size, self.s.seed, self.epoch, self.step_in_epoch,
                         workers=self.s.workers, shard=(self.world.rank, self.world.size))
        return (to_device(batch, self.device) for batch in batches)

    def postfix(self) -> dict[str, str]:
        return {k: f"{v:.4g}" for k, v in self.averages.means().items() if k in self.task_losses()}

    def step(self, batch: dict[str, Any]) -> None:
        losses = self.task.train_losses(self.runner, batch, self.s)
        due = [g for g in self.setup.groups if self.global_step % g.every == 0]
        stats: dict[str, float] = {}
        for i, g in enumerate(due):
            loss = losses[g.loss]
            if not torch.isfinite(loss):
                raise NonFiniteError(f"step {self.global_step}: training loss {g.loss!r} is {float(loss)}; lower "
                                     "the learning rate or check the data")
            params = g.parameters()
            g.optimizer.zero_grad(set_to_none=True)
            torch.autograd.backward(self.precision.scale(loss), inputs=params, retain_graph=i < len(due) - 1)
            self.world.average([p.grad for p in params])  # data-parallel: the mean over the processes
            self.precision.unscale(g.optimizer)
            clip = g.grad_clip if g.grad_clip else math.inf
            stats[f"grad_norm/{g.name}"] = float(torch.nn.utils.clip_grad_norm_(params, clip))
            self.precision.step(g.optimizer)
        self.precision.update()
        stats.update({k: float(v.detach()) for k, v in losses.items()})
        self.averages.add(stats)
        self.step_in_epoch += 1
        self.global_step += 1

    def save(self, final: bool) -> None:
        """checkpoint.pt (rank 0 only)."""
        if not self.world.main:
            return
        save_torch(self.run_dir / "checkpoint.pt", {
            "kind": "train", "task": self.task.name, "config": self.s.to_dict(), "device": self.device_flag,
            **self.result.to_dict(), "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "best_metric": self.best, "state_dict": self.net.state_dict(),
            "optimizers": {g.name: g.optimizer.state_dict() for g in self.setup.groups},
            "schedulers": [sc.state_dict() for sc in self.setup.schedulers],
            "averages": self.averages.state(), "scaler": self.precision.state_dict(), "rng": rng_state()})

    def end_epoch(self, bar: tqdm) -> None:
        """Schedulers, validation, model selection, metrics row, sample images (rank 0 validates
        and writes; the other processes only step their schedulers)."""
        finished = self.step_in_epoch >= self.steps_per_epoch
        if finished:
            for sched in self.setup.schedulers:
                sched.step()
        if self.world.main:
            self._validate(bar, finished)
        if finished:
            self.epoch, self.step_in_epoch, self.averages = self.epoch + 1, 0, Averages()

    def _validate(self, bar: tqdm, finished: bool) -> None:
        """Validation, model selection, the metrics row, model.pt and samples.png (rank 0's part)."""
        scores: dict[str, float] = {}
        first = None
        if self.val_set is not None:
            scores, _, first = evaluate(self.task, self.runner, self.val_set, self.s, self.device, self.data.scoring,
                                        progress=False)
            scores.pop("count", None)
        score = scores.get(self.task.select)
        row = {"epoch": self.epoch + 1, "steps": self.global_step, "complete": int(finished), **self.averages.means(),
               **{f"val_{k}": v for k, v in scores.items()},
               **{f"lr/{g.name}": g.optimizer.param_groups[0]["lr"] for g in self.setup.groups},
               "time_s": self.averages.elapsed()}
        self.metrics.append(row)
        bar.write(f"epoch {self.epoch + 1}: " + ", ".join(
            f"{k} {v:.4g}" for k, v in row.items() if k.startswith("val_") or k in self.task_losses()))
        # without a validation score (no validation set or no references) the latest model is kept
        improved = score is not None and (math.isinf(self.best) or self.task.better(score, self.best))
        if improved:
            self.best = score
        if improved or score is None:
            save_torch(self.run_dir / "model.pt", {
                "kind": "model", "task": self.task.name, **self.result.to_dict(),
                "config": self.s.to_dict(), "state_dict": self.net.state_dict(), "step": self.global_step,
                "epoch": self.epoch + 1, "metric": self.task.select, "best_metric": score, "params": self.n_params,
                **({"init": self.init} if self.init else {})})
        grid = self.task.samples(self.net, first) if first is not None else None
        if grid is not None:
            write_image(self.run_dir / "samples.png", grid.detach().cpu())

    def task_losses(self) -> set[str]:
        return {g.loss for g in self.setup.groups}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    task = get_task(args.task)
    if args.resume and args.init is not None:
        raise UserError("--init starts a run from given weights, --resume continues one from its checkpoint.pt: "
                        "drop --init")
    init = read_init(args.init, task) if args.init is not None else None
    init = init or (None if args.resume else search_init(task, args))
    fresh = None if args.resume else search_result(task, args, init)  # errors first

    def build(s: Settings, world: World, run_dir: Path, ckpt: dict[str, Any] | None, exact: bool) -> Callable[[], int]:
        result = _resumed_result(task, args, ckpt) if ckpt is not None else \
            (fresh if fresh is not None else search_result(task, args, init))
        run = _Train(task, s, result, world.device, run_dir, world, init, exact, args.device)  # data checked
        return lambda: _run(run, args, task, ckpt)

    return launch(args, task, "train", OWNED, lambda: _settings(args, init), build)


def _settings(args: argparse.Namespace, init: InitWeights | None) -> Settings:
    """The resolved settings, with the sizes the ``--init`` weights need where no flag sets them; without
    ``--recipe`` (or ``--config``), a ``--from`` search run's recipe."""
    if args.recipe is None and args.config is None and args.from_run is not None and not args.resume:
        recipe = _search_config(Path(args.from_run)).get("recipe")
        if recipe is not None and recipe != "default" and recipe in get_task(args.task).recipes:
            args.recipe = recipe
            print(f"recipe {recipe}: that of search run {args.from_run} (pass --recipe to choose another)")
    s = resolve(args, "train")
    if init is None or not init.settings:
        return s
    return s.replace({k: v for k, v in init.settings.items() if getattr(args, k, None) is None}, source=init.path)


def _run(run: _Train, args: argparse.Namespace, task: Task, ckpt: dict[str, Any] | None) -> int:
    s, device, world, run_dir = run.s, run.device, run.world, run.run_dir
    size = f"{run.n_params / 1e6:.2f}M" if run.n_params >= 1e6 else f"{run.n_params / 1e3:.2f}K"
    begin(run, task, "train", s, run.data.split, ckpt)
    note = "\n".join(filter(None, [task.training_note(s, run.data, run.net, run.result), run.data.note]))
    speed = speed_note(run.precision, s.channels_last, s.compile)
    print(f"train {task.name} (recipe {s.recipe}) on {device} ({args.threads_note}, {speed}{world.note(s.batch_size)}): "
          f"{run.steps_per_epoch} steps/epoch, {run.total} steps "
          f"in all, run folder {run_dir}" + (f"\n{note}" if note else ""))
    print(f"params: {size} ({run.n_params:,})" + (f"\n{run.init_note}" if run.init_note else ""))
    for line in filter(None, [run.budget_note, run.resume_note]):
        print(line)
    if drive(run, "train", s, device):
        print(stopped_message(run))
        return 130
    if math.isinf(run.best):
        print(f"no validation {task.select} (no validation set, or its items have no references): model.pt holds "
              f"the model of the last epoch; wrote model.pt, checkpoint.pt, metrics.csv in {run_dir}")
    else:
        print(f"best validation {task.select}: {run.best:.4g} (model.pt holds that model); wrote model.pt, "
              f"checkpoint.pt, metrics.csv in {run_dir}")
    print(f"next: python evaluate.py --checkpoint {Path(run_dir) / 'model.pt'}")
    return 0
