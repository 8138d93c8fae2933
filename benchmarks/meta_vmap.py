"""A MAML meta-batch: our task loop (``Tasks``) against ``torch.func.vmap`` over the task dimension.

The few-shot model of MAML (Finn et al., 2017): Conv4, four blocks of conv3x3 with ``--filters``
filters, ``BatchNorm2d(track_running_stats=False)`` (batch statistics always), ReLU and 2x2
max-pool, then a linear head to ``ways`` outputs, on 1x28x28 inputs (Omniglot's size; the pixels
are random: the cost does not depend on them). Episodes are 5-way 1-shot and 5-way 5-shot with 15
queries per class; ``--steps`` inner SGD steps of ``--lr`` (0.4: MAML's Omniglot) on the support
cross-entropy from the initialisation; the meta-gradient is the mean over the tasks of the query
cross-entropy's gradient with respect to the initialisation. Each configuration is computed

- loop: ``bilevel.hypergradient(problem, "maml" | "fomaml", Tasks(supports), Tasks(queries),
  steps=K, lr=lr)``: ``_Meta.compute`` runs the tasks one after the other (autograd);
- vmap: ``torch.func.vmap`` over the task dimension (support and query stacked as ``[E, ...]``,
  the initialisation shared) of one task's function: ``K`` steps ``p <- p - lr grad(loss)(p)``
  with ``torch.func.grad`` and ``functional_call``, then the query loss's gradient with respect to
  the initialisation (``maml``: ``torch.func.grad`` through the steps, second order) or at the
  adapted weights (``fomaml``); the mean over the task dimension;
- func loop (``--func-loop``): the same torch.func task function called task by task, which
  separates what vmap's batching gains from what torch.func's transforms cost.

Both sides are first compared in float64 on ``--check-tasks`` tasks of every configuration
(relative difference ``||a - b|| / ||b||`` over all the parameters), then timed in
float32: the sides called in turn, round after round (a change of the machine's load falls on both
alike), the median over up to ``--repeats`` rounds (fewer where they would pass ``--budget`` seconds
per side; one warm-up round per configuration, before its first meta-batch size); the ratio
loop / vmap is measured side by side in one run::

    python benchmarks/meta_vmap.py --threads 1
    python benchmarks/meta_vmap.py --threads 2 --filters 64 --tasks 1,4,16
"""
from __future__ import annotations

import argparse
import datetime
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn.functional as Fn  # noqa: E402
from torch import Tensor, nn  # noqa: E402

import bilevel  # noqa: E402
from benchmarks.machine import machine  # noqa: E402
from bilevel.methods.meta import Tasks  # noqa: E402
from runtime.threads import add_threads_flag, apply_threads  # noqa: E402

Grads = dict[str, Tensor]
Episodes = tuple[Tensor, Tensor, Tensor, Tensor]  # xs [E, ways*shots, C, H, W], ys, xq, yq
METHODS = ("maml", "fomaml")


def conv4(filters: int = 32, ways: int = 5, channels: int = 1, size: int = 28, blocks: int = 4,
          dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0) -> nn.Sequential:
    """MAML's Conv4: ``blocks`` x (conv3x3, BatchNorm2d with batch statistics, ReLU, max-pool 2), linear head."""
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for b in range(blocks):
        layers += [nn.Conv2d(channels if b == 0 else filters, filters, 3, padding=1),
                   nn.BatchNorm2d(filters, track_running_stats=False), nn.ReLU(), nn.MaxPool2d(2)]
        size //= 2
    layers += [nn.Flatten(), nn.Linear(filters * size * size, ways)]
    return nn.Sequential(*layers).to(device=device, dtype=dtype)


def episodes(tasks: int, ways: int, shots: int, queries: int = 15, channels: int = 1, size: int = 28,
             dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0) -> Episodes:
    """``tasks`` random ``ways``-way ``shots``-shot episodes, stacked: support ``[E, ways*shots, C, H, W]``
    with labels ``[E, ways*shots]``, query ``[E, ways*queries, ...]``."""
    g = torch.Generator().manual_seed(seed)

    def part(per_class: int) -> tuple[Tensor, Tensor]:
        x = torch.rand(tasks, ways * per_class, channels, size, size, generator=g, dtype=torch.float64)
        y = torch.arange(ways).repeat_interleave(per_class).expand(tasks, -1).contiguous()
        return x.to(device=device, dtype=dtype), y.to(device)

    return (*part(shots), *part(queries))


def _cross_entropy(model: nn.Module) -> Callable[[Grads, Grads, tuple[Tensor, Tensor]], Tensor]:
    def loss(low: Grads, up: Grads, batch: tuple[Tensor, Tensor]) -> Tensor:
        return Fn.cross_entropy(bilevel.call(model, low, batch[0]), batch[1])
    return loss


