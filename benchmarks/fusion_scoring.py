"""Fusion scoring: time of every metric on TNO-sized pairs before and after the fast paths, and the
metric conventions against DIDFuse's published Table 4.

    python -m benchmarks.fusion_scoring                                   # 40 TNO-sized pairs, 1 thread
    python -m benchmarks.fusion_scoring --before-pairs 8                  # + the direct implementations
    python -m benchmarks.fusion_scoring --didfuse /path/to/IVIF-DIDFuse   # its 40 TNO pairs + its tables

Pairs: with ``--didfuse``, its 40 TNO pairs (the published fused images); else the 8 TNO pairs of
``../shared/data/real/fusion/TNO8`` when present (fused = the mean of the two sources); else smooth
random 768x576 images; cycled to ``--pairs``. Times: per metric, seconds of process CPU (all
threads) and wall clock over all pairs, then ``fusion_metrics`` end to end with a progress bar
(where ``mi_bits`` comes from ``mi``: the per-metric sum counts MI twice). "Before" runs the direct
implementations that the fast ones replaced (``tests/restoration/fusion_reference_metrics.py``: 2-D
VIF, conv2d Sobel, ``torch.unique`` MI) on ``--before-pairs`` evenly spaced pairs, scaled to
``--pairs``; the other keys' code did not change. The header line gives the machine, threads, load
and date: wall times on a shared machine follow its load, CPU times much less.

``--didfuse DIR``: a checkout of Zhaozixiang1228/IVIF-DIDFuse. Scores its published fused images
(``Test_result/{TNO,FLIR,NIR}_IJCAI/F<n>.png``) against its sources (``Datasets/Test_data_*``,
``IR<n>``/``VIS<n>``, read gray) with both conventions and prints them beside Table 4 of the paper
(MI in bits: ``mi_bits``).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine import cpu_model  # noqa: E402
from restoration.fusion.metrics import FUSION_METRICS, METRIC_NAMES, fusion_metrics, to_gray255  # noqa: E402
from restoration.fusion.metrics_conventions import CONVENTIONS  # noqa: E402
from tests.restoration.fusion_reference_metrics import REFERENCE_METRICS  # noqa: E402

TNO8 = ROOT / ".." / "shared" / "data" / "real" / "fusion" / "TNO8"

#: DIDFuse (IJCAI 2020) Table 4, its DIDFuse column: dataset -> key -> printed value (MI in bits).
DIDFUSE_TABLE: dict[str, dict[str, float]] = {
    "TNO": {"en": 7.006, "mi_bits": 2.347, "sd": 42.657, "sf": 13.126, "vif": 0.623, "ag": 4.294},
    "FLIR": {"en": 7.344, "mi_bits": 2.882, "sd": 46.888, "sf": 18.835, "vif": 0.538, "ag": 5.574},
    "NIR": {"en": 7.357, "mi_bits": 3.795, "sd": 57.557, "sf": 26.529, "vif": 0.937, "ag": 8.741},
}
#: dataset -> (sources folder under Datasets/, fused folder under Test_result/)
DIDFUSE_FOLDERS = {"TNO": ("Test_data_TNO", "TNO_IJCAI"), "FLIR": ("Test_data_FLIR", "FLIR_IJCAI"),
                   "NIR": ("Test_data_NIR_Country", "NIR_IJCAI")}


def machine() -> str:
    cpu = cpu_model()
    load = " ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"{datetime.datetime.now().isoformat(timespec='seconds')}; {cpu}; {os.cpu_count()} logical CPUs; "
            f"load average {load}; torch {torch.__version__} threads {torch.get_num_threads()}, "
            f"OpenCV {cv2.__version__} threads {cv2.getNumThreads()}; python {platform.python_version()}")


def _gray01(path: Path) -> torch.Tensor:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if img is None:
        raise SystemExit(f"cannot read image '{path}'")
    return torch.from_numpy(img).double()[None, None] / 255.0


def tno_sized_pairs(count: int, didfuse: Path | None) -> tuple[list[tuple[torch.Tensor, ...]], str]:
    """``count`` gray ``[1, H, W]`` triples (fused, infrared, visible) on [0, 255] and where they come from."""
    if didfuse is not None:
        src, res = didfuse / "Datasets" / DIDFUSE_FOLDERS["TNO"][0], didfuse / "Test_result" / DIDFUSE_FOLDERS["TNO"][1]
        files = sorted(res.glob("F*.png"), key=lambda p: int(p.stem[1:]))
        if not files:
            raise SystemExit(f"no F<n>.png in '{res}'; pass the root of an IVIF-DIDFuse checkout")
        base = [tuple(to_gray255(_gray01(p))
                      for p in (f, _find(src, f"IR{f.stem[1:]}"), _find(src, f"VIS{f.stem[1:]}"))) for f in files]
        sizes = sorted({tuple(t[0].shape[-2:]) for t in base}, reverse=True)
        where = (f"DIDFuse's {len(base)} TNO pairs (its published fused images; sizes "
                 + ", ".join(f"{h}x{w}" for h, w in sizes[:4]) + (", ..." if len(sizes) > 4 else "") + ")")
    elif TNO8.is_dir():
        base = []
        for ir in sorted((TNO8 / "ir").glob("*.png")):
            a, b = _gray01(ir), _gray01(TNO8 / "vi" / ir.name)
            base.append(tuple(to_gray255(x) for x in ((a + b) / 2, a, b)))
        where = f"TNO8 ({len(base)} real pairs, 256x256 to 768x576, fused = mean)"
    else:
        g = torch.Generator().manual_seed(0)
        base = []
        for _ in range(4):
            low = torch.rand(3, 1, 36, 48, generator=g, dtype=torch.float64)
            smooth = torch.nn.functional.interpolate(low, size=(576, 768), mode="bicubic", align_corners=False)
            imgs = (smooth + 0.05 * torch.rand(smooth.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
            base.append(tuple(to_gray255(imgs[i:i + 1, 0]) for i in range(3)))
        where = "synthetic smooth 768x576 images (TNO8 absent)"
    if count != len(base):
        where += f", {count} pairs cycled"
    return [base[i % len(base)] for i in range(count)], where


def time_metric(fn, pairs, arity: int) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) of ``fn`` over ``pairs``."""
    cpu, wall = time.process_time(), time.perf_counter()
    for f, a, b in pairs:
        fn(f) if arity == 1 else fn(f, a, b)
    return time.process_time() - cpu, time.perf_counter() - wall


