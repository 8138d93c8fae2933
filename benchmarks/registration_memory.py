"""Peak memory of one 3D registration training step, measured at small sizes and projected to
OASIS size (160 x 192 x 224, batch 1).

    python benchmarks/registration_memory.py                        # CPU, sizes 32, 48, 64
    python benchmarks/registration_memory.py --sizes 32 48 64 80 --genotype reference --device cuda

A step is: ``RegNet`` forward on a (moving, fixed) pair of ``size^3`` volumes, lower loss (local
NCC window 9 + exp(log lambda) * smoothness of the velocity), backward, Adam step; the default
network is the plain U-Net (channels 16, 32, 32, 32; velocity integrated by 7 squaring steps).

Method. CPU: each size runs in a fresh child process; the peak is the growth of the process's
maximum resident set size (``resource.getrusage(...).ru_maxrss``) across one step, taken after
the model, optimiser and inputs exist and after a first step at 8^3 has loaded the kernels (so
it counts the step's activations, gradients, optimiser state and temporaries; allocator slack
included). CUDA: ``torch.cuda.max_memory_allocated`` over the step minus the memory allocated
before it. Projection: a least-squares line ``peak = a + b * voxels`` through the measured
sizes, evaluated at 160 * 192 * 224 = 6,881,280 voxels (activations scale with the voxel count;
the weights are a few hundred KB).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

OASIS = (160, 192, 224)


def _step(size: int, device: str, genotype: str | None) -> int:
    """Peak bytes of one training step at ``size^3`` (run in a child process)."""
    import resource

    import torch

    from nas.genotype import Genotype
    from restoration.registration.genotype import AUTOREG_REFERENCE_PATH
    from restoration.registration.losses import initial_log_weights, lower_loss
    from restoration.registration.model import RegNet

    torch.manual_seed(0)
    dev = torch.device(device)
    geno = None if genotype is None else Genotype.load(AUTOREG_REFERENCE_PATH if genotype == "reference" else genotype)
    net = RegNet(3, genotype=geno).to(dev)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    lw = initial_log_weights(1.0, device=dev)

    def step(s: int) -> None:
        m, f = torch.rand(1, 1, s, s, s, device=dev), torch.rand(1, 1, s, s, s, device=dev)
        loss = lower_loss(net(m, f), {"fixed": f}, lw, "ncc", 9)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step(8)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        step(size)
        torch.cuda.synchronize(dev)
        return torch.cuda.max_memory_allocated(dev) - base
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step(size)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024  # ru_maxrss is KiB on Linux


def _fit(points: list[tuple[int, int]]) -> tuple[float, float]:
    n = len(points)
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = sum(xs) / n, sum(ys) / n
    b = sum((x - mx) * (y - my) for x, y in points) / max(sum((x - mx) ** 2 for x in xs), 1e-12)
    return my - b * mx, b


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--genotype", default=None, help="'reference' or a genotype JSON (default: plain U-Net)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child is not None:
        import torch

        torch.set_num_threads(a.threads)
        print(json.dumps({"bytes": _step(a.child, a.device, a.genotype)}))
        return
    points = []
    print(f"{'size':>10} {'voxels':>12} {'peak MiB':>10}")
    for s in a.sizes:
        cmd = [sys.executable, __file__, "--child", str(s), "--device", a.device, "--threads", str(a.threads)]
        if a.genotype:
            cmd += ["--genotype", a.genotype]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        peak = json.loads(out)["bytes"]
        points.append((s ** 3, peak))
        print(f"{s:>4}^3     {s ** 3:>12,} {peak / 2 ** 20:>10.1f}")
    if len(points) >= 2:
        a0, b = _fit(points)
        vox = math.prod(OASIS)
        print(f"fit: peak = {a0 / 2 ** 20:.1f} MiB + {b:.0f} bytes/voxel")
        print(f"projected {'x'.join(map(str, OASIS))}, batch 1 ({a.device}): {(a0 + b * vox) / 2 ** 30:.2f} GiB")


if __name__ == "__main__":
    main()
