"""``evaluate.py``: a trained model.pt on a benchmark folder (or the task's embedded test split), or a
folder of outputs made elsewhere scored with the task's metrics."""
from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path
from typing import Any, Sequence

from datasets.pairs import describe_data
from runtime.precision import Precision
from runtime.speed import Runner, add_speed_flags, check_cuda_graph, speed_note
from runtime.threads import add_threads_flag, apply_threads
from tasks import Scoring, Settings, Task
from tasks.settings import non_negative_int, positive_int

from .config import add_data_flags, device_of, given_flags, pairs_as_data
from .distributed import launched
from .errors import UserError
from .evaluation import confidence_intervals, evaluate, mean_metrics
from .inputs import save_inputs, scoring_task
from .models import build_model, read_model
from .runs import RunFolder, atomic_write_bytes, check_folder, write_json

#: What evaluate writes in --out (``--force`` removes these, nothing else).
OWNED = ("metrics.json", "per_image.csv", "images")

#: Overlap of neighbouring tiles when --tile is given without --overlap.
DEFAULT_OVERLAP = 32

DESCRIPTION = """Evaluate a model.pt written by train.py (--checkpoint), or score a folder of outputs made
elsewhere (--predictions DIR --task TASK, for the tasks that can: --predictions without --task lists them). Prints a table of the task's metrics
and writes, in --out, metrics.json (mean of each metric over the set, plus count) and per_image.csv; with
--save-images, the network's outputs in images/ and a labelled panel per item in images/panels/. The network
is rebuilt from model.pt alone; predictions are matched to the test items of --data by file name (any image
extension) and need no checkpoint."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="evaluate.py", description=DESCRIPTION)
    what = parser.add_argument_group("what to evaluate (exactly one)")
    what.add_argument("--checkpoint", default=None, metavar="MODEL.pt",
                      help="model.pt written by train.py, or a paper's released weights the task maps onto its "
                           "network (RUAS's ckpt/{lol,upe,dark}.pt): run the network on the data and score the "
                           "outputs (no default: this or --predictions is required)")
    what.add_argument("--predictions", default=None, metavar="DIR",
                      help="folder of outputs made elsewhere, one image per test item named like its input "
                           "(any image extension; e.g. the images/ of --save-images): scored without a network; "
                           "a grayscale output of a colour reference is scored on luma where the metrics are "
                           "(derain's Y channel) and refused where they are on RGB (lowlight); "
                           "needs --task (no default: this or --checkpoint is required)")
    what.add_argument("--save-inputs", default=None, metavar="DIR",
                      help="evaluate nothing: write the test inputs as DIR/inputs/NAME.png and their references as "
                           "DIR/references/NAME.png, named as --predictions matches them, for a method run elsewhere "
                           "(then: --task TASK --predictions OUT with the same --data); needs --task (no default: "
                           "without it evaluate.py evaluates)")
    parser.add_argument("--task", default=None, metavar="TASK",
                        help="with --predictions (required): the task whose test data and metrics score the folder "
                             "(without it the error lists the tasks that can); with --checkpoint: refuse a model of any other task "
                             "(default: the checkpoint's task)")
    add_data_flags(parser, "the task's embedded test split")
    parser.add_argument("--out", default=None,
                        help="output folder (default: eval/ beside the checkpoint; with --predictions DIR, "
                             "DIR_scores beside DIR)")
    parser.add_argument("--save-images", action="store_true",
                        help="write the network's outputs in --out/images, named like the test items (what "
                             "--predictions scores), and labelled comparisons with each image's metrics in "
                             "--out/images/panels (registration: the warped image, a panel with the deformation "
                             "grid and det J, and the field in images/fields/NAME.npy; classification: none; "
                             "--checkpoint only)")
    parser.add_argument("--tile", type=positive_int, default=None, metavar="N",
                        help="run the network on overlapping N x N tiles blended together, for images too large "
                             "for memory (tasks with tiled inference; --checkpoint only; default: whole images)")
    parser.add_argument("--overlap", type=non_negative_int, default=None, metavar="PX",
                        help=f"overlap of neighbouring tiles in pixels, smaller than N (with --tile; "
                             f"default {DEFAULT_OVERLAP})")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="where the network runs (default auto: cuda when available, else cpu; --checkpoint "
                             "only: predictions are scored on the cpu)")
    add_threads_flag(parser)
    add_speed_flags(parser, "evaluate")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="CUDA only: capture the network's forward pass in a CUDA graph per input size and "
                             "replay it (no per-kernel launch cost; a folder of equal-sized images gains most; "
                             "--checkpoint only)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="evaluation batch size (default: the task's; --checkpoint only)")
    parser.add_argument("--convention", default=None, metavar="NAME",
                        help="definitions of the task's metrics as a published table used them, recorded in "
                             "metrics.json (tasks with several; fusion: cddfuse, the MMIF-CDDFuse evaluator, the "
                             "default; didfuse, DIDFuse's Table 4: SD about column means, AG over (H-1)(W-1), MI "
                             "read in bits as mi_bits)")
    parser.add_argument("--force", action="store_true",
                        help="start clean in an existing --out: its metrics.json, per_image.csv and images/ "
                             "are removed first (nothing else)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if launched():  # evaluation is one process: N copies would each score the whole set
        raise UserError("evaluate.py runs in one process: start it with python evaluate.py ..., not torchrun "
                        "(torchrun is for search.py and train.py)")
    apply_threads(args.threads)
    if args.save_inputs is not None:
        return save_inputs(args)
    _check_flags(args)
    if args.predictions is not None:
        return _score_predictions(args)
    return _evaluate_checkpoint(args)


def _check_flags(args: argparse.Namespace) -> None:
    if args.checkpoint is None and args.predictions is None:
        raise UserError("nothing to evaluate: pass --checkpoint MODEL.pt (a model written by train.py) or "
                        "--predictions DIR --task TASK (a folder of outputs made elsewhere)")
    if args.checkpoint is not None and args.predictions is not None:
        raise UserError("--checkpoint and --predictions exclude each other: pass --checkpoint to run a model, "
                        "or --predictions to score a folder of outputs")
    if args.overlap is not None and args.tile is None:
        raise UserError("--overlap is the overlap of the tiles of --tile; pass --tile N too")
    if args.tile is not None and (DEFAULT_OVERLAP if args.overlap is None else args.overlap) >= args.tile:
        given = f"--overlap {args.overlap}" if args.overlap is not None else f"the default --overlap {DEFAULT_OVERLAP}"
        raise UserError(f"{given} must be smaller than --tile {args.tile}; pass a larger --tile or a smaller --overlap")
    if args.predictions is None:
        return
    network = given_flags((("--save-images", args.save_images), ("--tile", args.tile),
                           ("--batch-size", args.batch_size), ("--amp", args.amp), ("--channels-last", args.channels_last),
                           ("--compile", args.compile), ("--cuda-graph", args.cuda_graph)))
    if network:
        raise UserError(f"--predictions scores outputs already made: drop {', '.join(network)} (for running "
                        "a network with --checkpoint)")


def _score_predictions(args: argparse.Namespace) -> int:
    task = scoring_task(args.task, "--predictions needs --task, the task whose metrics score the folder",
                        "cannot score a predictions folder", "; evaluate its model.pt with --checkpoint")
    pairs_as_data(args, task)
    pred = Path(args.predictions)
    if not pred.is_dir():
        raise UserError(f"--predictions {pred} is not a folder; pass the folder of output images")
    out = Path(args.out) if args.out else pred.resolve().parent / f"{pred.resolve().name}_scores"
    if out.resolve() == pred.resolve() or out.resolve() in pred.resolve().parents:
        raise UserError(f"--out {out} holds the predictions folder {pred}; pass another --out")
    s = task.settings("train").replace({"data": args.data, **_convention(task, args)}, source="command line")
    folder = RunFolder(check_folder(out, False, args.force, can_resume=False), OWNED, args.force)
    # every prediction read and scored before anything is written
    records, scoring = task.score_predictions(str(pred), args.data, s)
    against = describe_data(args.data) if args.data else "the embedded test split"
    _report(task, folder.start(), records, f"{pred} against {against}", False, s, scoring)
    return 0


def _evaluate_checkpoint(args: argparse.Namespace) -> int:
    ckpt, task, s = read_model(args.checkpoint, args.task)
    pairs_as_data(args, task)
    if "released" in ckpt:
        print(ckpt["released"])
    s = s.replace({"workers": 0, **_convention(task, args)}, source="command line")
    if args.tile is not None:
        s = _tiled(task, s, args.tile, DEFAULT_OVERLAP if args.overlap is None else args.overlap)
    net = build_model(task, s, ckpt, args.checkpoint)
    device = device_of(args.device)
    check_cuda_graph(args.cuda_graph, device)
    net.to(device)
    precision = Precision(args.amp, device, scaler=False)
    # inference only: on a CPU inductor's freezing (weights as constants, prepacked oneDNN convs with fused
    # element-wise ops) is what makes --compile pay (benchmarks/lowlight_speed.py, compiled-frozen rows)
    frozen = {"options": {"freezing": True}} if device.type == "cpu" else None
    # autocast, channels-last, compiled, replayed from CUDA graphs
    net = Runner(net, precision, bool(args.channels_last), bool(args.compile), frozen, cuda_graph=args.cuda_graph)
    speed = speed_note(precision, bool(args.channels_last), bool(args.compile), args.cuda_graph)
    folder = RunFolder(check_folder(args.out or Path(args.checkpoint).parent / "eval", False, args.force,
                                    can_resume=False), OWNED, args.force)
    test = task.test_data(args.data, s)  # every file checked before the first image is run
    if test.note:
        print(test.note)
    out = folder.start()
    try:
        images = out / "images" if args.save_images else None
        if images is not None:
            images.mkdir(exist_ok=True)
        _, records, _ = evaluate(task, net, test.test, s, device, test.scoring, save_dir=images,
                                 batch_size=args.batch_size)
    except BaseException:
        folder.abandon()  # no half-written images/ and no empty folder left behind
        raise
    tiles = f" in tiles of {s.tile} px, overlap {s.tile_overlap} px" if args.tile is not None else ""
    tiles += f" ({speed})" if speed != "float32" else ""
    _report(task, out, records, (describe_data(args.data) if args.data else "embedded test split") + tiles,
            images is not None, s, test.scoring)
    return 0


def _convention(task: Task, args: argparse.Namespace) -> dict[str, str]:
    """``{"convention": NAME}`` of ``--convention`` (empty without it) for a task whose settings have one."""
    if args.convention is None:
        return {}
    if not task.conventions:
        raise UserError(f"task {task.name!r} has one metric convention; drop --convention")
    return {"convention": args.convention}


def _tiled(task: Task, s: Settings, tile: int, overlap: int) -> Settings:
    """``s`` with tiled inference (``tile``, ``tile_overlap``), for tasks whose settings have them."""
    if not task.can_tile:
        raise UserError(f"task {task.name!r} does not support --tile (its network runs on whole images); drop --tile")
    return s.replace({"tile": tile, "tile_overlap": overlap}, source="command line")


def _report(task: Task, out: Path, records: list[dict[str, Any]], data: str, images: bool, s: Settings,
            scoring: Scoring) -> None:
    """metrics.json and per_image.csv in ``out``, the table of means and the task's note on stdout."""
    means = mean_metrics(task, records)
    ci = confidence_intervals(task, records) if task.intervals else {}
    write_json(out / "metrics.json", {**means, **ci, **task.metrics_record(s, scoring)})
    _write_records(out / "per_image.csv", records)
    _print_table(task.name, data, means, ci)
    note = task.evaluation_note(s, scoring)
    if note:
        print(note)
    written = "metrics.json, per_image.csv" + (", images/" if images else "")
    print(f"wrote {written} in {out}")


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


def _print_table(task: str, data: str, means: dict[str, float], ci: dict[str, float]) -> None:
    """The means (``+- half-width`` of the 95% interval where ``ci`` has one) and the count."""
    print(f"\n{task} on {data}")
    width = max(len(k) for k in means)
    for k, v in means.items():
        interval = f" +- {ci[f'{k}_ci95']:.4f} (95% interval)" if f"{k}_ci95" in ci else ""
        print(f"  {k:<{width}}  {v:.4f}{interval}" if k != "count" else f"  {k:<{width}}  {int(v)}")
