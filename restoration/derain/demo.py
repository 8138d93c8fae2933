"""A short end-to-end check on the embedded default, until the task is wired into the commands:
train a discrete deraining network (the reference cell by default) for a few hundred steps and
compare it with the rainy input and the classical baselines on the synthetic test split.

    python -m restoration.derain.demo --steps 300            # single images
    python -m restoration.derain.demo --steps 300 --frames 3 # synthetic video, 3-frame windows
    python -m restoration.derain.demo --steps 300 --frames 1 --video --eval-window 3  # same frames, one at a time

Prints one table row per method: Y-PSNR / Y-SSIM (MATLAB convention), and the wall time.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from restoration.complexity import describe_size
from restoration.derain import data as ddata
from restoration.derain.baseline import median_derain, temporal_median
from restoration.derain.evaluation import derain_metrics, restore
from restoration.derain.genotype import reference_genotype
from restoration.derain.losses import derain_loss
from restoration.derain.model import DerainNet, network_input


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--frames", type=int, default=1)
    p.add_argument("--video", action="store_true", help="synthetic video even with --frames 1")
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--cells", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-window", type=int, default=None,
                   help="video: score only frames with a full window of this size (default --frames), so "
                        "that a single-frame model is scored on the same frames as a multi-frame one")
    a = p.parse_args(argv)
    torch.manual_seed(a.seed)
    start = time.time()
    settings = {"frames": a.frames, "video": a.video, "crop": a.crop, "seed": a.seed}
    train, _ = ddata.train_sets(settings)
    test = ddata.test_set(None, settings)
    if a.eval_window and hasattr(test, "index"):  # synthetic video: keep frames with a full eval window
        r = a.eval_window // 2
        test.index = [(v, k) for v, k in test.index if r <= k < test.length - r]
    net = DerainNet(reference_genotype(), a.channels, a.cells, a.frames)
    example = network_input(train[0])[None]
    print(f"network: {describe_size(net, example)}; train items {len(train)}, test items {len(test)}")
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.steps, a.lr * 0.05)
    step, epoch = 0, 0
    while step < a.steps:
        train.set_epoch(epoch)
        g = torch.Generator().manual_seed(a.seed * 1000 + epoch)
        for batch in DataLoader(train, a.batch_size, shuffle=True, generator=g, drop_last=True):
            loss = derain_loss(net(network_input(batch))["out"], batch["target"])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 50 == 0:
                print(f"step {step} loss {loss.item():.4f} ({time.time() - start:.0f} s)", flush=True)
            if step >= a.steps:
                break
        epoch += 1
    rows: dict[str, list[torch.Tensor]] = {"rainy input": [], "median 5x5": [], "network": []}
    if a.frames > 1:
        rows["temporal median"] = []
    for batch in DataLoader(test, 4):
        target = batch["target"]
        rows["rainy input"].append(torch.stack(list(derain_metrics(batch["input"], target).values())))
        rows["median 5x5"].append(torch.stack(list(derain_metrics(median_derain(batch["input"]), target).values())))
        if a.frames > 1:
            tm = temporal_median(batch["frames"])
            rows["temporal median"].append(torch.stack(list(derain_metrics(tm, target).values())))
        out = torch.stack([it["output"] for it in restore(net, batch)])
        rows["network"].append(torch.stack(list(derain_metrics(out, target).values())))
    print(f"{'method':<16} {'Y-PSNR':>7} {'Y-SSIM':>7}   (synthetic test, {len(test)} items)")
    for name, vals in rows.items():
        m = torch.cat(vals, 1).mean(1)
        print(f"{name:<16} {m[0].item():7.2f} {m[1].item():7.4f}")
    print(f"wall time {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
