"""Size and speed of RUAS networks: parameters, multiply-accumulates and inference time per image,
and the inference variants (channels-last, bf16/fp16 autocast, torch.compile, CUDA graphs) side by side.

    python -m benchmarks.lowlight_speed                          # sizes + every variant this device runs
    python -m benchmarks.lowlight_speed --quick                  # without the compiled variants (minutes each)
    python -m benchmarks.lowlight_speed --compile --channels-last --amp bf16   # eager and that one variant
    python -m benchmarks.lowlight_speed --genotype runs/search-lowlight/genotype.json --device cuda --cuda-graph

First table, per network: parameter count, multiply-accumulates (MACs) of one forward pass at
``--height x --width`` (default 400 x 600, a LOL image; counted with forward hooks on every
``nn.Conv2d``: ``output elements * C_in / groups * kernel_h * kernel_w``; the element-wise
operations, sigmoid, clamp, max pooling and the 4-way concatenation are not counted), and the
median wall time of an eager forward pass (batch 1). Second table, the first network under each
variant: set-up seconds (compilation, capture), median wall ms/image and images/s over ``--repeats``
runs after ``--warmup`` runs (all under ``torch.inference_mode``; the variants are timed round-robin,
one run each per round, so that load from other processes hits all alike), the median process CPU ms/image
(on a shared machine wall time includes waiting for a core; CPU time does not) and the largest
difference of the output to eager float32. Weights are random: time and size do not depend on them.

Variants: ``channels-last`` (weights and input in NHWC), ``bf16`` / ``fp16`` (autocast; fp16 on
CUDA only), ``jit-frozen`` (``torch.jit.trace`` + ``freeze`` + ``optimize_for_inference``: oneDNN
conv fusion), ``compiled`` (``torch.compile``, inductor), ``compiled-frozen`` (inductor with
``freezing``: weights as constants, oneDNN prepacked convs with fused element-wise ops; inference
only), ``cuda-graph`` (CUDA: the network captured once at the fixed input size with
``torch.cuda.graph`` and replayed), and their combinations.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from runtime.precision import Precision
from runtime.speed import Runner
from runtime.threads import add_threads_flag, apply_threads
from nas.genotype import Genotype, GenotypeError
from restoration.lowlight.genotype import RUAS_REFERENCE_PATH, genotype_to_ops
from restoration.lowlight.model import RUASNet
from restoration.lowlight.ops import RUAS_PRIMITIVES

Forward = Callable[[torch.Tensor], torch.Tensor]


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


def time_forward(net: Callable, x: torch.Tensor, warmup: int, repeats: int) -> float:
    """Median seconds of one ``net(x)`` (no grad)."""
    return time_both(net, x, warmup, repeats)[0]


def time_both(net: Callable, x: torch.Tensor, warmup: int, repeats: int) -> tuple[float, float]:
    """Median wall seconds and median process CPU seconds of one ``net(x)`` (inference mode)."""
    sync = _sync(x.device)
    wall, cpu = [], []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            sync()
            start, start_cpu = time.perf_counter(), time.process_time()
            net(x)
            sync()
            if i >= warmup:
                wall.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def build(genotype: Genotype, channels: int) -> RUASNet:
    ops = genotype_to_ops(genotype)
    return RUASNet(ops["iem_ops"], ops["nrm_ops"], nrm_channels=channels)


# -- variants ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    """One way of running the network: autocast dtype, memory format, compilation, capture."""

    amp: str | None = None
    channels_last: bool = False
    compile: str | None = None  # None, "default" or "frozen" (inductor freezing)
    jit_frozen: bool = False
    cuda_graph: bool = False

    @property
    def name(self) -> str:
        parts = [{"default": "compiled", "frozen": "compiled-frozen"}.get(self.compile or "", "")]
        parts += ["jit-frozen" if self.jit_frozen else "", "cuda-graph" if self.cuda_graph else "",
                  "channels-last" if self.channels_last else "", self.amp or ""]
        return "+".join(p for p in parts if p) or "eager"

    @property
    def compiled(self) -> bool:
        return self.compile is not None or self.jit_frozen


def variants_for(device: torch.device) -> list[Variant]:
    """Every variant the device runs, eager first."""
    amps: list[str | None] = [None, "bf16"] + (["fp16"] if device.type == "cuda" else [])
    out = [Variant()]
    out += [Variant(channels_last=True)] + [Variant(amp=a) for a in amps[1:]]
    if device.type == "cpu":
        out += [Variant(jit_frozen=True)]
    for mode in ("default", "frozen"):
        out += [Variant(compile=mode), Variant(compile=mode, channels_last=True)]
        out += [Variant(compile=mode, amp=a) for a in amps[1:]]
    if device.type == "cuda":
        out += [Variant(cuda_graph=True)] + [Variant(cuda_graph=True, amp=a) for a in amps[1:]]
        out += [Variant(cuda_graph=True, compile="default")]
    return out


class _OutOnly(nn.Module):
    """``net(x)["out"]``: one tensor out, for tracing."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)["out"]


def make_forward(net: nn.Module, variant: Variant, x: torch.Tensor) -> Forward:
    """``x -> output "out"`` for ``variant`` over a copy of ``net`` (compiled lazily, at the first call)."""
    net = copy.deepcopy(net).eval()
    if variant.jit_frozen:
        with torch.inference_mode(False), torch.no_grad():
            traced = torch.jit.trace(_OutOnly(net), x)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        return frozen
    options: dict = {}
    if variant.compile == "frozen":
        options = {"options": {"freezing": True}}
    runner = Runner(net, Precision(variant.amp, x.device, scaler=False), variant.channels_last,
                    compile=variant.compile is not None, compile_options=options, cuda_graph=variant.cuda_graph)
    return lambda t: runner(t)["out"]


