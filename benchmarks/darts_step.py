"""DARTS search step: ours (``bilevel.BilevelLoop``) against a hand-written DARTS second-order step.

One full search step = hypergradient of the alphas + Adam step on them + SGD step on the weights
(clipped at 5), on the DARTS search supernet (8 cells x 16 channels, 10 classes, 32x32 inputs,
batch 64 by default) built by the classification task's ``build_search`` with the settings of its
``darts`` recipe (DARTS's optimizers and clips). Arms:

  ours-darts1, ours-darts2, ours-cg, ours-neumann   ``BilevelLoop(...).step(lower, upper)``
  hand-darts2                                       ``HandDarts2.step`` below: DARTS's
      ``architect.py`` written directly on the module (virtual step honouring momentum and weight
      decay, ``v = d L_val / d w'``, central finite difference of ``d L_train / d alpha`` at
      ``w +/- eps v`` with ``eps = 0.01 / ||v||``), then DARTS's weight step.

Every arm owns an identical copy of the supernet and its optimizers and gets the same two fixed
random batches. Timing: arms interleaved round-robin (so load from other processes hits all
alike), ``--warmup`` rounds discarded, the median of ``--repeats`` rounds reported. Memory, in one
extra untimed step per arm: ``peak saved`` = the most bytes autograd graphs held for backward at
once (``bilevel.saved_tensor_bytes``; any device; storage saved twice counts twice); ``peak alloc``
= on CUDA ``max_memory_allocated`` minus the memory allocated before the step, on CPU (only with
``--cpu-alloc``) the peak of (bytes allocated - bytes freed) by tensor allocations during the step
from ``torch.profiler`` memory events.
Before timing, ours-darts2's hypergradient is compared with hand-darts2's on the same state
(float64, batch 4: they agree to about 1e-14).

    python benchmarks/darts_step.py --quick --threads 1                 # batch 16, all arms
    python benchmarks/darts_step.py --threads 1 --arms hand-darts2,ours-darts2,ours-darts1

On one idle CPU core a step takes about 23 s (darts2, batch 16) and 88 s (batch 64); the first
command runs about 20 min, the second about 25. cg/neumann keep the double-backward graph: at
batch 64 they need about 30 GB of host memory on CPU (6 GB of saved tensors at batch 16). On a
shared, loaded machine pass ``--threads 1``: oversubscribed OpenMP threads stall the many small
ops of the supernet (steps 20-50x slower, and unevenly so).
"""
from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import sys
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import bilevel  # noqa: E402
from nas.supernet import DartsSupernet  # noqa: E402
from benchmarks.harness import peak_memory, pick_device, sync  # noqa: E402
from runtime.threads import add_threads_flag, apply_threads  # noqa: E402
from tasks.base import Task  # noqa: E402
from tasks.registry import get_task  # noqa: E402
from tasks.settings import Settings  # noqa: E402
from tasks.training import make_optimizer  # noqa: E402

Batch = dict[str, torch.Tensor]


class HandDarts2:
    """A minimal hand-written DARTS second-order search step (the reference of the benchmark).

    Works in place on ``model``'s parameters, as DARTS's ``Architect`` does (without its model
    copy): weights ``w`` are the non-alpha parameters, ``a`` the alphas.
    """

    def __init__(self, model: DartsSupernet, w_opt: torch.optim.SGD, a_opt: torch.optim.Optimizer,
                 weight_clip: float | None = 5.0, eps_scale: float = 0.01) -> None:
        self.model, self.w_opt, self.a_opt = model, w_opt, a_opt
        self.w = list(model.weight_parameters().values())
        self.a = list(model.arch_parameters().values())
        self.weight_clip, self.eps_scale = weight_clip, eps_scale

    def _loss(self, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(self.model(batch["image"]), batch["label"])

    def arch_grads(self, lower: Batch, upper: Batch) -> list[torch.Tensor]:
        """``d L_val(w', a)/d a - eta * H_aw v``; leaves ``w`` as it found it."""
        w, a = self.w, self.a
        group = self.w_opt.param_groups[0]
        eta, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
        g = torch.autograd.grad(self._loss(lower), w)
        with torch.no_grad():
            saved = [p.detach().clone() for p in w]
            step = torch._foreach_add(g, w, alpha=wd)  # g + wd * w
            bufs = [self.w_opt.state.get(p, {}).get("momentum_buffer") for p in w]
            if mom and all(b is not None for b in bufs):
                torch._foreach_add_(step, bufs, alpha=mom)  # + momentum * buf
            torch._foreach_add_(w, step, alpha=-eta)  # w' (virtual step)
        grads = torch.autograd.grad(self._loss(upper), a + w)
        da, v = grads[: len(a)], grads[len(a):]
        # DARTS's architect.py also adds wd * w' to v (a quirk); the derivation, and ours, do not.
        r = self.eps_scale / float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(v))))
        with torch.no_grad():
            torch._foreach_copy_(w, saved)
            torch._foreach_add_(w, v, alpha=r)  # w + r v
        g_plus = torch.autograd.grad(self._loss(lower), a)
        with torch.no_grad():
            torch._foreach_add_(w, v, alpha=-2 * r)  # w - r v
        g_minus = torch.autograd.grad(self._loss(lower), a)
        with torch.no_grad():
            torch._foreach_copy_(w, saved)
        return [d - eta * (p - m) / (2 * r) for d, p, m in zip(da, g_plus, g_minus)]

    def step(self, lower: Batch, upper: Batch) -> None:
        for p, g in zip(self.a, self.arch_grads(lower, upper)):
            p.grad = g
        self.a_opt.step()
        self.a_opt.zero_grad(set_to_none=True)
        self.w_opt.zero_grad(set_to_none=True)
        self._loss(lower).backward(inputs=self.w)
        if self.weight_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.w, self.weight_clip)
        self.w_opt.step()
        self.w_opt.zero_grad(set_to_none=True)