def timing_table(pairs, before_pairs: int) -> None:
    n = len(pairs)
    # "before" on evenly spaced pairs, scaled to all of them
    sample = [pairs[round(i * n / before_pairs)] for i in range(before_pairs)] if before_pairs else []
    print(f"\n{'metric':8s} {'after cpu s':>12s} {'after wall s':>13s} {'before cpu s':>13s} {'before wall s':>14s}"
          f"   (over {n} pairs; before: {before_pairs} evenly spaced pairs x {n}/{max(before_pairs, 1)})")
    tot_after = [0.0, 0.0]
    tot_before = [0.0, 0.0]
    for name in METRIC_NAMES:
        fn, arity = FUSION_METRICS[name]
        time_metric(fn, pairs[:1], arity)  # warm-up
        cpu, wall = time_metric(fn, pairs, arity)
        tot_after = [tot_after[0] + cpu, tot_after[1] + wall]
        if before_pairs == 0:
            bcpu = bwall = float("nan")
            note = ""
        elif name in REFERENCE_METRICS:
            bcpu, bwall = time_metric(REFERENCE_METRICS[name], sample, arity)
            scale = n / before_pairs
            bcpu, bwall, note = bcpu * scale, bwall * scale, "(direct implementation)"
        elif name == "mi_bits":
            bcpu = bwall = 0.0
            note = "(new key)"
        else:
            bcpu, bwall, note = cpu, wall, "(same code)"
        tot_before = [tot_before[0] + bcpu, tot_before[1] + bwall]
        print(f"{name:8s} {cpu:12.2f} {wall:13.2f} {bcpu:13.2f} {bwall:14.2f}   {note}")
    print(f"{'sum':8s} {tot_after[0]:12.2f} {tot_after[1]:13.2f} {tot_before[0]:13.2f} {tot_before[1]:14.2f}")
    cpu, wall = time.process_time(), time.perf_counter()
    for f, a, b in tqdm(pairs, desc="fusion_metrics", unit="pair"):
        fusion_metrics(f[:, None] / 255.0, a[:, None] / 255.0, b[:, None] / 255.0)
    print(f"fusion_metrics end to end (gray conversion, mi_bits from mi): {time.process_time() - cpu:.2f} s CPU, "
          f"{time.perf_counter() - wall:.2f} s wall for {n} pairs")


