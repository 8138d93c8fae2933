"""Named conventions of the fusion metrics: which definition each key uses in a published table.

The same key means different numbers in different papers' tables. A convention names the set of
definitions one table used; ``fusion_metrics(..., convention=NAME)`` scores with it and
``metrics.json`` records its name.

* ``cddfuse`` (the default): the ``Evaluator`` of the MMIF-CDDFuse repository, every definition in
  ``metrics`` (SD population, SF with per-direction means, AG the mean gradient, MI in nats as
  ``mi`` and in bits as ``mi_bits``).
* ``didfuse``: the definitions behind Table 4 of DIDFuse (Zhao et al., IJCAI 2020), found by
  scoring the fused images that paper's repository publishes (``Test_result/{TNO,FLIR,NIR}_IJCAI``)
  against its three tables (``benchmarks/fusion_scoring.py``). EN, VIF and MI (reported in BITS:
  our ``mi_bits``) are the evaluator's; two keys differ:

  - **SD** about the COLUMN means: ``sqrt(sum_ij (F_ij - mean_i F_ij)^2 / (H W))`` (MATLAB's
    ``F - mean(F)``, whose ``mean`` of a matrix is a row of column means). It reproduces the
    three tables' SD to the printed digit (TNO 42.657, FLIR 46.888, RGB-NIR 57.557).
  - **AG** summed and divided by ``(H - 1)(W - 1)`` instead of ``H W`` (the common MATLAB
    ``avg_gradient`` script, central differences inside and one-sided at the border): TNO 4.294,
    FLIR 5.574, RGB-NIR 8.741, as printed.

  SF of that table is NOT reproduced by any definition we tried (per-direction or whole-image
  means, diagonals, wrap-around or zero borders, 2-pixel and second differences, 8-bit wrap or
  saturation, resizing): it keeps the evaluator's definition, and ``benchmarks/fusion_scoring.py``
  shows the gap (TNO 11.28 against 13.126 printed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

__all__ = ["CONVENTIONS", "DEFAULT_CONVENTION", "Convention", "std_column_means", "average_gradient_matlab"]

MetricFn = Callable[..., torch.Tensor]


def std_column_means(fused: torch.Tensor) -> torch.Tensor:
    """SD about each column's mean: ``[N, H, W]`` on ``[0, 255]`` -> ``[N]`` float64. Higher is better."""
    if fused.ndim != 3:
        raise ValueError(f"fusion metrics take gray [N, H, W] images on [0, 255], got {tuple(fused.shape)}")
    f = fused.double()
    dev = f - f.mean(dim=1, keepdim=True)
    return torch.sqrt((dev * dev).flatten(1).mean(1))


def average_gradient_matlab(fused: torch.Tensor) -> torch.Tensor:
    """AG as the MATLAB ``avg_gradient`` script: ``sum(sqrt((gx^2 + gy^2) / 2)) / ((H - 1)(W - 1))``
    with ``gradient``'s differences: ``[N, H, W]`` (``H, W >= 2``) -> ``[N]``. Higher is better."""
    if fused.ndim != 3:
        raise ValueError(f"fusion metrics take gray [N, H, W] images on [0, 255], got {tuple(fused.shape)}")
    f = fused.double()
    h, w = f.shape[-2:]
    gy, gx = torch.gradient(f, dim=(1, 2))
    return torch.sqrt((gx * gx + gy * gy) / 2.0).flatten(1).sum(1) / ((h - 1) * (w - 1))


@dataclass(frozen=True)
class Convention:
    """A named set of definitions: ``overrides`` (key -> function of the same arity as the default
    one, see ``metrics.FUSION_METRICS``) replace the evaluator's; ``note`` says what differs."""

    name: str
    note: str
    overrides: dict[str, MetricFn] = field(default_factory=dict)


DEFAULT_CONVENTION = "cddfuse"

CONVENTIONS: dict[str, Convention] = {
    "cddfuse": Convention(
        "cddfuse",
        "the MMIF-CDDFuse Evaluator's definitions: SD population, SF from the mean squared row and column "
        "differences, AG the mean gradient, MI in nats (mi) and bits (mi_bits)"),
    "didfuse": Convention(
        "didfuse",
        "DIDFuse's Table 4 (IJCAI 2020): SD about the column means, AG summed over (H-1)(W-1), MI read in bits "
        "(mi_bits); EN, VIF, SF and the rest as the MMIF-CDDFuse Evaluator (the table's SF is not reproduced)",
        {"sd": std_column_means, "ag": average_gradient_matlab}),
}
