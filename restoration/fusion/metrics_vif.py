"""VIF of a fused image: pixel-domain visual information fidelity summed over the two sources.

Conventions (those of the ``Evaluator`` of the MMIF-CDDFuse repository, its ``VIFF`` method):

* ``vif(F, A, B) = vifp(A, F) + vifp(B, F)``, each source the reference and the fused image the
  "distorted" one; higher is better; a perfect copy of both sources scores 2.
* ``vifp``: Sheikh & Bovik's pixel-domain VIF over 4 scales. Scale ``s = 1..4`` uses a
  MATLAB-``fspecial`` Gaussian window of side ``N = 2^(5-s) + 1`` (17, 9, 5, 3) and ``sigma = N/5``,
  ``valid`` filtering (no padding); from scale 2 on the images are filtered with that scale's window
  (valid) and decimated by 2 (``[::2, ::2]``) first. Noise variance ``sigma_n^2 = 2``,
  ``eps = 1e-10``; numerator and denominator are sums over all positions of all scales (log10),
  and a ``nan`` ratio (e.g. a constant source) counts as 1.
* Images on the ``[0, 255]`` scale, computed in float64. The 4 valid-filtered scales need both sides
  to be at least ``VIF_MIN_SIZE`` (41) pixels; smaller images raise ``ValueError``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["VIF_MIN_SIZE", "vif", "vifp", "matlab_gaussian_window"]

VIF_MIN_SIZE = 41
SIGMA_NSQ = 2.0
EPS = 1e-10


def matlab_gaussian_window(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``fspecial('gaussian', n, n / 5)``: ``[n, n]``, sums to 1, tiny tails (< eps * max) zeroed."""
    r = torch.arange(n, dtype=dtype) - (n - 1) / 2.0
    sd = n / 5.0
    h = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sd * sd))
    h = torch.where(h < torch.finfo(dtype).eps * h.max(), torch.zeros_like(h), h)
    return h / h.sum()


def _filter_valid(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    """``[N, H, W]`` filtered (valid) by the symmetric window ``[n, n]`` -> ``[N, H-n+1, W-n+1]``."""
    return F.conv2d(x.unsqueeze(1), win[None, None]).squeeze(1)


def vifp(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Pixel-domain VIF of ``dist`` against ``ref``: ``[N, H, W]`` x2 (``[0, 255]``) -> ``[N]`` float64."""
    if ref.shape != dist.shape or ref.ndim != 3:
        raise ValueError(f"vifp expects two [N, H, W] tensors of equal shape, got {tuple(ref.shape)}, {tuple(dist.shape)}")
    if min(ref.shape[-2:]) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE}x{VIF_MIN_SIZE}, got {tuple(ref.shape[-2:])}")
    ref, dist = ref.double(), dist.double()
    num = torch.zeros(ref.shape[0], dtype=torch.float64, device=ref.device)
    den = torch.zeros_like(num)
    zero = torch.zeros((), dtype=torch.float64, device=ref.device)
    for scale in range(1, 5):
        win = matlab_gaussian_window(2 ** (5 - scale) + 1).to(ref.device)
        if scale > 1:
            ref = _filter_valid(ref, win)[:, ::2, ::2]
            dist = _filter_valid(dist, win)[:, ::2, ::2]
        mu1, mu2 = _filter_valid(ref, win), _filter_valid(dist, win)
        s1 = (_filter_valid(ref * ref, win) - mu1 * mu1).clamp_min(0.0)
        s2 = (_filter_valid(dist * dist, win) - mu2 * mu2).clamp_min(0.0)
        s12 = _filter_valid(ref * dist, win) - mu1 * mu2
        # The masking sequence of the reference implementation, step by step.
        g = s12 / (s1 + EPS)
        sv = s2 - g * s12
        low1 = s1 < EPS
        g = torch.where(low1, zero, g)
        sv = torch.where(low1, s2, sv)
        s1 = torch.where(low1, zero, s1)
        low2 = s2 < EPS
        g = torch.where(low2, zero, g)
        sv = torch.where(low2, zero, sv)
        neg = g < 0
        sv = torch.where(neg, s2, sv)
        g = torch.where(neg, zero, g)
        sv = torch.where(sv <= EPS, torch.full_like(sv, EPS), sv)
        num = num + torch.log10(1.0 + g * g * s1 / (sv + SIGMA_NSQ)).flatten(1).sum(1)
        den = den + torch.log10(1.0 + s1 / SIGMA_NSQ).flatten(1).sum(1)
    out = num / den
    return torch.where(torch.isnan(out), torch.ones_like(out), out)


def vif(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``vifp(a, fused) + vifp(b, fused)``: ``[N, H, W]`` x3 on ``[0, 255]`` -> ``[N]``. Higher is better."""
    return vifp(a, fused) + vifp(b, fused)

