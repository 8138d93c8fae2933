"""Deraining comparison table: classical baselines and trained models on one test set.

    python benchmarks/derain_table.py --checkpoint runs/T/model.pt               # embedded images
    python benchmarks/derain_table.py --video --window 5 \\
        --checkpoint runs/T1/model.pt --checkpoint runs/T5/model.pt              # embedded video

Rows: the rainy input itself, a 5x5 median filter, a self-guided filter's base layer (radius 3,
eps 0.01), with ``--video`` the per-pixel temporal median over the ``--window`` frames, and every
``--checkpoint`` (a ``model.pt`` of ``train.py --task derain``, run on its own frame window).
Columns: Y-PSNR / Y-SSIM (BT.601, MATLAB ``rgb2ycbcr`` convention: the deraining papers'), and
RGB PSNR. Video rows are all scored on the same frames: those with a full ``--window`` window.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from restoration.derain import data as ddata  # noqa: E402
from restoration.derain.baseline import guided_derain, median_derain, temporal_median  # noqa: E402
from restoration.derain.evaluation import derain_metrics, restore  # noqa: E402
from restoration.derain.settings import DerainSettings  # noqa: E402
from restoration.derain.task import DerainTask  # noqa: E402
from tasks import SearchResult  # noqa: E402


def _scores(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``[N, 3]``: Y-PSNR, Y-SSIM, RGB PSNR."""
    y = derain_metrics(out, target, True)
    rgb = derain_metrics(out, target, False)
    return torch.stack([y["psnr"], y["ssim"], rgb["psnr"]], 1)


def _load(path: str) -> tuple[torch.nn.Module, int]:
    task = DerainTask()
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("task") != "derain" or ckpt.get("kind") != "model":
        raise SystemExit(f"error: {path} is not a deraining model.pt (task {ckpt.get('task')!r}); pass one "
                         "written by train.py --task derain")
    s = task.Settings.from_dict(ckpt["config"])
    net = task.build_network(SearchResult.from_dict(ckpt), s)
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), s.frames


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", default=[], help="a derain model.pt (repeatable)")
    p.add_argument("--data", default=None, help="test folder (default: the embedded test split)")
    p.add_argument("--video", action="store_true", help="the embedded synthetic video (or a video --data folder)")
    p.add_argument("--window", type=int, default=5, help="video: score frames with a full window of this size")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    models = [(Path(c).parent.name, *_load(c)) for c in a.checkpoint]
    video = a.video or any(f > 1 for _, _, f in models)
    window = a.window if video else 1
    frames_needed = {1, window, *(f for _, _, f in models)} if video else {1}
    sets = {f: ddata.test_set(a.data, DerainSettings().replace({"frames": f, "video": video, "eval_window": window}))
            for f in frames_needed}
    rows: dict[str, list[torch.Tensor]] = {"rainy input": [], "median 5x5": [], "guided filter": []}
    if video:
        rows[f"temporal median ({window} frames)"] = []
    rows.update({f"{name} ({f} frame{'s' if f > 1 else ''})": [] for name, _, f in models})
    loaders = {f: DataLoader(d, 1) for f, d in sets.items()}
    for batches in zip(*(loaders[f] for f in sorted(frames_needed))):
        by = dict(zip(sorted(frames_needed), batches))
        base = by[1]
        x, target = base["input"], base["target"]
        rows["rainy input"].append(_scores(x, target))
        rows["median 5x5"].append(_scores(median_derain(x).clamp(0, 1), target))
        rows["guided filter"].append(_scores(guided_derain(x).clamp(0, 1), target))
        if video:
            rows[f"temporal median ({window} frames)"].append(_scores(temporal_median(by[window]["frames"]), target))
        for name, net, f in models:
            out = torch.stack([it["output"] for it in restore(net, by[f])])
            rows[f"{name} ({f} frame{'s' if f > 1 else ''})"].append(_scores(out, target))
    n = len(sets[1])
    what = a.data or ("embedded synthetic video" if video else "embedded synthetic test split")
    print(f"{what}: {n} {'frames' if video else 'images'}; Y = BT.601 luma, MATLAB rgb2ycbcr convention")
    print("| method | Y-PSNR | Y-SSIM | RGB PSNR |\n|---|---|---|---|")
    for name, vals in rows.items():
        m = torch.cat(vals).mean(0)
        print(f"| {name} | {m[0]:.2f} | {m[1]:.4f} | {m[2]:.2f} |")


if __name__ == "__main__":
    main()
