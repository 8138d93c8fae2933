"""``search.py``: architecture and/or hyper-parameter search with any hypergradient method."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm import tqdm

from bilevel import METHODS, GroupedLoop, MultilevelLoop
from bilevel.methods.saga import MissingIndexError
from nas.plot import plot_genotype
from runtime.precision import Precision
from runtime.speed import channels_last_inputs, check_search, to_channels_last
from tasks import SearchResult, Settings, Task
from tasks.registry import get_task
from tasks.results import GENOTYPE_FILE, HPARAMS_FILE, hparams_to_json

from .budget import load_schedulers, step_budget
from .config import add_common, add_search_flags, resolve, task_from_argv
from .data import loader, steps_per_epoch, to_device
from .distributed import World
from .errors import UserError
from .loop import begin, drive, launch, stopped_message
from .runs import MetricsCSV, atomic_write_bytes, save_torch
from .state import Averages, rng_state, set_rng_state

DESCRIPTION = """Search an architecture (and/or learn hyper-parameters) for a task with bilevel optimisation:
network weights are the lower variables, architecture weights and hyper-parameters the upper ones,
in one or more groups with their own schedules. Writes, in --out: genotype.json and genotype.png
(tasks that search cells), hparams.json (tasks that learn hyper-parameters), model.pt (meta-learning:
the learned initialisation, for evaluate.py and train.py --from), config.json,
checkpoint.pt (every --save-every steps, every epoch and on Ctrl-C), metrics.csv (one row per epoch).
A budget that ends before the upper level moves (e.g. a --max-steps shorter than a recipe's warm-up) is
not stretched: the run says that the upper level never stepped, and hparams.json records
"_learned": false beside the start values it holds.
Data-parallel: torchrun --nproc_per_node N search.py ... (--batch-size is per process; rank 0 writes)."""

OWNED = ("genotype.json", "genotype.png", "hparams.json", "model.pt", "config.json", "checkpoint.pt", "metrics.csv")


def build_parser(argv: Sequence[str] | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="search.py", description=DESCRIPTION)
    add_common(parser, "search", task_from_argv(argv))
    add_search_flags(parser)
    return parser


class _Search:
    """The state of one search run: setup, loop, position, running averages."""

    def __init__(self, task: Task, s: Settings, device: torch.device, run_dir: Path, world: World = World(),
                 exact: bool = True, device_flag: str = "auto") -> None:
        self.task, self.run_dir, self.world, self.device, self.device_flag = task, run_dir, world, device, device_flag
        self.metrics = MetricsCSV(run_dir / "metrics.csv")
        check_search(s.compile)
        self.precision = Precision(s.amp, device, scaler=False)  # fp16: the loop's lower steps scale their losses
        torch.manual_seed(s.seed)
        self.data = task.search_data(s)
        self.lower_set, self.upper_set = self.data.lower, self.data.upper
        self.steps_per_epoch = steps_per_epoch(self.lower_set, self.upper_set, batch_size=s.batch_size * world.size,
                                               names=("lower level", "upper level"))
        # --max-steps N: exactly N steps; the epochs, and the schedules built over them, follow
        s, self.total, self.budget_note = step_budget(s, self.steps_per_epoch, exact)
        self.resume_note = ""
        self.setup = task.build_search(s, device)
        # values the build measured (e.g. a latency table) join the settings: config.json and the checkpoint keep them
        self.s = s.replace(self.setup.settings, source="the search's build") if self.setup.settings else s
        if s.channels_last:
            to_channels_last(self.setup.supernet)
        self.loop = self._loop(s, world)
        self.epoch = self.step_in_epoch = self.global_step = 0
        self.averages = Averages()
        self.start_upper = self._upper()
        self.upper_moved = False  # before this session (a resumed run's checkpoint says)
        self._result: tuple[int, SearchResult] | None = None  # (global_step, the result at that step)

    def _loop(self, s: Settings, world: World) -> GroupedLoop | MultilevelLoop:
        """The groups' loop, or a multilevel loop over the setup's levels (one process, float32)."""
        if not self.setup.levels:
            if s.method not in METHODS:
                raise UserError(f"--method {s.method} is a method of searches over more than two levels; the search of "
                                f"task {self.task.name!r} (recipe {s.recipe}) has two levels: choose one of "
                                f"{', '.join(sorted(METHODS))}")
            return GroupedLoop(self.setup.groups, s.method, s.method_options, amp=s.amp == "fp16",
                               reduce=world.average if world.active else None)
        if world.active or s.amp == "fp16":
            raise UserError(f"the {len(self.setup.levels)}-level search of task {self.task.name!r} runs in one process "
                            "without fp16: start it with python search.py, without --amp fp16")
        try:
            return MultilevelLoop(self.setup.levels, s.method, s.method_options)
        except ValueError as e:
            raise UserError(f"{e} (--method, --option)") from None

    def _upper(self) -> list[torch.Tensor]:
        if self.setup.levels:  # every level but the bottom one
            return [v.detach().clone() for lv in self.setup.levels[:-1] for v in lv.level.variables.values()]
        return [v.detach().clone() for g in self.setup.groups for v in g.problem.upper.values()]

    def moved(self) -> bool:
        """Whether any upper variable has changed since the run started."""
        return self.upper_moved or any(not torch.equal(a, b) for a, b in zip(self.start_upper, self._upper()))

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.epoch, self.step_in_epoch = ckpt["epoch"], ckpt["step_in_epoch"]
        self.global_step = ckpt["global_step"]
        self.setup.supernet.load_state_dict(ckpt["supernet"])
        self.loop.load_state_dict(ckpt["loop"])
        self.resume_note = load_schedulers(self.setup.schedulers, ckpt["schedulers"])
        self.averages = Averages(ckpt["averages"])
        set_rng_state(ckpt["rng"])
        self.start_upper, self.upper_moved = self._upper(), bool(ckpt.get("upper_moved", True))
        self._result = None

    def result(self) -> SearchResult:
        """The task's search result now; derived once a step (the upper variables move only in ``step``), so
        an epoch's end, the checkpoint after it and the final report share it (fusion times a network for it)."""
        if self._result is None or self._result[0] != self.global_step:
            self._result = (self.global_step, self.task.search_result(self.setup, self.s))
        return self._result[1]

    def module(self) -> torch.nn.Module:
        return self.setup.supernet

    def start_epoch(self) -> Any:
        """This epoch's (lower batch, upper batch) pairs from the current position, on the device."""
        shard, s = (self.world.rank, self.world.size), self.s
        lower = loader(self.lower_set, s.batch_size, s.seed, self.epoch, self.step_in_epoch, workers=s.workers,
                       shard=shard)
        if self.data.paired:  # one set of episodes: each batch serves both levels
            return ((b, b) for b in (to_device(batch, self.device) for batch in lower))
        upper = loader(self.upper_set, s.batch_size, s.seed + 7919, self.epoch, self.step_in_epoch,
                       workers=s.workers, shard=shard)
        return ((to_device(a, self.device), to_device(b, self.device)) for a, b in zip(lower, upper))

    def postfix(self) -> dict[str, str]:
        return {k.replace("_loss", ""): f"{v:.4g}" for k, v in self.averages.means().items() if "loss" in k}

    def save(self, final: bool) -> SearchResult:
        """checkpoint.pt, genotype.json / hparams.json (and, when ``final``, genotype.png); rank 0 only."""
        result = self.result()
        if not self.world.main:
            return result
        if result.genotype is not None:
            atomic_write_bytes(self.run_dir / GENOTYPE_FILE, (result.genotype.to_json() + "\n").encode())
            if final:
                plot_genotype(result.genotype, self.run_dir / "genotype.png", titles=self.task.cell_titles)
        moved = self.moved()
        if result.hparams:
            atomic_write_bytes(self.run_dir / HPARAMS_FILE, hparams_to_json(result.hparams, learned=moved).encode())
        model = self.task.search_model(self.setup, self.s)
        if model is not None:  # a network the search yields (a learned initialisation): evaluate.py reads it
            save_torch(self.run_dir / "model.pt", {
                "kind": "model", "task": self.task.name, "stage": "search", **result.to_dict(),
                "config": self.s.to_dict(), "state_dict": model.state_dict(), "step": self.global_step,
                "epoch": self.epoch, "params": self.task.count_parameters(model), "learned": moved})
        save_torch(self.run_dir / "checkpoint.pt", {
            "kind": "search", "task": self.task.name, "config": self.s.to_dict(), "device": self.device_flag,
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            **result.to_dict(), "supernet": self.setup.supernet.state_dict(),
            "loop": self.loop.state_dict(), "schedulers": [sc.state_dict() for sc in self.setup.schedulers],
            "averages": self.averages.state(), "rng": rng_state(), "upper_moved": moved})
        return result

    def step(self, item: tuple[Any, Any]) -> dict[str, Any]:
        lower_batch, upper_batch = self.task.search_batches(*item, self.s)
        if self.s.channels_last:
            lower_batch, upper_batch = channels_last_inputs((lower_batch, upper_batch))
        try:
            with self.precision.search_step():
                stats = self.loop.step(lower_batch, upper_batch)
        except NotImplementedError as e:
            raise UserError(f"{e} (--method {self.s.method} cannot run with this lower optimizer: choose "
                            "another lower optimizer, or --method darts1, cg or neumann)") from None
        except MissingIndexError as e:
            raise UserError(f"{e}. The search's loaders reshuffle the samples every epoch, so no batch is a fixed "
                            f"minibatch: use --method soba or ma_soba") from None
        self.averages.add(stats)
        self.step_in_epoch += 1
        self.global_step += 1
        return stats

    def end_epoch(self, bar: tqdm) -> None:
        finished = self.step_in_epoch >= self.steps_per_epoch
        if finished:
            for sched in self.setup.schedulers:
                sched.step()
        result = self.result()
        row = {"epoch": self.epoch + 1, "steps": self.global_step, "complete": int(finished),
               **self.averages.means(), "time_s": self.averages.elapsed()}
        for g in self.setup.groups:
            row[f"lr/{g.lower.name}"] = g.lower.optimizer.param_groups[0]["lr"]
        for lv in self.setup.levels:
            row[f"lr/{lv.name}"] = lv.optimizer.param_groups[0]["lr"]
        if result.genotype is not None:
            row["genotype"] = json.dumps(result.genotype.to_dict(), separators=(",", ":"))
        row.update({f"hparam/{k}": float(v) for k, v in result.hparams.items() if v.numel() == 1})
        if self.world.main:
            self.metrics.append(row)
        if finished:
            self.epoch, self.step_in_epoch, self.averages = self.epoch + 1, 0, Averages()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    task = get_task(args.task)

    def build(s: Settings, world: World, run_dir: Path, ckpt: dict[str, Any] | None, exact: bool) -> Callable[[], int]:
        run = _Search(task, s, world.device, run_dir, world, exact, args.device)  # data checked, network built
        return lambda: _run(run, args, task, ckpt)

    return launch(args, task, "search", OWNED, lambda: resolve(args, "search"), build)


def _idle_upper(task: Task, s: Settings, steps_per_epoch: int, total: int) -> str:
    """Why the upper level cannot step within ``total`` steps (its warm-up outlasts them); '' otherwise."""
    warm = task.upper_warmup_steps(s, steps_per_epoch)
    return f"warm-up {warm} steps {'>' if warm > total else '='} budget {total} steps" if warm >= total > 0 else ""


def _run(run: _Search, args: argparse.Namespace, task: Task, ckpt: dict[str, Any] | None) -> int:
    s, device, world, run_dir = run.s, run.device, run.world, run.run_dir
    begin(run, task, "search", s, run.data.split, ckpt)
    total = run.total
    groups = ", ".join(f"{g.name} (every {g.every}, lower {g.lower.name} every {g.lower.every})"
                       for g in run.setup.groups)
    if run.setup.levels:
        groups = "levels, top first: " + " > ".join(
            f"{lv.name} (every {lv.every}, {'training' if lv.batch == 'lower' else 'validation'} batch)"
            for lv in run.setup.levels)
    speed = run.precision.describe_search() + (", channels-last" if s.channels_last else "")
    print(f"search {task.name} (recipe {s.recipe}) with {s.method} on {device} ({args.threads_note}, {speed}"
          f"{world.note(s.batch_size)}): {run.steps_per_epoch} steps/epoch, "
          f"{total} steps in all; {'' if run.setup.levels else 'groups: '}{groups}; run folder {run_dir}"
          + (f"\n{run.data.note}" if run.data.note else ""))
    for note in filter(None, [run.budget_note, run.resume_note]):
        print(note)
    idle = _idle_upper(task, s, run.steps_per_epoch, total)
    if idle and not run.moved():
        print(f"note: the upper level will not step ({idle}): its result will be the start values; give the run "
              "a longer budget (--max-steps, --epochs)")
    if drive(run, "search", s, device):
        print(stopped_message(run))
        return 130
    result = run.result()
    files = [n for n in OWNED if (run_dir / n).is_file()]
    if run.moved():
        print(result.describe() if result.genotype is not None or result.hparams else
              "learned: the network's initialisation (model.pt)")
    else:
        held = " and ".join(n for n in (GENOTYPE_FILE, HPARAMS_FILE) if n in files)
        print(f"the upper level never stepped ({idle or f'its variables did not change in {run.global_step} steps'}): "
              f"{held} {'hold' if ' and ' in held else 'holds'} the start values ({result.describe()})")
    print(f"wrote {', '.join(files)} in {run_dir}")
    if "model.pt" in files:
        print(f"next: python evaluate.py --checkpoint {run_dir / 'model.pt'}")
    if task.results or "model.pt" not in files:
        print(f"{'or' if 'model.pt' in files else 'next'}: python train.py --task {task.name} --from {run_dir}"
              + (f" --recipe {s.recipe}" if s.recipe != "default" else ""))
    return 0
