"""Low-light fast adaptation (``--task lowlight --recipe adapt``): PSNR/SSIM after K adaptation steps on a
few images of a new scene, from three starts, on the embedded held-out scenes and on real folders.

    python -m benchmarks.lowlight_adapt                       # the table of docs/lowlight.md (minutes, 1 thread)
    python -m benchmarks.lowlight_adapt --quick               # smaller budgets, a smoke run
    python -m benchmarks.lowlight_adapt --lol-pair LOW.png HIGH.png --real DIR

Starts, all the network of the shipped reference genotype (``ruas_reference.json``):

* ``meta``: the initialisation meta-learned by the recipe's search (its settings: ``fomaml``, 5 inner
  SGD steps of 0.01, meta-batch 4 episodes of 4 support + 4 query crops of 48 px, 160 meta steps)
  over the six meta-training cameras of the embedded data;
* ``pooled``: the same network trained normally (the ``default`` recipe's training: Adam 1e-3, cosine
  to 1e-5, batch 8, crops of 48 px, L1 + 0.1 x RUAS's losses) on the same six cameras' images pooled,
  for as many image-crop gradient passes as meta-training took (``12 x --meta-steps`` steps of 8);
* ``scratch``: random initial weights.

Adaptation: what ``train.py --recipe adapt --max-steps K`` does, K plain SGD steps of 0.01, each on 4
random 48 px crops of the scene's adaptation images (``restoration.lowlight.scenes.SceneCrops``, the same
crops for every start). Scored (full images, RGB, LOL convention) after K = ``--ks`` steps on images the
adaptation never sees:

* embedded held-out scenes: each held-out camera on the held-out photographs (chelsea, coffee):
  adapted on 4 images of 96 px from the left halves, scored on 8 from the right halves;
* ``--lol-pair LOW HIGH``: one real paired image (e.g. LOL eval15 ``778``): adapted on its left half,
  scored on its right half;
* ``--real DIR``: real low-light photographs without references (e.g. DICM): adapted on the first half
  of the files, scored on the others with no reference: RUAS's unsupervised loss (IEM + NRM, lower is
  what the adaptation optimises, not a quality measure) and the mean brightness of the output.
"""
from __future__ import annotations

import argparse
import copy
import datetime
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import ConcatDataset, Dataset

import bilevel
from benchmarks.machine import machine
from commands.data import loader
from datasets import UnpairedFolder, read_image
from datasets.synthetic_cameras import HELD_OUT_CAMERAS
from datasets.views import CropFlipView
from restoration.lowlight.adapt_data import embedded_scenes, held_out_scene
from restoration.lowlight.losses import ruas_losses
from restoration.lowlight.scenes import Materialised, SceneCrops
from restoration.lowlight.task import LowLightTask
from restoration.metrics import psnr, ssim
from runtime.threads import add_threads_flag, apply_threads
from tasks.training import make_optimizer

Scorer = Callable[[nn.Module], dict[str, float]]


