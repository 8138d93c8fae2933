"""``train.py``: retrain the discrete network of a searched genotype."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Sequence

import torch
from tqdm import tqdm

from bilevel import NonFiniteError
from datasets.io import write_image
from nas.genotype import Genotype

from .config import add_common, device_of, resolve, task_from_argv
from .data import loader, steps_per_epoch, to_device
from .errors import UserError
from .evaluation import evaluate
from .registry import get_task
from .runs import MetricsCSV, open_run, save_torch, write_json
from .state import Averages, rng_state, set_rng_state

DESCRIPTION = """Retrain the network of a genotype found by search.py. Writes, in --out: model.pt (the
network at its best validation score, with task, genotype, config, step and parameter count:
evaluate.py needs nothing else), checkpoint.pt (to --resume), config.json, metrics.csv (one row
per epoch) and samples.png for image tasks."""


def build_parser(argv: Sequence[str] | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="train.py", description=DESCRIPTION)
    add_common(parser, "train", task_from_argv(argv))
    parser.add_argument("--genotype", default=None,
                        help="genotype.json written by search.py (or a shipped reference genotype)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser(argv).parse_args(argv)
    task = get_task(args.task)
    run_dir, ckpt, config = open_run(args, "train")
    if ckpt is not None:
        genotype = Genotype.from_dict(ckpt["genotype"])
    else:
        if args.genotype is None:
            raise UserError("--genotype FILE is required (a genotype.json written by search.py)")
        genotype = Genotype.load(args.genotype)
        task.check_genotype(genotype, source=str(args.genotype))
        config = resolve(args, "train")
        config["genotype_file"] = str(args.genotype)
    config["device"] = args.device
    device = device_of(args.device)

    torch.manual_seed(config["seed"])
    train_set, val_set = task.train_data(config)
    net = task.build_network(genotype, config).to(device)
    n_params = task.count_parameters(net)
    size = f"{n_params / 1e6:.2f}M" if n_params >= 1e6 else f"{n_params / 1e3:.2f}K"
    print(f"params: {size} ({n_params:,})")
    bs = config["batch_size"]
    n_steps = steps_per_epoch(train_set, batch_size=bs)
    setup = task.build_training(net, config, n_steps)
    epoch = step_in_epoch = global_step = 0
    best = -math.inf
    averages = Averages()
    metrics = MetricsCSV(run_dir / "metrics.csv")
    if ckpt is not None:
        epoch, step_in_epoch, global_step = ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]
        best = ckpt["best_metric"]
        net.load_state_dict(ckpt["state_dict"])
        setup.optimizer.load_state_dict(ckpt["optimizer"])
        if setup.scheduler is not None and ckpt["scheduler"] is not None:
            setup.scheduler.load_state_dict(ckpt["scheduler"])
        averages = Averages(ckpt["averages"])
        metrics.truncate(epoch)
        set_rng_state(ckpt["rng"])
    write_json(run_dir / "config.json", config)

    total = config["epochs"] * n_steps
    if config["max_steps"] is not None:
        total = min(total, config["max_steps"])
    print(f"train {task.name} on {device}: {n_steps} steps/epoch, {total} steps in all, run folder {run_dir}")
    bar = tqdm(total=total, initial=min(global_step, total), desc="train", unit="step", dynamic_ncols=True)
    clip = config.get("grad_clip")
    while global_step < total:
        task.on_epoch(net, epoch, config)
        net.train()
        for batch in loader(train_set, bs, config["seed"], epoch, step_in_epoch, workers=config["workers"]):
            batch = to_device(batch, device)
            loss = task.train_loss(net, batch, config)
            if not torch.isfinite(loss):
                raise NonFiniteError(f"step {global_step}: training loss is {float(loss)}; lower the learning "
                                     "rate or check the data")
            setup.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(net.parameters(), clip if clip else math.inf)
            setup.optimizer.step()
            averages.add({"loss": float(loss.detach()), "grad_norm": float(norm)})
            step_in_epoch += 1
            global_step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{averages.means()['loss']:.4g}")
            if step_in_epoch >= n_steps or global_step >= total:
                break
        finished = step_in_epoch >= n_steps
        if finished and setup.scheduler is not None:
            setup.scheduler.step()
        scores, _, first = evaluate(task, net, val_set, config, device, progress=False)
        scores.pop("count", None)
        score = scores.get(task.metric, -math.inf)
        row = {"epoch": epoch + 1, "steps": global_step, "complete": int(finished), **averages.means(),
               **{f"val_{k}": v for k, v in scores.items()}, "lr": setup.optimizer.param_groups[0]["lr"],
               "time_s": averages.elapsed()}
        metrics.append(row)
        bar.write(f"epoch {epoch + 1}: " + ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                                                     if k.startswith("val_") or k == "loss"))
        # without a validation metric (no references), the latest model is the one kept
        if score > best or score == -math.inf or not (run_dir / "model.pt").exists():
            best = max(best, score)
            save_torch(run_dir / "model.pt", {
                "kind": "model", "task": task.name, "genotype": genotype.to_dict(), "config": config,
                "state_dict": net.state_dict(), "step": global_step, "epoch": epoch + 1,
                "metric": task.metric, "best_metric": score, "params": n_params})
        grid = task.samples(net, first) if first is not None else None
        if grid is not None:
            write_image(run_dir / "samples.png", grid.detach().cpu())
        if finished:
            epoch, step_in_epoch, averages = epoch + 1, 0, Averages()
        save_torch(run_dir / "checkpoint.pt", {
            "kind": "train", "task": task.name, "config": config, "genotype": genotype.to_dict(),
            "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
            "best_metric": best, "state_dict": net.state_dict(), "optimizer": setup.optimizer.state_dict(),
            "scheduler": None if setup.scheduler is None else setup.scheduler.state_dict(),
            "averages": averages.state(), "rng": rng_state()})
    bar.close()
    print(f"best validation {task.metric}: {best:.4g}; wrote model.pt, checkpoint.pt, metrics.csv in {run_dir}")
    print(f"next: python evaluate.py --checkpoint {Path(run_dir) / 'model.pt'}")
    return 0