def _find(folder: Path, stem: str) -> Path:
    found = sorted(p for p in folder.glob(stem + ".*") if p.suffix.lower() in (".bmp", ".png", ".jpg", ".jpeg"))
    if not found:
        raise SystemExit(f"no image '{stem}.*' in '{folder}'")
    return found[0]


def didfuse_scores(repo: Path, dataset: str) -> dict[str, dict[str, float]]:
    """convention -> key -> mean over the dataset's published fused images."""
    src, res = (repo / "Datasets" / DIDFUSE_FOLDERS[dataset][0], repo / "Test_result" / DIDFUSE_FOLDERS[dataset][1])
    fused_files = sorted(res.glob("F*.png"), key=lambda p: int(p.stem[1:]))
    if not fused_files:
        raise SystemExit(f"no F<n>.png in '{res}'; pass the root of an IVIF-DIDFuse checkout")
    names = list(DIDFUSE_TABLE[dataset])
    sums: dict[str, dict[str, float]] = {c: dict.fromkeys(names, 0.0) for c in CONVENTIONS}
    for path in tqdm(fused_files, desc=f"DIDFuse {dataset}", unit="pair"):
        n = path.stem[1:]
        f, a, b = _gray01(path), _gray01(_find(src, f"IR{n}")), _gray01(_find(src, f"VIS{n}"))
        for conv in CONVENTIONS:
            vals = fusion_metrics(f, a, b, names=names, convention=conv)
            for k in names:
                sums[conv][k] += float(vals[k][0])
    return {c: {k: v / len(fused_files) for k, v in row.items()} for c, row in sums.items()}


def didfuse_table(repo: Path, datasets: list[str]) -> None:
    for dataset in datasets:
        scores = didfuse_scores(repo, dataset)
        print(f"\nDIDFuse Table 4, {dataset} (its published fused images; MI in bits = mi_bits)")
        print(f"  {'key':8s} {'published':>10s} " + " ".join(f"{c:>10s}" for c in CONVENTIONS)
              + "   reproduced (to the printed digits)")
        for key, printed in DIDFUSE_TABLE[dataset].items():
            digits = 3
            hits = [c for c in CONVENTIONS if round(scores[c][key], digits) == printed]
            print(f"  {key:8s} {printed:10.3f} " + " ".join(f"{scores[c][key]:10.4f}" for c in CONVENTIONS)
                  + f"   {', '.join(hits) if hits else 'no'}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/fusion_scoring.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=40,
                        help="TNO-sized pairs to time (default 40; with --didfuse its TNO pairs, else TNO8, cycled)")
    parser.add_argument("--before-pairs", type=int, default=0, metavar="K",
                        help="time the direct implementations on K evenly spaced pairs, scaled to --pairs "
                             "(default 0: skip; 8 takes every TNO8 pair once; 5-70 s of VIF per 768x576 pair)")
    parser.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    parser.add_argument("--didfuse", type=Path, default=None, metavar="DIR",
                        help="root of an IVIF-DIDFuse checkout: score its published results against Table 4")
    parser.add_argument("--datasets", default="TNO,FLIR,NIR", help="with --didfuse: which tables (default all three)")
    parser.add_argument("--no-timing", action="store_true", help="skip the timing table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    print(f"machine: {machine()}")
    if not args.no_timing:
        pairs, where = tno_sized_pairs(args.pairs, args.didfuse)
        print(f"pairs: {where}")
        timing_table(pairs, min(args.before_pairs, len(pairs)))
    if args.didfuse is not None:
        didfuse_table(args.didfuse, [d.strip() for d in args.datasets.split(",") if d.strip()])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
