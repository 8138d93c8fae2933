"""The one run loop of ``search.py`` and ``train.py``: resume, the run's start records, the progress
bar, the checkpoint clock, stop signals and the forecast of a long run.

A command describes its run as a ``Run`` (position, one step, an epoch's end, a save) and calls
``begin`` then ``drive``; what differs between searching and training stays in the command.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import torch
from tqdm import tqdm

from runtime.threads import apply_threads
from tasks import Settings, Task

from .budget import drop_recipe_max_steps, max_steps_given
from .config import device_of
from .distributed import SharedStop, World, data_parallel
from .runs import MetricsCSV, open_run, resumed_settings, write_json
from .session import Forecast, SaveClock, Stopper, until_stopped

__all__ = ["Run", "begin", "drive", "launch", "stopped_message"]


class Run(Protocol):
    """A search or a training run as the loop sees it."""

    epoch: int
    step_in_epoch: int
    global_step: int
    steps_per_epoch: int
    total: int
    world: World
    run_dir: Path
    metrics: MetricsCSV

    def restore(self, ckpt: dict[str, Any]) -> None: ...
    def module(self) -> torch.nn.Module: ...
    def start_epoch(self) -> Iterable[Any]: ...
    def step(self, item: Any) -> None: ...
    def postfix(self) -> dict[str, str]: ...
    def end_epoch(self, bar: tqdm) -> None: ...
    def save(self, final: bool) -> None: ...


def launch(args: argparse.Namespace, task: Task, stage: str, owned: Sequence[str],
           settings: Callable[[], Any], build: Callable[..., Callable[[], int]]) -> int:
    """Open the run folder (``--resume``, ``--force``), settle the settings (``settings()`` for a fresh
    run, the checkpoint's on resume), build the run (``build(s, world, folder_path, ckpt, exact)``: data
    checked and network built before anything is written; it returns the run's body) and run the body
    until done or stopped, writing a checkpoint on the way out."""
    fresh = None if args.resume else settings()  # settings errors before any folder is made
    with data_parallel(device_of(args.device)) as world:  # under torchrun: one process of several; rank 0 prints
        folder, ckpt = open_run(args, stage, tuple(owned))
        s = (fresh if fresh is not None else settings()) if ckpt is None else \
            drop_recipe_max_steps(resumed_settings(task, ckpt, args), args)
        args.threads_note = apply_threads(args.threads)  # before the data and network are built
        exact = ckpt is not None or max_steps_given(args)  # a recipe's max_steps is a cap
        body = build(s, world, folder.path, ckpt, exact)
        world.barrier()  # every process has checked the folder before rank 0 writes in it
        return folder.run_until_checkpoint(body) if world.main else body()


def begin(run: Run, task: Task, stage: str, s: Settings, split: dict[str, Any], ckpt: dict[str, Any] | None) -> None:
    """Restore a resumed run, give every process the same start, and write ``config.json`` (rank 0)
    with the metrics rows after the checkpoint dropped."""
    if ckpt is not None:
        run.restore(ckpt)
    run.world.broadcast(run.module().state_dict().values())  # identical starts, whatever the init did
    if run.world.main:
        run.metrics.truncate(run.epoch if ckpt is not None else 0)
        record = {"split": split} if split else {}
        write_json(run.run_dir / "config.json", {"task": task.name, "stage": stage, **s.to_dict(), **record})


def drive(run: Run, desc: str, s: Settings, device: torch.device) -> bool:
    """Step ``run`` to its total, epoch by epoch, with a progress bar; checkpoint every ``s.save_every``
    steps (or ``s.save_minutes``), at each epoch's end and on a stop signal. Returns whether a stop was
    requested (every process stops after the same step)."""
    world = run.world
    clock = SaveClock(s.save_every, s.save_minutes)
    forecast = Forecast(run.total, run.global_step, device.type)
    bar = tqdm(total=run.total, initial=min(run.global_step, run.total), desc=desc, unit="step", dynamic_ncols=True,
               disable=not world.main)
    with bar, Stopper() as signals:  # the bar closes (ends its line) before any error is printed
        stop = SharedStop(signals, world)
        while run.global_step < run.total and not stop.requested:
            for item in until_stopped(run.start_epoch(), signals):
                run.step(item)
                stop.poll()
                bar.update(1)
                bar.set_postfix(run.postfix())
                note = forecast.message(run.global_step)
                if note:
                    bar.write(note)
                if run.step_in_epoch >= run.steps_per_epoch or run.global_step >= run.total or stop.requested:
                    break
                if clock.due(run.global_step):
                    run.save(final=False)
                    clock.saved()
            if run.step_in_epoch >= run.steps_per_epoch or run.global_step >= run.total:
                run.end_epoch(bar)
            run.save(final=not stop.requested)
            clock.saved()
    world.barrier()  # the others wait while rank 0 writes
    return stop.requested


def stopped_message(run: Run) -> str:
    return f"stopped at step {run.global_step}; checkpoint written: continue with --resume --out {run.run_dir}"
