"""``search.py``: architecture (and loss-weight) search with any hypergradient method."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import torch
from tqdm import tqdm

from bilevel import BilevelLoop
from nas.plot import plot_genotype

from .config import add_common, add_search_flags, device_of, resolve, task_from_argv
from .data import loader, steps_per_epoch, to_device
from .registry import get_task
from .runs import MetricsCSV, open_run, save_torch, write_json
from .state import Averages, rng_state, set_rng_state

DESCRIPTION = """Search an architecture for a task with bilevel optimisation: the supernet weights are
the lower variables, the architecture (and any loss weights) the upper ones. Writes, in --out:
genotype.json, genotype.png, config.json, checkpoint.pt, metrics.csv (one row per epoch)."""


def build_parser(argv: Sequence[str] | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="search.py", description=DESCRIPTION)
    add_common(parser, "search", task_from_argv(argv))
    add_search_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    task = get_task(args.task)
    run_dir, ckpt, config = open_run(args, "search")
    if config is None:
        config = resolve(args, "search")
    config["device"] = args.device
    device = device_of(args.device)

    torch.manual_seed(config["seed"])
    lower_set, upper_set = task.search_data(config)
    setup = task.build_search(config, device)
    loops = [BilevelLoop(g.problem, config["method"], g.optimizer, setup.lower_optimizer,
                         method_options=config["method_options"], grad_clip=config.get("grad_clip"),
                         lower_grad_clip=config.get("lower_grad_clip"), amp=bool(config.get("amp", False)))
             for g in setup.groups]
    bs, n_steps = config["batch_size"], steps_per_epoch(lower_set, upper_set, batch_size=config["batch_size"])
    epoch = step_in_epoch = global_step = 0
    averages = Averages()
    metrics = MetricsCSV(run_dir / "metrics.csv")
    if ckpt is not None:
        epoch, step_in_epoch, global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        _restore(ckpt, setup, loops)
        averages = Averages(ckpt["averages"])
        metrics.truncate(epoch)
    write_json(run_dir / "config.json", config)

    total = config["epochs"] * n_steps
    if config["max_steps"] is not None:
        total = min(total, config["max_steps"])
    print(f"search {task.name} with {config['method']} on {device}: {n_steps} steps/epoch, "
          f"{total} steps in all, run folder {run_dir}")
    bar = tqdm(total=total, initial=min(global_step, total), desc="search", unit="step", dynamic_ncols=True)
    genotype = task.derive(setup.supernet)
    while global_step < total:
        lower_iter = loader(lower_set, bs, config["seed"], epoch, step_in_epoch, workers=config["workers"])
        upper_iter = loader(upper_set, bs, config["seed"] + 7919, epoch, step_in_epoch, workers=config["workers"])
        for lower_batch, upper_batch in zip(lower_iter, upper_iter):
            lower_batch, upper_batch = to_device(lower_batch, device), to_device(upper_batch, device)
            for i, (group, loop) in enumerate(zip(setup.groups, loops)):
                stats = loop.step(lower_batch, upper_batch, update_upper=global_step % group.every == 0,
                                  update_lower=i == len(loops) - 1)
                averages.add({k: v for k, v in stats.items() if k != "lower_loss"}, f"_{group.name}")
                if "lower_loss" in stats:
                    averages.add({"lower_loss": stats["lower_loss"]})
            step_in_epoch += 1
            global_step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in averages.means().items() if "loss" in k})
            if step_in_epoch >= n_steps or global_step >= total:
                break
        finished = step_in_epoch >= n_steps
        if finished and setup.scheduler is not None:
            setup.scheduler.step()
        genotype = task.derive(setup.supernet)
        row = {"epoch": epoch + 1, "steps": global_step, "complete": int(finished), **averages.means(),
               "lr": setup.lower_optimizer.param_groups[0]["lr"], "time_s": averages.elapsed(),
               "genotype": genotype.to_json()}
        metrics.append(row)
        if finished:
            epoch, step_in_epoch, averages = epoch + 1, 0, Averages()
        _save(run_dir, task, config, setup, loops, genotype, epoch, step_in_epoch, global_step, averages)
    bar.close()
    genotype_path = run_dir / "genotype.json"
    print(f"genotype: {genotype.to_json()}")
    print(f"wrote {genotype_path}, genotype.png, metrics.csv, checkpoint.pt in {run_dir}")
    print(f"next: python train.py --task {task.name} --genotype {genotype_path}")
    return 0


def _save(run_dir: Path, task, config, setup, loops, genotype, epoch: int, step_in_epoch: int,
          global_step: int, averages: Averages) -> None:
    genotype.save(run_dir / "genotype.json")
    plot_genotype(genotype, run_dir / "genotype.png")
    save_torch(run_dir / "checkpoint.pt", {
        "kind": "search", "task": task.name, "config": config, "epoch": epoch,
        "step_in_epoch": step_in_epoch, "global_step": global_step,
        "genotype": genotype.to_dict(),
        "supernet": setup.supernet.state_dict(),
        "lower_optimizer": setup.lower_optimizer.state_dict(),
        "upper_optimizers": {g.name: g.optimizer.state_dict() for g in setup.groups},
        "auxiliary": {g.name: {k: v.detach() for k, v in g.problem.auxiliary.items()} for g in setup.groups},
        "scheduler": None if setup.scheduler is None else setup.scheduler.state_dict(),
        "loop_steps": {g.name: loop.step_count for g, loop in zip(setup.groups, loops)},
        "averages": averages.state(), "rng": rng_state(),
    })


def _restore(ckpt: dict[str, Any], setup, loops) -> None:
    setup.supernet.load_state_dict(ckpt["supernet"])
    setup.lower_optimizer.load_state_dict(ckpt["lower_optimizer"])
    for group, loop in zip(setup.groups, loops):
        device = next(iter(group.problem.upper.values())).device
        for k, v in ckpt["auxiliary"].get(group.name, {}).items():
            group.problem.auxiliary[k] = v.to(device).requires_grad_(True)
        loop.adopt_auxiliary()
        group.optimizer.load_state_dict(ckpt["upper_optimizers"][group.name])
        loop.step_count = ckpt["loop_steps"][group.name]
    if setup.scheduler is not None and ckpt["scheduler"] is not None:
        setup.scheduler.load_state_dict(ckpt["scheduler"])
    set_rng_state(ckpt["rng"])