def peak_saved(call: Callable[[], Any]) -> float:
    with bilevel.saved_tensor_bytes() as meter:
        call()
    return float(meter.peak)


def darts_search(args: argparse.Namespace) -> tuple[Task, Settings]:
    """The classification task and its search settings of recipe ``darts`` at the benchmark's
    sizes and seed (the data is never read: the arms get random batches)."""
    task = get_task("classification")
    s = task.settings("search", "darts").replace({"channels": args.channels, "layers": args.layers,
                                                   "batch_size": args.batch_size, "seed": args.seed})
    return task, s


def build_arms(args: argparse.Namespace, device: torch.device) -> dict[str, Callable[[Batch, Batch], Any]]:
    task, s = darts_search(args)
    options = {"darts1": {}, "darts2": {}, "cg": {"iters": args.implicit_iters, "tol": 0.0},
               "neumann": {"iters": args.implicit_iters, "alpha": 0.01}}
    arms: dict[str, Callable[[Batch, Batch], Any]] = {}
    for name in args.arms:
        setup = task.build_search(s, device)  # same seed: identical supernets
        group = setup.groups[0]
        if name == "hand-darts2":
            arms[name] = HandDarts2(setup.supernet, group.lower.optimizer, group.optimizer,
                                    weight_clip=s.lower_grad_clip).step
            continue
        method = name.removeprefix("ours-")
        loop = bilevel.BilevelLoop(group.problem, method, group.optimizer, group.lower.optimizer,
                                   options[method], grad_clip=s.grad_clip, lower_grad_clip=s.lower_grad_clip)
        arms[name] = loop.step
    return arms


def check_agreement(args: argparse.Namespace, device: torch.device) -> tuple[float, int]:
    """Relative difference of ours-darts2's and hand-darts2's alpha gradients on the same state,
    in float64 (float32 finite differences of the supernet's gradient are noise-dominated: the two
    then differ by about 1e-2 although they compute the same thing) on a batch of at most 4."""
    task, s = darts_search(args)
    n = min(args.batch_size, 4)
    g = torch.Generator().manual_seed(args.seed + 1)
    lower, upper = (random_batch(n, device, g, torch.float64) for _ in range(2))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        setup = task.build_search(s, device)
    finally:
        torch.set_default_dtype(previous)
    group = setup.groups[0]
    hand = HandDarts2(copy.deepcopy(setup.supernet), None, None)  # type: ignore[arg-type]
    hand.w_opt = make_optimizer("sgd", hand.w, s.lr, s.weight_decay, s.momentum)
    ours = bilevel.hypergradient(group.problem, "darts2", lower, upper, group.lower.optimizer)
    theirs = hand.arch_grads(lower, upper)
    a = torch.cat([ours[k].flatten() for k in group.problem.upper])
    b = torch.cat([t.flatten() for t in theirs])
    return float((a - b).norm() / b.norm()), n


