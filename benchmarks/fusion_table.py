"""Fusion comparison table: the sources, their average, trained models and published results, on one
test set, all scored by the suite's evaluator.

    python benchmarks/fusion_table.py --data TNO_DIR --checkpoint runs/T/model.pt \\
        --predictions DIDFuse=Test_result/TNO_IJCAI [--convention didfuse] [--out DIR]

Rows: ``infrared`` and ``visible`` (each source taken as the fused image), ``average`` (their pixel
mean, on the visible image's Y channel for colour pairs), every ``--checkpoint`` (a ``model.pt`` of
``train.py --task fusion``) and every ``--predictions NAME=DIR`` (fused images made elsewhere,
matched to the pairs by file stem, else by the number in the name: ``F7.png`` for ``IR7.bmp``).
Columns: every fusion metric as ``evaluate.py`` computes it (``--convention``); ``-`` where it is
undefined (SCD of a copied source: 0/0). Prints the machine,
threads and date; ``--out DIR`` writes ``fusion_table.csv``.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import machine  # noqa: E402
from datasets.fusion import read_fusion_image  # noqa: E402
from datasets.io import is_image_file  # noqa: E402
from datasets.pairs import stem_number  # noqa: E402
from restoration.fusion.evaluation import restore, score_item  # noqa: E402
from restoration.fusion.metrics import METRIC_NAMES  # noqa: E402
from restoration.fusion.metrics_conventions import CONVENTIONS, DEFAULT_CONVENTION  # noqa: E402
from restoration.fusion.task import FusionTask  # noqa: E402
from tasks import SearchResult  # noqa: E402

COLUMNS = ("en", "sd", "sf", "ag", "mi", "mi_bits", "vif", "qabf", "scd", "ssim", "cc", "psnr", "mse")


def prediction_index(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` by stem, and by ``#<number>`` where a number names one file only."""
    files = [p for p in sorted(folder.iterdir()) if p.is_file() and is_image_file(p)]
    if not files:
        raise SystemExit(f"error: predictions folder '{folder}' holds no images; pass the folder of fused images")
    index = {p.stem: p for p in files}
    numbers: dict[int, list[Path]] = {}
    for p in files:
        n = stem_number(p)
        if n is not None:
            numbers.setdefault(n, []).append(p)
    index.update({f"#{n}": ps[0] for n, ps in numbers.items() if len(ps) == 1})
    return index


def find(index: dict[str, Path], name: str, where: str) -> Path:
    """The prediction of the test item ``name``: same stem, else same number."""
    stem, number = Path(name).stem, stem_number(Path(name))
    path = index.get(stem) or (index.get(f"#{number}") if number is not None else None)
    if path is None:
        raise SystemExit(f"error: no fused image for '{name}' in '{where}' (by stem or number); add it")
    return path


def load_model(path: str) -> torch.nn.Module:
    """The network of a fusion ``model.pt``, in eval mode on the CPU."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("task") != "fusion" or ckpt.get("kind") != "model":
        raise SystemExit(f"error: {path} is not a fusion model.pt (task {ckpt.get('task')!r}); pass one "
                         "written by train.py --task fusion")
    task = FusionTask()
    s = task.Settings.from_dict(ckpt["config"])
    net = task.build_network(SearchResult.from_dict(ckpt), s)
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="fusion test folder (any layout evaluate.py reads)")
    p.add_argument("--checkpoint", action="append", default=[], help="a fusion model.pt (repeatable)")
    p.add_argument("--predictions", action="append", default=[], metavar="NAME=DIR",
                   help="fused images made elsewhere, with the row's name (repeatable)")
    p.add_argument("--convention", default=DEFAULT_CONVENTION, choices=sorted(CONVENTIONS),
                   help=f"metric convention (default {DEFAULT_CONVENTION})")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default=None, help="folder for fusion_table.csv (default: print only)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    task = FusionTask()
    dataset = task.test_data(a.data, task.Settings()).test
    models = {Path(c).parent.name: load_model(c) for c in a.checkpoint}
    folders = {}
    for spec in a.predictions:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"error: --predictions {spec!r}: write NAME=DIR")
        folders[name] = (prediction_index(Path(folder)), folder)
    rows: dict[str, list[dict[str, float]]] = {"infrared": [], "visible": [], "average": []}
    rows.update({name: [] for name in [*models, *folders]})
    start = time.perf_counter()
    for i in range(len(dataset)):
        item = dataset[i]
        ir, vi = item["ir"], item["vi"]
        vi_y = vi if vi.shape[0] == 1 else (0.299 * vi[0] + 0.587 * vi[1] + 0.114 * vi[2])[None]
        fused_by = {"infrared": ir, "visible": vi, "average": (ir + vi_y) / 2}
        for name, net in models.items():
            batch = {"ir": ir[None], "vi": vi[None], "name": [item["name"]],
                     "size": torch.tensor([list(ir.shape[-2:])])}
            fused_by[name] = restore(net, batch)[0]["fused"]
        for name, (index, where) in folders.items():
            fused_by[name] = read_fusion_image(find(index, item["name"], where), gray=vi.shape[0] == 1)
        for name, fused in fused_by.items():
            rows[name].append(score_item({"fused": fused, "ir": ir, "vi": vi}, METRIC_NAMES, convention=a.convention))
    took = time.perf_counter() - start
    print(f"{a.data}: {len(dataset)} pairs, convention {a.convention}; {machine()}, "
          f"{a.threads} thread(s), {time.strftime('%Y-%m-%d')}, {took:.0f} s")
    cols = [c for c in COLUMNS if all(c in r for r in rows["average"])]
    print("| fused = | " + " | ".join(c.upper() for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    means = {}
    for name, recs in rows.items():
        means[name] = {c: sum(r[c] for r in recs) / len(recs) for c in cols}
        print(f"| {name} | " + " | ".join("-" if means[name][c] != means[name][c] else f"{means[name][c]:.4g}"
                                          for c in cols) + " |")
    if a.out:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "fusion_table.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["row", *cols])
            w.writerows([[name, *(f"{m[c]:.6g}" for c in cols)] for name, m in means.items()])


if __name__ == "__main__":
    main()
