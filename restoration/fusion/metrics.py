"""Infrared/visible fusion metrics, computed as the ``Evaluator`` of the MMIF-CDDFuse repository
(``utils/Evaluator.py``) computes them, one value per image.

Conventions (the evaluator's; every one changes the numbers, so state them when reporting):

* **Scale and colour**: gray images on ``[0, 255]``. ``to_gray255`` turns ``[N, C, H, W]`` tensors in
  ``[0, 1]`` into what the evaluator reads back from 8-bit files: ``round(255 x)``, and for RGB
  OpenCV's ``BGR2GRAY`` ``0.299 R + 0.587 G + 0.114 B`` rounded (``quantize=False`` skips both
  roundings). 16-bit files enter as ``round(255 v / 65535)`` (OpenCV's 8-bit reading uses ``v >> 8``).
* **Sums over the two sources** (fused ``F``, infrared ``A``, visible ``B``): MI, VIF, Qabf (one
  joint index), SCD and SSIM add the two sources' values; CC and MSE average them; PSNR uses the
  averaged MSE and the PEAK OF THE FUSED IMAGE, ``10 log10(max(F)^2 / MSE)``, not 255.
* **EN**: Shannon entropy in bits (log2) of the 256-bin histogram of ``round(F)``.
* **SD**: population standard deviation (``ddof = 0``).
* **SF**: ``sqrt(mean(dx^2) + mean(dy^2))`` with forward differences, each mean over its own size.
* **AG**: ``mean(sqrt((gx^2 + gy^2) / 2))`` with central differences inside and one-sided ones at
  the border (``numpy.gradient`` / ``torch.gradient``).
* **MI**: ``MI(F, A) + MI(F, B)`` in NATS (natural log: ``sklearn.metrics.mutual_info_score``),
  every distinct grey value its own bin (256 bins for quantized images), clipped at 0; ``mi_bits``
  is the same in bits (``/ ln 2``), the unit of many published tables.
* **VIF**, **Qabf**, **SSIM**: see ``metrics_vif``, ``metrics_qabf``, ``metrics_ssim`` (SSIM: the
  evaluator's scikit-image call with its effective ``data_range = 2``; ``textbook_ssim=True`` gives
  Wang et al.'s Gaussian SSIM with range 255 instead).
* **SCD**: ``corr(A, F - B) + corr(B, F - A)`` (Pearson). **CC**: ``(corr(A, F) + corr(B, F)) / 2``.

Directions (``METRIC_DIRECTIONS``): all higher-is-better except ``mse`` (lower).

Other published definitions of a key are named conventions (``metrics_conventions``:
``convention="didfuse"``); the default, ``"cddfuse"``, is the evaluator's, described above.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch

from restoration.fusion.metrics_conventions import CONVENTIONS, DEFAULT_CONVENTION
from restoration.fusion.metrics_qabf import qabf
from restoration.fusion.metrics_ssim import ssim_evaluator, ssim_textbook
from restoration.fusion.metrics_vif import VIF_MIN_SIZE, vif

__all__ = [
    "METRIC_NAMES", "METRIC_DIRECTIONS", "FUSION_METRICS", "to_gray255", "fusion_metrics",
    "entropy", "std", "spatial_frequency", "average_gradient", "mutual_information",
    "mutual_information_bits", "vif", "qabf",
    "scd", "ssim_evaluator", "ssim_textbook", "cc", "psnr", "mse", "VIF_MIN_SIZE",
]

#: OpenCV's BGR2GRAY weights, in R, G, B order.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


def to_gray255(x: torch.Tensor, quantize: bool = True) -> torch.Tensor:
    """``[N, 1 or 3, H, W]`` (or ``[N, H, W]``) in ``[0, 1]`` -> ``[N, H, W]`` float64 on ``[0, 255]``."""
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected [N, 1 or 3, H, W] images in [0, 1], got {tuple(x.shape)}")
    v = x.detach().double().clamp(0.0, 1.0) * 255.0
    if quantize:
        v = torch.round(v)
    if v.shape[1] == 3:
        v = _opencv_gray(v[:, 0], v[:, 1], v[:, 2])
        return torch.round(v) if quantize else v
    return v[:, 0]


def _opencv_gray(r: torch.Tensor, g: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """OpenCV's float32 ``BGR2GRAY`` bit for bit: ``fma(R, cr, fma(B, cb, G * cg))`` in float32.

    Exact float32 products fit in float64, so each float64 step rounded to float32 is the fused
    multiply-add OpenCV's vector path performs (a plain float64 sum differs on a few .5 ties).
    """
    cr, cg, cb = (float(torch.tensor(c, dtype=torch.float32)) for c in GRAY_WEIGHTS)
    t = (g * cg).float().double()
    t = (b * cb + t).float().double()
    return (r * cr + t).float().double()


def _flat(x: torch.Tensor) -> torch.Tensor:
    if x.ndim != 3:
        raise ValueError(f"fusion metrics take gray [N, H, W] images on [0, 255], got {tuple(x.shape)}")
    return x.double().flatten(1)


def entropy(fused: torch.Tensor) -> torch.Tensor:
    """EN in bits: ``[N, H, W]`` on ``[0, 255]`` -> ``[N]``. Higher is better."""
    q = torch.round(_flat(fused)).clamp(0, 255).long()
    hist = torch.zeros(q.shape[0], 256, dtype=torch.float64, device=q.device)
    hist.scatter_add_(1, q, torch.ones_like(q, dtype=torch.float64))
    p = hist / q.shape[1]
    return -(p * torch.log2(torch.where(p > 0, p, torch.ones_like(p)))).sum(1)


def std(fused: torch.Tensor) -> torch.Tensor:
    """SD (population): ``[N, H, W]`` -> ``[N]``. Higher is better."""
    return _flat(fused).std(dim=1, unbiased=False)


def spatial_frequency(fused: torch.Tensor) -> torch.Tensor:
    """SF: ``[N, H, W]`` -> ``[N]``. Higher is better."""
    f = fused.double()
    rf = (f[:, :, 1:] - f[:, :, :-1]).pow(2).flatten(1).mean(1)
    cf = (f[:, 1:, :] - f[:, :-1, :]).pow(2).flatten(1).mean(1)
    return torch.sqrt(rf + cf)


def average_gradient(fused: torch.Tensor) -> torch.Tensor:
    """AG: ``[N, H, W]`` (``H, W >= 2``) -> ``[N]``. Higher is better."""
    f = fused.double()
    gy, gx = torch.gradient(f, dim=(1, 2))
    return torch.sqrt((gx * gx + gy * gy) / 2.0).flatten(1).mean(1)


def _mi_pair(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mutual information in nats of two label vectors ``[P]`` (every distinct value a label)."""
    ux, lx = torch.unique(x, return_inverse=True)
    uy, ly = torch.unique(y, return_inverse=True)
    return _mi_from_labels(lx, ly, len(ux), len(uy))


