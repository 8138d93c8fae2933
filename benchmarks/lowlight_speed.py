"""Size and speed of RUAS networks: parameters, multiply-accumulates and inference time per image.

    python benchmarks/lowlight_speed.py                       # the RUAS reference genotype
    python benchmarks/lowlight_speed.py --genotype runs/search-lowlight/genotype.json --device cuda

For each network: parameter count, multiply-accumulates (MACs) of one forward pass at
``--height x --width`` (default 400 x 600, a LOL image; counted with forward hooks on every
``nn.Conv2d``: ``output elements * C_in / groups * kernel_h * kernel_w``; the element-wise
operations, sigmoid, clamp, max pooling and the 4-way concatenation are not counted), and the
median wall time of a forward pass (batch 1, ``torch.no_grad``) over ``--repeats`` runs after
``--warmup`` runs. Weights are random: the time and size do not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from nas.genotype import Genotype, GenotypeError
from restoration.lowlight.genotype import RUAS_REFERENCE_PATH, genotype_to_ops
from restoration.lowlight.model import RUASNet
from restoration.lowlight.ops import RUAS_PRIMITIVES


def count_macs(net: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates of the ``Conv2d`` layers of ``net`` on input ``x`` ``[1, 3, H, W]``."""
    total = 0

    def hook(module: nn.Conv2d, _inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for h in handles:
            h.remove()
    return total


def _sync(device: torch.device) -> Callable[[], None]:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def time_forward(net: nn.Module, x: torch.Tensor, warmup: int, repeats: int) -> float:
    """Median seconds of one ``net(x)`` (no grad)."""
    sync = _sync(x.device)
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            net(x)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(genotype: Genotype, channels: int) -> RUASNet:
    ops = genotype_to_ops(genotype)
    return RUASNet(ops["iem_ops"], ops["nrm_ops"], nrm_channels=channels)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowlight_speed.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--genotype", default=None, help="a searched genotype.json to compare with the reference")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--height", type=int, default=400)
    parser.add_argument("--width", type=int, default=600)
    parser.add_argument("--nrm-channels", type=int, default=6, help="NRM width (RUAS: 6)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    nets = {"RUAS reference": Genotype.load(RUAS_REFERENCE_PATH, RUAS_PRIMITIVES, ("iem", "nrm"))}
    if args.genotype:
        try:
            nets[f"searched ({args.genotype})"] = Genotype.load(args.genotype, RUAS_PRIMITIVES, ("iem", "nrm"))
        except GenotypeError as exc:
            parser.error(str(exc))
    torch.manual_seed(0)
    x = torch.rand(1, 3, args.height, args.width, device=device) * 0.2
    where = f"{device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda"
                                 else f", {torch.get_num_threads()} threads")
    print(f"RUAS inference at {args.height}x{args.width}, batch 1, {where}; median of {args.repeats} runs")
    width = max(len("network"), *(len(name) for name in nets))  # whole names: a genotype path is never cut
    header = f"{'network':<{width}} {'params':>8} {'GMACs':>8} {'ms/image':>9}"
    print(header)
    print("-" * len(header))
    for name, genotype in nets.items():
        net = build(genotype, args.nrm_channels).to(device).eval()
        params = sum(p.numel() for p in net.parameters())
        macs = count_macs(net, x)
        ms = 1000 * time_forward(net, x, args.warmup, args.repeats)
        print(f"{name:<{width}} {params:>8,} {macs / 1e9:>8.3f} {ms:>9.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