def problem(model: nn.Module) -> bilevel.BilevelProblem:
    """The lower variables: copies of the model's parameters; the upper: their initialisation ``init/<name>``."""
    lower = {n: p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    upper = {f"init/{n}": p.detach().clone().requires_grad_(True) for n, p in model.named_parameters()}
    ce = _cross_entropy(model)
    return bilevel.BilevelProblem(lower, upper, ce, ce)


def ours(prob: bilevel.BilevelProblem, method: str, eps: Episodes, steps: int, lr: float) -> Grads:
    """The meta-gradient by our library: a ``Tasks`` meta-batch (the loop over the tasks)."""
    xs, ys, xq, yq = eps
    support = Tasks([(xs[i], ys[i]) for i in range(len(xs))])
    query = Tasks([(xq[i], yq[i]) for i in range(len(xq))])
    out = bilevel.hypergradient(prob, method, support, query, steps=steps, lr=lr)
    return {k.removeprefix("init/"): v for k, v in out.items()}


def task_fn(model: nn.Module, steps: int, lr: float, first_order: bool
            ) -> Callable[[Grads, Tensor, Tensor, Tensor, Tensor], Grads]:
    """One task's meta-gradient with torch.func: ``steps`` plain steps of ``lr`` on the support loss
    from ``theta``, then the query loss's gradient w.r.t. ``theta`` (through the steps) or, first
    order, at the adapted weights."""

    def loss(p: Grads, x: Tensor, y: Tensor) -> Tensor:
        return Fn.cross_entropy(torch.func.functional_call(model, p, (x,)), y)

    inner = torch.func.grad(loss)

    def adapt(theta: Grads, xs: Tensor, ys: Tensor) -> Grads:
        p = theta
        for _ in range(steps):
            g = inner(p, xs, ys)
            p = {k: p[k] - lr * g[k] for k in p}
        return p

    if first_order:
        def task(theta: Grads, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Grads:
            return inner(adapt(theta, xs, ys), xq, yq)
    else:
        def task(theta: Grads, xs: Tensor, ys: Tensor, xq: Tensor, yq: Tensor) -> Grads:
            return torch.func.grad(lambda t: loss(adapt(t, xs, ys), xq, yq))(theta)
    return task


def vmapped(model: nn.Module, steps: int, lr: float, first_order: bool) -> Callable[[Grads, Episodes], Grads]:
    """The meta-gradient of a stacked meta-batch: vmap of ``task_fn`` over the task dimension, mean."""
    batched = torch.func.vmap(task_fn(model, steps, lr, first_order), in_dims=(None, 0, 0, 0, 0))

    def meta_grad(theta: Grads, eps: Episodes) -> Grads:
        return {k: g.mean(0) for k, g in batched(theta, *eps).items()}
    return meta_grad


def func_loop(model: nn.Module, steps: int, lr: float, first_order: bool) -> Callable[[Grads, Episodes], Grads]:
    """The same torch.func task function, task by task (no vmap), mean."""
    task = task_fn(model, steps, lr, first_order)

    def meta_grad(theta: Grads, eps: Episodes) -> Grads:
        grads = [task(theta, *(t[i] for t in eps)) for i in range(len(eps[0]))]
        return {k: sum(g[k] for g in grads) / len(grads) for k in theta}
    return meta_grad


def theta_of(model: nn.Module) -> Grads:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def rel_diff(a: Grads, b: Grads) -> float:
    """``||a - b|| / ||b||`` over all the tensors together (the conv biases' exact gradient is 0:
    a BatchNorm follows; alone, their rounding errors would make any per-tensor ratio of order 1)."""
    num = sum(float((a[k] - b[k]).pow(2).sum()) for k in b)
    den = sum(float(b[k].pow(2).sum()) for k in b)
    return (num / max(den, 1e-300)) ** 0.5


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def side_by_side(fns: list[Callable[[], object]], repeats: int, budget: float, device: str, warm_up: bool
                 ) -> tuple[list[float], int]:
    """Median seconds of each of ``fns``, called in turn (one round calls each once, so that a change
    of the machine's load falls on every side alike): up to ``repeats`` rounds, fewer once the rounds
    so far and one more would pass ``budget`` seconds per side (at least one round; a warm-up round
    first with ``warm_up``). Returns (medians, rounds)."""
    def once(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        sync(device)
        return time.perf_counter() - start

    if warm_up:
        for fn in fns:
            once(fn)
    times: list[list[float]] = [[] for _ in fns]
    while not times[0] or (len(times[0]) < repeats
                           and all(sum(t) + t[-1] <= budget for t in times)):
        for t, fn in zip(times, fns):
            t.append(once(fn))
    return [statistics.median(t) for t in times], len(times[0])


def check(filters: int, ways: int, shots: int, steps: int, lr: float, method: str, tasks: int,
          device: str, func: bool = False) -> float:
    """Float64: the relative difference ``||a - b|| / ||b||`` of the vmap (or, ``func``, the
    torch.func loop) meta-gradient ``a`` from ours ``b`` on ``tasks`` episodes."""
    model = conv4(filters, ways, dtype=torch.float64, device=device)
    eps = episodes(tasks, ways, shots, dtype=torch.float64, device=device, seed=1)
    ref = ours(problem(model), method, eps, steps, lr)
    side = (func_loop if func else vmapped)(model, steps, lr, method == "fomaml")
    return rel_diff(side(theta_of(model), eps), ref)


def parse_ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--filters", type=int, default=32, help="filters of each conv block (default 32; MAML: 64)")
    parser.add_argument("--ways", type=int, default=5, help="classes per episode (default 5)")
    parser.add_argument("--shots", type=parse_ints, default=[1, 5], help="support examples per class (default 1,5)")
    parser.add_argument("--tasks", type=parse_ints, default=[1, 4, 16, 32], help="meta-batch sizes (default 1,4,16,32)")
    parser.add_argument("--steps", type=parse_ints, default=[1, 5], help="inner steps (default 1,5)")
    parser.add_argument("--methods", type=lambda s: s.split(","), default=list(METHODS), help="maml,fomaml (default both)")
    parser.add_argument("--lr", type=float, default=0.4, help="inner learning rate (default 0.4)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds, each calling every side once (median; default 3)")
    parser.add_argument("--budget", type=float, default=3.0,
                        help="seconds of timed calls per side and row before repeats are cut (default 3)")
    parser.add_argument("--check-tasks", type=int, default=2, help="episodes of the float64 check (0: none; default 2)")
    parser.add_argument("--func-loop", action="store_true", help="also time the torch.func task function in a loop")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    add_threads_flag(parser)
    args = parser.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    threads = apply_threads(args.threads)
    print(f"machine: {machine()}; {threads} (torch.get_num_threads() = {torch.get_num_threads()}); "
          f"torch {torch.__version__}; {device}"
          f"{' (' + torch.cuda.get_device_name() + ')' if device.startswith('cuda') else ''}; {datetime.date.today()}; "
          f"load average {os.getloadavg()[0]:.2f} at start")
    print(f"Conv4 ({args.filters} filters, BatchNorm batch statistics, max-pool) on 1x28x28, {args.ways}-way, "
          f"15 queries per class, inner SGD lr {args.lr}; float32 median of up to {args.repeats} rounds "
          f"(budget {args.budget:g} s per side); "
          f"{f'rel diff: float64, {args.check_tasks} tasks' if args.check_tasks else 'no float64 check'}")
    func_head = f" {'func loop':>10s} {'func/vmap':>9s}" if args.func_loop else ""
    print(f"{'method':7s} {'shots':>5s} {'steps':>5s} {'tasks':>5s} {'rel diff f64':>12s} {'loop (ms)':>10s} "
          f"{'vmap (ms)':>10s} {'loop/vmap':>9s}{func_head} {'rounds':>6s}")
    total = time.perf_counter()
    for method in args.methods:
        first_order = method == "fomaml"
        for shots in args.shots:
            for steps in args.steps:
                diff = (f"{check(args.filters, args.ways, shots, steps, args.lr, method, args.check_tasks, device):.1e}"
                        if args.check_tasks else "-")
                model = conv4(args.filters, args.ways, device=device)
                prob, theta = problem(model), theta_of(model)
                vm = vmapped(model, steps, args.lr, first_order)
                fl = func_loop(model, steps, args.lr, first_order)
                for row, tasks in enumerate(args.tasks):
                    eps = episodes(tasks, args.ways, shots, device=device)
                    fns = [functools.partial(ours, prob, method, eps, steps, args.lr), functools.partial(vm, theta, eps)]
                    if args.func_loop:
                        fns.append(functools.partial(fl, theta, eps))
                    (t_loop, t_vmap, *t_func), rounds = side_by_side(fns, args.repeats, args.budget, device, row == 0)
                    extra = f" {1e3 * t_func[0]:10.1f} {t_func[0] / t_vmap:9.2f}" if t_func else ""
                    print(f"{method:7s} {shots:5d} {steps:5d} {tasks:5d} {diff:>12s} {1e3 * t_loop:10.1f} "
                          f"{1e3 * t_vmap:10.1f} {t_loop / t_vmap:9.2f}{extra} {rounds:6d}", flush=True)
                    diff = ""  # the check is per (method, shots, steps): printed on its first row
    print(f"total {time.perf_counter() - total:.0f} s")


if __name__ == "__main__":
    main()