def run_variants(net: nn.Module, x: torch.Tensor, variants: list[Variant], warmup: int, repeats: int) -> list[dict]:
    """One row per variant: name, setup_s, ms, images_s, cpu_ms, max_diff (to eager float32). Every
    variant is built and warmed up first; then ``repeats`` rounds time each variant once, round-robin,
    so that load from other processes on a shared machine hits all variants alike."""
    with torch.inference_mode():
        reference = net.eval()(x)["out"].float()
    rows: list[dict] = []
    ready: list[tuple[dict, Forward]] = []
    for v in variants:
        start = time.perf_counter()
        try:
            fn = make_forward(net, v, x)
            with torch.inference_mode():
                out = fn(x).float()  # compiles / captures
                for _ in range(warmup):
                    fn(x)
        except Exception as exc:  # noqa: BLE001 - one variant failing on this device/torch is a row, not the end
            rows.append({"variant": v.name, "failed": f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"})
            print(f"  {v.name}: failed ({type(exc).__name__})", flush=True)
            continue
        row = {"variant": v.name, "setup_s": time.perf_counter() - start,
               "max_diff": float((out - reference).abs().max())}
        print(f"  {v.name}: ready in {row['setup_s']:.1f} s", flush=True)
        rows.append(row)
        ready.append((row, fn))
    times: dict[int, list[tuple[float, float]]] = {id(row): [] for row, _ in ready}
    for _ in range(repeats):
        for row, fn in ready:
            times[id(row)].append(time_both(fn, x, 0, 1))
    for row, _ in ready:
        wall = statistics.median(t[0] for t in times[id(row)])
        cpu = statistics.median(t[1] for t in times[id(row)])
        row.update(ms=1000 * wall, images_s=1.0 / wall, cpu_ms=1000 * cpu)
    return rows


def print_variant_table(rows: list[dict]) -> None:
    width = max(len("variant"), *(len(r["variant"]) for r in rows))
    header = f"{'variant':<{width}} {'setup s':>8} {'ms/image':>9} {'images/s':>9} {'cpu ms':>8} {'max |diff|':>11}"
    print(header)
    print("-" * len(header))
    for r in rows:
        if "failed" in r:
            print(f"{r['variant']:<{width}} failed: {r['failed']}")
            continue
        print(f"{r['variant']:<{width}} {r['setup_s']:>8.1f} {r['ms']:>9.1f} {r['images_s']:>9.2f} "
              f"{r['cpu_ms']:>8.1f} {r['max_diff']:>11.1e}")


class BadFlags(ValueError):
    """A combination of flags this device cannot run; the message is one line."""


def _selected(args: argparse.Namespace, device: torch.device) -> list[Variant]:
    """Eager and the variant the flags describe, or every variant of the device (``--quick``: not compiled)."""
    if args.cuda_graph and device.type != "cuda":
        raise BadFlags("--cuda-graph captures CUDA kernels and needs --device cuda; on a CPU use --compile "
                       "(add --freeze for fused oneDNN convs)")
    if args.amp == "fp16" and device.type != "cuda":
        raise BadFlags("--amp fp16 needs a CUDA device (CPU autocast in fp16 is slow); use --amp bf16")
    if args.freeze and not args.compile:
        raise BadFlags("--freeze is inductor's freezing of --compile: pass --compile too")
    chosen = Variant(amp=args.amp, channels_last=args.channels_last, cuda_graph=args.cuda_graph,
                     compile=("frozen" if args.freeze else "default") if args.compile else None)
    if chosen != Variant():
        return [Variant(), chosen]
    every = variants_for(device)
    return [v for v in every if not v.compiled] if args.quick else every


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lowlight_speed.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--genotype", default=None, help="a searched genotype.json to compare with the reference")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--height", type=int, default=400)
    parser.add_argument("--width", type=int, default=600)
    parser.add_argument("--nrm-channels", type=int, default=6, help="NRM width (RUAS: 6)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    add_threads_flag(parser)  # N, auto (the commands' default: no oversubscription) or torch
    parser.add_argument("--amp", default=None, choices=("bf16", "fp16"), help="autocast dtype (fp16: CUDA)")
    parser.add_argument("--channels-last", action="store_true", help="weights and input in channels-last format")
    parser.add_argument("--compile", action="store_true", help="torch.compile (inductor)")
    parser.add_argument("--freeze", action="store_true",
                        help="with --compile: inductor freezing (weights as constants, fused oneDNN convs)")
    parser.add_argument("--cuda-graph", action="store_true",
                        help="capture the network once at the fixed input size and replay it (CUDA only)")
    parser.add_argument("--quick", action="store_true", help="all variants but the compiled ones")
    parser.add_argument("--no-variants", action="store_true", help="only the size table")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device available")
    apply_threads(args.threads)
    device = torch.device(args.device)
    try:
        variants = _selected(args, device)
    except BadFlags as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
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
    built = {}
    for name, genotype in nets.items():
        net = built[name] = build(genotype, args.nrm_channels).to(device).eval()
        params = sum(p.numel() for p in net.parameters())
        macs = count_macs(net, x)
        ms = 1000 * time_forward(net, x, args.warmup, args.repeats)
        print(f"{name:<{width}} {params:>8,} {macs / 1e9:>8.3f} {ms:>9.1f}")
    if args.no_variants:
        return 0
    first = next(iter(built))
    print(f"\n{first}: inference variants on {where}")
    rows = run_variants(built[first], x, variants, args.warmup, args.repeats)
    print()
    print_variant_table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