def _net(task: LowLightTask, s: Any, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return task.reference_network(s)


def adapt_settings(task: LowLightTask, stage: str, inner: dict[str, Any]) -> Any:
    """The recipe adapt's settings for ``stage`` with the inner steps ``inner`` (``lr``, ``steps``) changed."""
    s = task.settings(stage, "adapt")
    if "lr" in inner:
        s = s.replace({"lr": inner["lr"]})
    if stage == "search":
        s = s.replace({"method_options": {**s.method_options, **inner}})
    return s


def meta_train(task: LowLightTask, steps: int, method: str, seed: int,
               inner: dict[str, Any]) -> tuple[nn.Module, float, int]:
    """The recipe adapt's search for ``steps`` meta steps: (network with the learned init, seconds, passes)."""
    s = adapt_settings(task, "search", inner).replace({"method": method, "seed": seed})
    torch.manual_seed(s.seed)
    data = task.search_data(s)
    setup = task.build_search(s, torch.device("cpu"))
    loop = bilevel.GroupedLoop(setup.groups, s.method, s.method_options)
    start, done, epoch = time.perf_counter(), 0, 0
    while done < steps:
        for batch in loader(data.lower, s.batch_size, s.seed, epoch):
            loop.step(*task.search_batches(batch, batch, s))
            done += 1
            if done == steps:
                break
        epoch += 1
    inner = int(s.method_options.get("steps", 5))
    passes = steps * s.batch_size * (inner * s.shots + s.queries)  # crops through forward + backward
    return task.search_model(setup, s), time.perf_counter() - start, passes


def pooled_train(task: LowLightTask, crop_passes: int, seed: int) -> tuple[nn.Module, float, int]:
    """The default recipe's training on the meta-training cameras pooled, ``crop_passes`` crops in all."""
    s = task.settings("train", "default").replace({"seed": seed})
    scenes, _ = embedded_scenes(task.settings("search", "adapt"))
    data = CropFlipView(ConcatDataset(scenes), None, s.crop, s.flip, s.seed)
    steps = max(1, crop_passes // s.batch_size)
    net = _net(task, s, seed)
    opt = make_optimizer("adam", net.parameters(), s.lr, s.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=s.lr_min)
    start, done, epoch = time.perf_counter(), 0, 0
    while done < steps:
        for batch in loader(data, s.batch_size, s.seed, epoch):
            loss = task.train_losses(net, batch, s)["loss"]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            if done == steps:
                break
        epoch += 1
    return net, time.perf_counter() - start, steps


def adapt_curve(task: LowLightTask, start: nn.Module, crops: SceneCrops, ks: Sequence[int],
                score: Scorer, inner: dict[str, Any]) -> dict[int, dict[str, float]]:
    """Scores after each K of ``ks`` plain SGD steps (the recipe adapt's training) on ``crops``' batches."""
    s = adapt_settings(task, "train", inner)
    net = copy.deepcopy(start)
    opt = make_optimizer(s.train_optimizer, net.parameters(), s.lr, s.weight_decay, s.momentum)
    out = {0: score(net)} if 0 in ks else {}
    for k in range(1, max(ks) + 1):
        batch = next(iter(loader(crops, s.batch_size, s.seed, k - 1)))
        loss = task.train_losses(net, batch, s)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if k in ks:
            out[k] = score(net)
    return out


@torch.no_grad()
def reference_scores(net: nn.Module, images: Sequence[dict[str, Tensor]]) -> dict[str, float]:
    """Mean PSNR / SSIM of the enhanced ``images`` (each ``input``/``target`` ``[3, H, W]``)."""
    p, q = [], []
    for item in images:
        out = net(item["input"][None])["out"].clamp(0, 1)
        p.append(float(psnr(out, item["target"][None])[0]))
        q.append(float(ssim(out, item["target"][None])[0]))
    return {"psnr": sum(p) / len(p), "ssim": sum(q) / len(q)}


@torch.no_grad()
def no_reference_scores(net: nn.Module, images: Sequence[dict[str, Tensor]]) -> dict[str, float]:
    """Mean RUAS unsupervised loss (IEM + NRM) and mean output brightness over ``images``."""
    loss, light = [], []
    for item in images:
        outputs = net(item["input"][None])
        terms = ruas_losses(outputs, item["input"][None])
        loss.append(float(terms["iem"] + terms["nrm"]))
        light.append(float(outputs["out"].clamp(0, 1).mean()))
    return {"ruas_loss": sum(loss) / len(loss), "brightness": sum(light) / len(light)}


class _Items(Dataset):
    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


def embedded_case(task: LowLightTask, camera: str) -> tuple[SceneCrops, Scorer, str]:
    s = task.settings("train", "adapt").replace({"held_out_camera": camera})
    adapt_images = Materialised(held_out_scene(s, "left"))
    evaluation = Materialised(held_out_scene(s, "right")).items
    return (SceneCrops(adapt_images, s.batch_size, s.crop, s.flip, s.seed),
            lambda net: reference_scores(net, evaluation), f"embedded held-out camera {camera}")


def lol_pair_case(task: LowLightTask, low: str, high: str) -> tuple[SceneCrops, Scorer, str]:
    s = task.settings("train", "adapt")
    x, y = read_image(low), read_image(high)
    half = x.shape[-1] // 2
    left = {"input": x[..., :half], "target": y[..., :half], "name": "left"}
    right = {"input": x[..., half:], "target": y[..., half:], "name": "right"}
    return (SceneCrops(_Items([left]), s.batch_size, s.crop, s.flip, s.seed),
            lambda net: reference_scores(net, [right]), f"real pair {Path(low).name} (adapt: left half, score: right)")


def real_case(task: LowLightTask, folder: str) -> tuple[SceneCrops, Scorer, str]:
    s = task.settings("train", "adapt")
    base = UnpairedFolder(folder)
    n = len(base)
    adapt_idx, score_idx = list(range(n // 2)), list(range(n // 2, n))
    scored = [base[i] for i in score_idx]
    return (SceneCrops(base, s.batch_size, s.crop, s.flip, s.seed, adapt_idx),
            lambda net: no_reference_scores(net, scored),
            f"real unpaired {folder} (adapt: {len(adapt_idx)} files, score: the other {len(score_idx)}, no reference)")


def table(title: str, curves: dict[str, dict[int, dict[str, float]]], ks: Sequence[int]) -> str:
    keys = list(next(iter(next(iter(curves.values())).values())))
    lines = [f"\n{title}", "| start | " + " | ".join(f"K={k}" for k in ks) + " |",
             "|---|" + "---|" * len(ks)]
    for name, curve in curves.items():
        cells = [" / ".join(f"{curve[k][m]:.3f}" if m != "psnr" else f"{curve[k][m]:.2f}" for m in keys) for k in ks]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append(f"(cells: {' / '.join(keys)})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meta-steps", type=int, default=None,
                        help="meta-training steps (default: the recipe's, 10 epochs of 16: 160)")
    parser.add_argument("--method", default="fomaml", help="meta-learning method (default fomaml)")
    parser.add_argument("--inner-lr", type=float, default=None,
                        help="step size of the inner and adaptation steps (default: the recipe's, 0.01)")
    parser.add_argument("--inner-steps", type=int, default=None, help="inner steps of meta-training (default 5)")
    parser.add_argument("--ks", default="0,1,2,5,10,20", help="adaptation steps scored (default 0,1,2,5,10,20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="20 meta steps, K up to 5: a smoke run")
    parser.add_argument("--lol-pair", nargs=2, default=None, metavar=("LOW", "HIGH"),
                        help="a real paired image: adapted on its left half, scored on its right half")
    parser.add_argument("--real", default=None, metavar="DIR",
                        help="a folder of real low-light images without references")
    add_threads_flag(parser)
    args = parser.parse_args(argv)
    threads = apply_threads(args.threads if args.threads != "auto" else "1")
    ks = [int(k) for k in args.ks.split(",")]
    task = LowLightTask()
    recipe = task.settings("search", "adapt")
    meta_steps = args.meta_steps or recipe.epochs * (recipe.episodes // recipe.batch_size)
    if args.quick:
        meta_steps, ks = 20, [k for k in ks if k <= 5]
    inner = {k: v for k, v in (("lr", args.inner_lr), ("steps", args.inner_steps)) if v is not None}
    print(f"# lowlight fast adaptation: {machine()}; {threads}; device cpu; torch {torch.__version__}; "
          f"python {platform.python_version()}; {datetime.date.today().isoformat()}")
    meta, meta_s, passes = meta_train(task, meta_steps, args.method, args.seed, inner)
    pooled, pooled_s, pooled_steps = pooled_train(task, passes, args.seed)
    rule = adapt_settings(task, "search", inner)
    print(f"inner and adaptation steps: plain SGD at {rule.lr}; meta-training: {rule.method_options['steps']} inner "
          f"steps")
    print(f"meta: {args.method}, {meta_steps} meta steps ({passes} crop passes) in {meta_s:.0f} s; pooled: "
          f"{pooled_steps} Adam steps of 8 crops in {pooled_s:.0f} s; scratch: random weights (seed {args.seed + 1})")
    starts = {"meta (recipe adapt)": meta, "pooled (recipe default)": pooled,
              "scratch": _net(task, task.settings("train", "adapt"), args.seed + 1)}
    cases = [embedded_case(task, c.name) for c in HELD_OUT_CAMERAS]
    if args.lol_pair:
        cases.append(lol_pair_case(task, *args.lol_pair))
    if args.real:
        cases.append(real_case(task, args.real))
    for crops, score, title in cases:
        t = time.perf_counter()
        curves = {name: adapt_curve(task, net, crops, ks, score, inner) for name, net in starts.items()}
        print(table(f"{title} ({time.perf_counter() - t:.0f} s)", curves, ks))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
