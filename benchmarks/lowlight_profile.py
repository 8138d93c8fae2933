"""Where the time of a RUAS forward pass goes: ``torch.profiler`` over the eager network, by op.

    python -m benchmarks.lowlight_profile                    # reference network, 400x600, 1 thread
    python -m benchmarks.lowlight_profile --threads 2 --amp bf16 --rows 25

Profiles ``--runs`` forward passes of the RUAS reference network (batch 1, ``torch.inference_mode``,
after ``--warmup`` runs) with ``record_shapes=True`` and prints two tables: the ops with the
largest self CPU time grouped by input shapes (``key_averages(group_by_input_shape=True)``), and
a summary by kind of op (convolutions, the concatenation of the cells, the 2x2 local max,
element-wise ops, copies) with milliseconds per forward pass and share of the total. A script, not
a test; ``benchmarks/lowlight_speed.py`` times the variants.
"""
from __future__ import annotations

import argparse
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from benchmarks.lowlight_speed import build
from runtime.precision import Precision
from runtime.speed import Runner
from nas.genotype import Genotype
from restoration.lowlight.genotype import RUAS_REFERENCE_PATH
from restoration.lowlight.ops import RUAS_PRIMITIVES

#: op name -> kind, for the summary (self time of the leaves; anything else is "other").
KINDS: dict[str, str] = {
    "aten::mkldnn_convolution": "convolution (oneDNN: 3x3 and the stem/head)",
    "aten::_slow_conv2d_forward": "convolution (native im2col+GEMM: the 1x1 convs)",
    "aten::copy_": "copies (bias fill of the 1x1 convs, dtype casts)",
    "aten::cat": "concatenation (4 nodes into the cell's 1x1 fuse conv)",
    "aten::max_pool2d_with_indices": "2x2 local max (max_pool2d / maximum of shifted views)",
    "aten::maximum": "2x2 local max (max_pool2d / maximum of shifted views)",
    "aten::constant_pad_nd": "2x2 local max (max_pool2d / maximum of shifted views)",
    "aten::add": "element-wise (residual adds, leaky ReLU, sigmoid, clamp, y/t, u-n)",
    "aten::leaky_relu": "element-wise (residual adds, leaky ReLU, sigmoid, clamp, y/t, u-n)",
    "aten::sub": "element-wise (residual adds, leaky ReLU, sigmoid, clamp, y/t, u-n)",
    "aten::mul": "element-wise (residual adds, leaky ReLU, sigmoid, clamp, y/t, u-n)",
    "aten::div": "element-wise (residual adds, leaky ReLU, sigmoid, clamp, y/t, u-n)",
    "aten::clamp": "element-wise (residual adds, leaky ReLU, sigmoid, clamp, y/t, u-n)",
    "aten::sigmoid": "element-wise (residual adds, leaky ReLU, sigmoid, clamp, y/t, u-n)",
}


def summary(events, runs: int) -> list[tuple[str, float, float]]:
    """(kind, ms per forward, share) sorted by time, from ``key_averages()`` events (self CPU time)."""
    total = sum(e.self_cpu_time_total for e in events)
    kinds: dict[str, float] = defaultdict(float)
    for e in events:
        kinds[KINDS.get(e.key, "other (allocation, views, dispatch)")] += e.self_cpu_time_total
    return sorted(((k, us / 1000 / runs, us / total) for k, us in kinds.items()), key=lambda r: -r[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowlight_profile.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--height", type=int, default=400)
    parser.add_argument("--width", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--amp", default=None, choices=("bf16",), help="profile under bf16 autocast")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=15, help="rows of the per-op table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = build(Genotype.load(RUAS_REFERENCE_PATH, RUAS_PRIMITIVES, ("iem", "nrm")), 6).eval()
    runner = Runner(net, Precision(args.amp, torch.device("cpu"), scaler=False))
    x = torch.rand(1, 3, args.height, args.width) * 0.2
    with torch.inference_mode():
        for _ in range(args.warmup):
            runner(x)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(args.runs):
                runner(x)
    by_shape = prof.key_averages(group_by_input_shape=True)
    print(f"RUAS reference, eager{' bf16 autocast' if args.amp else ''}, {args.height}x{args.width}, batch 1, "
          f"cpu, {args.threads} thread{'s' if args.threads > 1 else ''}; {args.runs} forward passes profiled")
    print(by_shape.table(sort_by="self_cpu_time_total", row_limit=args.rows, max_name_column_width=32,
                         max_shapes_column_width=60))
    rows = summary(prof.key_averages(), args.runs)
    width = max(len(k) for k, _, _ in rows)
    print(f"{'kind of op':<{width}} {'ms/forward':>10} {'share':>6}")
    print("-" * (width + 18))
    for kind, ms, share in rows:
        print(f"{kind:<{width}} {ms:>10.1f} {100 * share:>5.1f}%")
    print(f"{'total self CPU time':<{width}} {sum(ms for _, ms, _ in rows):>10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
