"""Data hyper-cleaning: learn one weight per training sample so that a classifier trained on
noisy labels does well on a small clean validation set. The upper variables are the per-sample
logits ``x_i`` (weights ``sigmoid(x_i)``), the lower variables a linear classifier.

    python examples/hyper_cleaning.py --method cg
    python examples/hyper_cleaning.py --method rad --option steps=20 --option lr=0.5

Prints, per upper step, the validation loss and how well the learned weights separate the samples
whose labels were corrupted (mean weight of clean vs corrupted samples).
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

import bilevel
from runtime.options import parse_option


def make_data(n_train: int, n_val: int, dim: int, classes: int, noise: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=g) * 2.0

    def draw(n):
        y = torch.randint(classes, (n,), generator=g)
        return centers[y] + torch.randn(n, dim, generator=g), y

    Xt, yt = draw(n_train)
    Xv, yv = draw(n_val)
    corrupted = torch.rand(n_train, generator=g) < noise
    yt = torch.where(corrupted, torch.randint(classes, (n_train,), generator=g), yt)
    return Xt, yt, Xv, yv, corrupted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="cg", choices=sorted(bilevel.METHODS), help="hypergradient method")
    ap.add_argument("--option", action="append", type=parse_option, default=[],
                    help="a method option as name=value (repeatable), e.g. iters=10")
    ap.add_argument("--upper-steps", type=int, default=40, help="upper (weight) updates")
    ap.add_argument("--lower-steps", type=int, default=20, help="lower SGD steps per upper step")
    ap.add_argument("--noise", type=float, default=0.4, help="fraction of training labels corrupted")
    ap.add_argument("--seed", type=int, default=0, help="data seed")
    args = ap.parse_args()

    Xt, yt, Xv, yv, corrupted = make_data(500, 100, 10, 4, args.noise, args.seed)
    W = torch.zeros(10, 4, requires_grad=True)
    b = torch.zeros(4, requires_grad=True)
    logits = torch.zeros(len(yt), requires_grad=True)

    def lower_loss(lo, up, batch):
        X, y = batch
        losses = F.cross_entropy(X @ lo["W"] + lo["b"], y, reduction="none")
        return (torch.sigmoid(up["x"]) * losses).mean() + 1e-3 * (lo["W"] ** 2).sum()

    def upper_loss(lo, up, batch):
        X, y = batch
        return F.cross_entropy(X @ lo["W"] + lo["b"], y)

    problem = bilevel.BilevelProblem(lower={"W": W, "b": b}, upper={"x": logits},
                                     lower_loss=lower_loss, upper_loss=upper_loss)
    loop = bilevel.BilevelLoop(problem, args.method, torch.optim.Adam([logits], lr=0.1),
                               torch.optim.SGD([W, b], lr=0.5), method_options=dict(args.option),
                               lower_steps=args.lower_steps)
    for _ in range(args.lower_steps * 5):  # warm start the classifier
        loop.lower_step((Xt, yt))
    for step in range(args.upper_steps):
        stats = loop.step((Xt, yt), (Xv, yv))
        if step % 10 == 0 or step == args.upper_steps - 1:
            w = torch.sigmoid(logits.detach())
            print(f"step {step:3d}  val loss {stats['upper_loss']:.4f}  mean weight clean "
                  f"{w[~corrupted].mean():.3f}  corrupted {w[corrupted].mean():.3f}  "
                  f"hypergrad {stats['hypergrad_time_s'] * 1e3:.1f} ms")
    acc = ((Xv @ W + b).argmax(1) == yv).float().mean()
    print(f"method {args.method}: validation accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
