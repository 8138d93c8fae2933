"""``evaluate.py``: a trained model.pt on a benchmark folder (or the task's embedded test split)."""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any, Sequence

from tasks import SearchResult

from .config import device_of
from .errors import UserError
from .evaluation import evaluate
from .registry import get_task
from .runs import atomic_write_bytes, load_torch, prepare_folder, write_json

DESCRIPTION = """Evaluate a model.pt written by train.py: prints a table of the task's metrics and writes,
in --out, metrics.json (mean of each metric over the set, plus count) and per_image.csv; with
--save-images, the outputs too. The network is rebuilt from model.pt alone."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate.py", description=DESCRIPTION)
    parser.add_argument("--checkpoint", required=True, help="model.pt written by train.py")
    parser.add_argument("--data", default=None,
                        help="benchmark folder (layouts in the README); default: the task's embedded test split")
    parser.add_argument("--out", default=None, help="output folder (default: eval/ beside the checkpoint)")
    parser.add_argument("--save-images", action="store_true", help="write the network's outputs (image tasks)")
    parser.add_argument("--task", default=None, metavar="TASK",
                        help="refuse a checkpoint of any other task (default: the checkpoint's task)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: cuda when available, else cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="evaluation batch size (default: the task's)")
    parser.add_argument("--force", action="store_true", help="start clean in an existing --out: its metrics.json, per_image.csv and images/ are removed first")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ckpt = load_torch(args.checkpoint, "checkpoint")
    if ckpt["kind"] != "model":
        raise UserError(f"{args.checkpoint} is a {ckpt['kind']} checkpoint; evaluate the model.pt written by train.py")
    if args.task is not None and args.task != ckpt["task"]:
        raise UserError(f"{args.checkpoint} is a model of task {ckpt['task']!r}, not {args.task!r}")
    task = get_task(ckpt["task"])
    s = task.Settings.from_dict(ckpt["config"], source=str(args.checkpoint)).replace({"workers": 0})
    result = SearchResult.from_dict(ckpt)
    task.check_result(result, source=str(args.checkpoint))
    net = task.build_network(result, s)
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[1:2] or [""]
        raise UserError(f"{args.checkpoint}: weights do not fit the network of its genotype ({first[0].strip()})")
    device = device_of(args.device)
    net.to(device)
    dataset = task.test_data(args.data, s)
    out = prepare_folder(args.out or Path(args.checkpoint).parent / "eval", False, args.force, "",
                         owned=("metrics.json", "per_image.csv", "images"), can_resume=False)
    images = out / "images" if args.save_images else None
    if images is not None:
        images.mkdir(exist_ok=True)
    means, records, _ = evaluate(task, net, dataset, s, device, save_dir=images, batch_size=args.batch_size)
    write_json(out / "metrics.json", means)
    _write_records(out / "per_image.csv", records)
    _print_table(task.name, args.data or "embedded test split", means)
    note = task.evaluation_note()
    if note:
        print(note)
    written = "metrics.json, per_image.csv" + (", images/" if images is not None else "")
    print(f"wrote {written} in {out}")
    return 0


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in records:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys or ["name"], lineterminator="\n")
    writer.writeheader()
    for r in records:
        writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()})
    atomic_write_bytes(path, buf.getvalue().encode())


def _print_table(task: str, data: str, means: dict[str, float]) -> None:
    print(f"\n{task} on {data}")
    width = max(len(k) for k in means)
    for k, v in means.items():
        print(f"  {k:<{width}}  {v:.4f}" if k != "count" else f"  {k:<{width}}  {int(v)}")
