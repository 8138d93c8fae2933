"""Our differentiable Adam/AdamW lower steps against TorchOpt's ``MetaAdam``/``MetaAdamW``.

On problem (c) of ``benchmarks/problems.py`` (small CNN, per-tensor log weight decays), cast to
float64 and started from a fixed perturbation of its lower solution, both compute the ``rad``
hypergradient through ``T`` Adam (or AdamW) steps from a fresh optimizer state (the state TorchOpt
starts from): ours through ``bilevel.hypergradient(..., "rad", lower_optimizer=torch.optim.Adam)``,
TorchOpt's by ``MetaAdam(net).step(loss)`` ``T`` times and ``torch.autograd.grad`` of the upper
loss. Prints the largest absolute and the relative difference of the hypergradients and of the
final lower variables, with TorchOpt run under float32 (torch's default) and float64 default dtype:
its bias corrections follow the default dtype (about 1e-5 relative under float32). TorchOpt lives
outside the project's dependencies::

    python -m venv --system-site-packages /tmp/venv-peer && /tmp/venv-peer/bin/pip install torchopt
    /tmp/venv-peer/bin/python benchmarks/adam_torchopt.py
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402

import bilevel  # noqa: E402
from benchmarks import problems  # noqa: E402
from benchmarks.peers import upper_grads  # noqa: E402

DT = torch.float64


def start(spec: problems.Spec) -> dict[str, torch.Tensor]:
    """``y0`` plus ``0.1 * rms(y0)`` times fixed standard normal noise, float64."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, v in spec.y0.items():
        v = v.detach().to("cpu", DT)
        out[k] = v + 0.1 * float(v.pow(2).mean().sqrt()) * torch.randn(v.shape, generator=g, dtype=DT)
    return out


def cast(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.to("cpu", DT) if v.is_floating_point() else v.cpu() for k, v in batch.items()}


def ours(spec, y0, kind: str, T: int, lr: float, wd: float) -> tuple[dict, dict]:
    module = spec.make_module().to(DT)
    names = [n for n, _ in module.named_parameters()]
    lower = {n: y0[n].clone().requires_grad_(True) for n in names}
    upper = {k: v.detach().to("cpu", DT).clone().requires_grad_(True) for k, v in spec.x0.items()}

    def f(lo, up, batch):
        return spec.lower_loss(lambda z: bilevel.call(module, lo, z), [lo[n] for n in names], up, batch)

    def F(lo, up, batch):
        return spec.upper_loss(lambda z: bilevel.call(module, lo, z), [lo[n] for n in names], up, batch)

    problem = bilevel.BilevelProblem(lower=lower, upper=upper, lower_loss=f, upper_loss=F)
    cls = torch.optim.AdamW if kind == "adamw" else torch.optim.Adam
    opt = cls(list(lower.values()), lr=lr, weight_decay=wd)
    lb, ub = cast(spec.lower_batch), cast(spec.upper_batch)
    g = bilevel.hypergradient(problem, "rad", lb, ub, lower_optimizer=opt, steps=T, lr=None)
    # the final lower variables: T real optimizer steps on the same loss
    for _ in range(T):
        opt.zero_grad()
        f(lower, {k: v.detach() for k, v in upper.items()}, lb).backward()
        opt.step()
    return dict(g), {n: t.detach() for n, t in lower.items()}


def torchopt_side(spec, y0, kind: str, T: int, lr: float, wd: float, default_dtype: torch.dtype
                  ) -> tuple[dict, dict]:
    """TorchOpt's unroll. Its bias corrections ``1 - beta**count`` (``count`` an int64 tensor) come
    out in the default dtype: float32 unless ``default_dtype`` is float64."""
    import torchopt

    net = spec.make_module().to(DT)
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(y0[n])
    hp = {k: v.detach().to("cpu", DT).clone().requires_grad_(True) for k, v in spec.x0.items()}
    cls = torchopt.MetaAdamW if kind == "adamw" else torchopt.MetaAdam
    meta = cls(net, lr=lr, weight_decay=wd, moment_requires_grad=False)
    lb, ub = cast(spec.lower_batch), cast(spec.upper_batch)
    default = torch.get_default_dtype()
    torch.set_default_dtype(default_dtype)
    try:
        for _ in range(T):
            meta.step(spec.lower_loss(net, list(net.parameters()), hp, lb))
    finally:
        torch.set_default_dtype(default)
    g = upper_grads(spec.upper_loss(net, list(net.parameters()), hp, ub), hp)
    return g, {n: p.detach() for n, p in net.named_parameters()}


def diff(a: dict, b: dict) -> tuple[float, float]:
    big = max(float((a[k] - b[k]).abs().max()) for k in b)
    rel = sum(float((a[k] - b[k]).pow(2).sum()) for k in b) ** 0.5 / sum(float(b[k].pow(2).sum()) for k in b) ** 0.5
    return big, rel


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="T, Adam steps unrolled (default 10)")
    ap.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate (default 1e-2)")
    ap.add_argument("--weight-decay", type=float, default=1e-2, help="(default 1e-2)")
    args = ap.parse_args(argv)
    try:
        import torchopt
    except ImportError:
        print("torchopt is not installed (see this file's docstring)")
        return 1
    print(f"machine: {platform.node()} ({platform.machine()}); torch {torch.__version__}; torchopt "
          f"{torchopt.__version__}; threads: {torch.get_num_threads()}; device: cpu; float64; "
          f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}")
    spec = problems.cnn(torch.device("cpu"))
    y0 = start(spec)
    print(f"problem: {spec.title}; rad through T={args.steps} steps, lr={args.lr:g}, "
          f"weight decay {args.weight_decay:g}")
    print("lower max|diff|: our final lower variables (torch.optim's steps) against TorchOpt's")
    print(f"{'optimizer':>9}  {'TorchOpt default dtype':>22}  {'hypergrad max|diff|':>19}  {'rel':>8}  "
          f"{'|hypergrad|max':>14}  {'lower max|diff|':>15}")
    for kind in ("adam", "adamw"):
        g_ours, y_ours = ours(spec, y0, kind, args.steps, args.lr, args.weight_decay)
        for default_dtype in (torch.float32, torch.float64):
            g_to, y_to = torchopt_side(spec, y0, kind, args.steps, args.lr, args.weight_decay, default_dtype)
            big, rel = diff(g_ours, g_to)
            scale = max(float(v.abs().max()) for v in g_to.values())
            print(f"{kind:>9}  {str(default_dtype):>22}  {big:19.2e}  {rel:8.1e}  {scale:14.3e}  "
                  f"{diff(y_ours, y_to)[0]:15.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
