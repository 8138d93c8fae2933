"""Paired crop/flip consistency and padding."""

from __future__ import annotations

import torch

from datasets import pad_to_multiple, paired_random_crop, paired_random_flip, unpad


def test_crop_and_flip_apply_the_same_window():
    a = torch.rand(3, 13, 17, generator=torch.Generator().manual_seed(0))
    b = 2.0 * a[:1]
    for seed in range(8):
        g = torch.Generator().manual_seed(seed)
        ca, cb = paired_random_crop(a, b, (5, 6), g)
        fa, fb = paired_random_flip(ca, cb, g)
        assert fa.shape == (3, 5, 6) and fb.shape == (1, 5, 6)
        assert torch.equal(fb, 2.0 * fa[:1])


def test_seeded_generator_is_reproducible():
    a, b = torch.rand(3, 16, 16), torch.rand(3, 16, 16)
    first = paired_random_crop(a, b, 4, torch.Generator().manual_seed(3))
    again = paired_random_crop(a, b, 4, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(first, again))


def test_pad_to_multiple_and_unpad():
    x = torch.rand(2, 3, 10, 13)
    p, hw = pad_to_multiple(x, 8)
    assert p.shape == (2, 3, 16, 16) and hw == (10, 13)
    assert torch.equal(unpad(p, hw), x)
    assert torch.equal(p[..., 10, :13], x[..., 8, :])  # reflected row
    tiny, hw = pad_to_multiple(torch.rand(3, 2, 3), 8)  # too small to reflect: replicate
    assert tiny.shape == (3, 8, 8) and hw == (2, 3)
    same, _ = pad_to_multiple(x, 1)
    assert same is x