def random_batch(n: int, device: torch.device, g: torch.Generator, dtype: torch.dtype = torch.float32) -> Batch:
    return {"image": torch.randn(n, 3, 32, 32, generator=g, dtype=dtype).to(device),
            "label": torch.randint(10, (n,), generator=g).to(device)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--batch-size", type=int, default=None, help="images per batch (default 64, quick 16)")
    ap.add_argument("--channels", type=int, default=16, help="supernet channels (DARTS search: 16)")
    ap.add_argument("--layers", type=int, default=8, help="supernet cells (DARTS search: 8)")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 3, quick 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds first (default 1)")
    ap.add_argument("--implicit-iters", type=int, default=5,
                    help="Hessian-vector products of cg and neumann per step (default 5)")
    ap.add_argument("--arms", default="hand-darts2,ours-darts2,ours-darts1,ours-cg,ours-neumann",
                    help="comma list of hand-darts2, ours-darts1, ours-darts2, ours-cg, ours-neumann")
    ap.add_argument("--seed", type=int, default=0)
    add_threads_flag(ap)  # N, auto (the commands' default: no oversubscription) or torch
    ap.add_argument("--quick", action="store_true", help="batch 16 and 2 repeats unless given")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory steps")
    ap.add_argument("--cpu-alloc", action="store_true",
                    help="on CPU also measure peak tensor allocation with torch.profiler memory events "
                         "(slow, and the profiler itself needs gigabytes at batch 64)")
    ap.add_argument("--no-check", action="store_true", help="skip the ours vs hand gradient check")
    ap.add_argument("--profile", action="store_true",
                    help="after the table, cProfile one ours-darts2 step and list where its time goes "
                         "in bilevel/ and torch.func's functional_call")
    args = ap.parse_args(argv)
    args.batch_size = args.batch_size or (16 if args.quick else 64)
    args.repeats = args.repeats or (2 if args.quick else 3)
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    known = {"hand-darts2", "ours-darts1", "ours-darts2", "ours-cg", "ours-neumann"}
    if set(args.arms) - known:
        ap.error(f"unknown arms {sorted(set(args.arms) - known)}; choose from {sorted(known)}")
    device = pick_device(ap, args.device)
    apply_threads(args.threads)

    g = torch.Generator().manual_seed(args.seed)
    lower, upper = random_batch(args.batch_size, device, g), random_batch(args.batch_size, device, g)
    print(f"DARTS search step: {args.layers} cells x {args.channels} channels, batch {args.batch_size}, "
          f"32x32, device {device}" + ("" if device.type == "cuda" else f" ({torch.get_num_threads()} threads)")
          + f"; cg/neumann {args.implicit_iters} HVPs; {args.warmup} warm-up + {args.repeats} timed rounds",
          flush=True)
    if not args.no_check and {"hand-darts2", "ours-darts2"} <= set(args.arms):
        diff, n = check_agreement(args, device)
        print(f"check: ||ours-darts2 - hand-darts2|| / ||hand-darts2|| = {diff:.1e} (alpha hypergradient, "
              f"same state, float64, batch {n})", flush=True)

    arms = build_arms(args, device)
    times: dict[str, list[float]] = {name: [] for name in arms}
    names = list(arms)
    for r in range(args.warmup + args.repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            sync(device)
            t0 = time.perf_counter()
            arms[name](lower, upper)
            sync(device)
            if r >= args.warmup:
                times[name].append(time.perf_counter() - t0)
        done = ", ".join(f"{n} {times[n][-1]:.2f}s" for n in names) if r >= args.warmup else "warm-up"
        print(f"round {r + 1}/{args.warmup + args.repeats}: {done}", file=sys.stderr, flush=True)

    ref = "hand-darts2" if "hand-darts2" in arms else names[0]
    med = {n: statistics.median(t) for n, t in times.items()}
    head = f"{'arm':<14} {'time/step s':>11} {'x ' + ref:>14}"
    print(head + "\n" + "-" * len(head))
    for n in names:
        print(f"{n:<14} {med[n]:>11.3f} {med[n] / med[ref]:>14.3f}")
    print(f"(median of {args.repeats}; all times s: "
          + "; ".join(f"{n} " + ",".join(f"{t:.2f}" for t in times[n]) for n in names) + ")")
    if "ours-darts2" in med and "hand-darts2" in med:
        ratio = med["ours-darts2"] / med["hand-darts2"]
        print(f"ours-darts2 / hand-darts2 = {ratio:.3f} (target <= 1.10): {'OK' if ratio <= 1.10 else 'SLOWER'}",
              flush=True)

    if not args.no_memory:
        alloc = device.type == "cuda" or args.cpu_alloc
        what = ("peak alloc = CUDA max_memory_allocated - allocated before" if device.type == "cuda" else
                "peak alloc = torch.profiler memory events" if alloc else "peak alloc not measured on CPU (--cpu-alloc)")
        print(f"memory, one untimed step per arm ({what}; peak saved = bilevel.saved_tensor_bytes):")
        head = f"{'arm':<14} {'peak alloc MB':>14} {'x':>6} {'peak saved MB':>14} {'x':>6}"
        print(head + "\n" + "-" * len(head), flush=True)
        mem: dict[str, tuple[float, float]] = {}
        for n in [ref] + [m for m in names if m != ref]:
            step = arms[n]
            peak_a = peak_memory(lambda: step(lower, upper), device) if alloc else math.nan
            mem[n] = (peak_a, peak_saved(lambda: step(lower, upper)))
            a_mb, a_x = (f"{mem[n][0] / 2**20:.1f}", f"{mem[n][0] / mem[ref][0]:.2f}") if alloc else ("-", "-")
            print(f"{n:<14} {a_mb:>14} {a_x:>6} {mem[n][1] / 2**20:>14.1f} {mem[n][1] / mem[ref][1]:>6.2f}",
                  flush=True)
    if args.profile and "ours-darts2" in arms:
        profile_step(arms["ours-darts2"], lower, upper)
    return 0


def profile_step(step: Callable[[Batch, Batch], Any], lower: Batch, upper: Batch) -> None:
    """cProfile one step; print the bilevel/ functions and functional_call's reparametrisation
    (what ours adds to the forward/backward passes that hand-darts2 runs as well)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    prof.enable()
    step(lower, upper)
    prof.disable()
    stats = pstats.Stats(prof, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(r"bilevel/|stateless\.py|functional_call", 25)


if __name__ == "__main__":
    raise SystemExit(main())