def _mi_from_labels(lx: torch.Tensor, ly: torch.Tensor, nx: int, ny: int) -> torch.Tensor:
    """MI in nats of integer labels ``[P]`` in ``[0, nx)`` and ``[0, ny)`` (unused labels add nothing)."""
    joint = torch.bincount(lx * ny + ly, minlength=nx * ny).double()
    pxy = joint.view(nx, ny) / float(lx.numel())
    px, py = pxy.sum(1, keepdim=True), pxy.sum(0, keepdim=True)
    nz = pxy > 0
    terms = torch.where(nz, pxy * torch.log(torch.where(nz, pxy, torch.ones_like(pxy)) / (px * py)), torch.zeros_like(pxy))
    return terms.sum().clamp_min(0.0)


def _grey_levels(x: torch.Tensor) -> Optional[torch.Tensor]:
    """``[P]`` as int64 levels when every value is an integer in ``[0, 255]`` (8-bit images), else None."""
    q = torch.round(x)
    if bool((q == x).all()) and bool((q >= 0).all()) and bool((q <= 255).all()):
        return q.long()
    return None


def _mi_levels(f: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """``MI(f, src)`` in nats of ``[P]`` x2 float64: 256-level joint histogram for 8-bit values (the
    same sums as one label per distinct value), ``torch.unique`` labels otherwise."""
    lf, ls = _grey_levels(f), _grey_levels(src)
    if lf is None or ls is None:
        return _mi_pair(f, src)
    return _mi_from_labels(lf, ls, 256, 256)


def mutual_information(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MI in nats, ``MI(F, A) + MI(F, B)``: ``[N, H, W]`` x3 -> ``[N]``. Higher is better."""
    f, a, b = _flat(fused), _flat(a), _flat(b)
    return torch.stack([_mi_levels(fi, ai) + _mi_levels(fi, bi) for fi, ai, bi in zip(f, a, b)])


def mutual_information_bits(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mutual_information`` in bits (``/ ln 2``), as DIDFuse's and many MATLAB tables report it:
    ``[N, H, W]`` x3 -> ``[N]``. Higher is better."""
    return mutual_information(fused, a, b) / math.log(2.0)


def _corr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation per row of ``[N, P]`` x2 -> ``[N]`` (``nan`` for a constant row)."""
    xc, yc = x - x.mean(1, keepdim=True), y - y.mean(1, keepdim=True)
    return (xc * yc).sum(1) / torch.sqrt((xc * xc).sum(1) * (yc * yc).sum(1))


def scd(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SCD, ``corr(A, F - B) + corr(B, F - A)``: ``[N, H, W]`` x3 -> ``[N]``. Higher is better."""
    f, a, b = _flat(fused), _flat(a), _flat(b)
    return _corr(a, f - b) + _corr(b, f - a)


def cc(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """CC, ``(corr(A, F) + corr(B, F)) / 2``: ``[N, H, W]`` x3 -> ``[N]``. Higher is better."""
    f, a, b = _flat(fused), _flat(a), _flat(b)
    return (_corr(a, f) + _corr(b, f)) / 2.0


def mse(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MSE on ``[0, 255]`` averaged over the sources: ``[N, H, W]`` x3 -> ``[N]``. Lower is better."""
    f, a, b = _flat(fused), _flat(a), _flat(b)
    return ((a - f).pow(2).mean(1) + (b - f).pow(2).mean(1)) / 2.0


def psnr(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB with the fused image's own peak: ``[N, H, W]`` x3 -> ``[N]``. Higher is better."""
    peak = _flat(fused).amax(1)
    return 10.0 * torch.log10(peak * peak / mse(fused, a, b))


MetricFn = Callable[..., torch.Tensor]
#: name -> (function, number of images it takes: 1 = fused only, 3 = fused, infrared, visible).
FUSION_METRICS: dict[str, tuple[MetricFn, int]] = {
    "en": (entropy, 1), "sd": (std, 1), "sf": (spatial_frequency, 1), "ag": (average_gradient, 1),
    "mi": (mutual_information, 3), "mi_bits": (mutual_information_bits, 3), "vif": (vif, 3), "qabf": (qabf, 3),
    "scd": (scd, 3), "ssim": (ssim_evaluator, 3), "cc": (cc, 3), "psnr": (psnr, 3), "mse": (mse, 3),
}
METRIC_NAMES: tuple[str, ...] = tuple(FUSION_METRICS)
#: True: higher is better.
METRIC_DIRECTIONS: dict[str, bool] = {name: name != "mse" for name in METRIC_NAMES}


def fusion_metrics(
    fused: torch.Tensor,
    infrared: torch.Tensor,
    visible: torch.Tensor,
    names: Optional[Sequence[str]] = None,
    quantize: bool = True,
    textbook_ssim: bool = False,
    convention: str = DEFAULT_CONVENTION,
) -> dict[str, torch.Tensor]:
    """All (or ``names``) fusion metrics of a batch.

    Args:
        fused, infrared, visible: ``[N, 1 or 3, H, W]`` in ``[0, 1]`` (RGB is turned to gray).
        names: subset of ``METRIC_NAMES``; ``vif`` needs ``H, W >= VIF_MIN_SIZE``.
        quantize: score what 8-bit files would hold (the evaluator's setting).
        textbook_ssim: Wang et al.'s SSIM instead of the evaluator's call.
        convention: a name of ``CONVENTIONS`` (the definitions of a published table).

    Returns:
        name -> ``[N]`` float64 tensor.
    """
    names = METRIC_NAMES if names is None else tuple(names)
    unknown = [n for n in names if n not in FUSION_METRICS]
    if unknown:
        raise ValueError(f"unknown fusion metric(s) {unknown}; known: {list(METRIC_NAMES)}")
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown fusion metric convention {convention!r}; known: {list(CONVENTIONS)}")
    overrides = CONVENTIONS[convention].overrides
    f, a, b = (to_gray255(t, quantize) for t in (fused, infrared, visible))
    if not f.shape == a.shape == b.shape:
        raise ValueError(f"fused, infrared and visible sizes differ: {tuple(f.shape)}, {tuple(a.shape)}, {tuple(b.shape)}")
    out = {}
    for name in names:
        if name == "mi_bits" and "mi" in out:  # one joint histogram for both units
            out[name] = out["mi"] / math.log(2.0)
            continue
        fn, arity = FUSION_METRICS[name]
        fn = overrides.get(name, fn)
        if name == "ssim" and textbook_ssim:
            fn = ssim_textbook
        out[name] = fn(f) if arity == 1 else fn(f, a, b)
    return out
