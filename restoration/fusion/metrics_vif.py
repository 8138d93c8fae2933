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

Speed: the windows are separable (``fspecial``'s tail cut, values below ``eps x max``, removes
nothing for these sides and sigmas), so every local mean is two 1-D passes (``N + N`` products per
pixel instead of ``N^2``): OpenCV's ``sepFilter2D`` in float64 on CPU tensors, two 1-D ``conv2d``
elsewhere. ``vif`` filters the fused image's pyramid once for both sources.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["VIF_MIN_SIZE", "vif", "vifp", "matlab_gaussian_window", "gaussian_1d", "filter_valid"]

VIF_MIN_SIZE = 41
SIGMA_NSQ = 2.0
EPS = 1e-10
SCALES = 4


def matlab_gaussian_window(n: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """``fspecial('gaussian', n, n / 5)``: ``[n, n]``, sums to 1, tiny tails (< eps * max) zeroed."""
    r = torch.arange(n, dtype=dtype) - (n - 1) / 2.0
    sd = n / 5.0
    h = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2.0 * sd * sd))
    h = torch.where(h < torch.finfo(dtype).eps * h.max(), torch.zeros_like(h), h)
    return h / h.sum()


def gaussian_1d(n: int) -> torch.Tensor:
    """The 1-D factor ``[n]`` float64 of ``matlab_gaussian_window(n)`` (its outer square), sums to 1."""
    r = torch.arange(n, dtype=torch.float64) - (n - 1) / 2.0
    g = torch.exp(-(r * r) / (2.0 * (n / 5.0) ** 2))
    return g / g.sum()


def filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``[M, H, W]`` float64 filtered (valid) by the separable window ``outer(g, g)`` (``g`` ``[n]``,
    symmetric) -> ``[M, H-n+1, W-n+1]``: OpenCV on CPU tensors, ``conv2d`` elsewhere."""
    return _filter_opencv(x, g) if x.device.type == "cpu" else _filter_torch(x, g)


def _filter_opencv(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``filter_valid`` by ``cv2.sepFilter2D`` (float64, zero border) cropped to the valid positions."""
    n = g.numel()
    h = n // 2
    kernel = g.detach().cpu().double().numpy()
    arr = np.ascontiguousarray(x.detach().cpu().double().numpy())
    out = np.empty((arr.shape[0], arr.shape[1] - n + 1, arr.shape[2] - n + 1), dtype=np.float64)
    for i, plane in enumerate(arr):
        same = cv2.sepFilter2D(plane, cv2.CV_64F, kernel, kernel, borderType=cv2.BORDER_CONSTANT)
        out[i] = same[h:same.shape[0] - h, h:same.shape[1] - h]
    return torch.from_numpy(out).to(x.device)


def _filter_torch(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``filter_valid`` by two 1-D ``conv2d`` passes (rows, then columns) on ``x``'s device."""
    n = g.numel()
    k = g.to(x.device, torch.float64)
    y = F.conv2d(x.double().unsqueeze(1), k.view(1, 1, 1, n))
    return F.conv2d(y, k.view(1, 1, n, 1)).squeeze(1)


def _vif_sums(refs: torch.Tensor, dist: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Numerator and denominator sums of the pixel VIF of ``dist`` against each reference.

    Args:
        refs: ``[R, N, H, W]`` float64 references, ``[0, 255]``.
        dist: ``[N, H, W]`` float64 distorted (fused) images.

    Returns:
        ``(num, den)``, each ``[R, N]`` float64.
    """
    r, n = refs.shape[:2]
    num = torch.zeros(r, n, dtype=torch.float64, device=refs.device)
    den = torch.zeros_like(num)
    zero = torch.zeros((), dtype=torch.float64, device=refs.device)
    for scale in range(1, SCALES + 1):
        g = gaussian_1d(2 ** (SCALES + 1 - scale) + 1)
        if scale > 1:
            both = filter_valid(torch.cat([refs.flatten(0, 1), dist]), g)[:, ::2, ::2]
            refs, dist = both[:r * n].unflatten(0, (r, n)), both[r * n:]
        d = dist.unsqueeze(0)
        maps = torch.cat([refs.flatten(0, 1), dist, (refs * refs).flatten(0, 1), dist * dist,
                          (refs * d).flatten(0, 1)])
        filt = filter_valid(maps, g)
        size = filt.shape[-2:]
        mu1 = filt[:r * n].view(r, n, *size)
        mu2 = filt[r * n:r * n + n].unsqueeze(0)
        e11 = filt[r * n + n:2 * r * n + n].view(r, n, *size)
        e22 = filt[2 * r * n + n:2 * r * n + 2 * n].unsqueeze(0)
        e12 = filt[2 * r * n + 2 * n:].view(r, n, *size)
        s1 = (e11 - mu1 * mu1).clamp_min_(0.0)
        s2 = (e22 - mu2 * mu2).clamp_min_(0.0)
        s12 = e12 - mu1 * mu2
        # The reference's masking sequence (s1 < eps: g = 0, s1 = 0; s2 < eps: g = 0; g < 0: g = 0;
        # sv = max(sv, eps)) leaves a nonzero numerator term only where all three tests pass, and
        # g = 0 gives log10(1 + 0) = 0: the same values, computed once.
        gain = s12 / (s1 + EPS)
        sv = (s2 - gain * s12).clamp_min_(EPS)
        keep = (s1 >= EPS) & (s2 >= EPS) & (gain > 0)
        term = torch.log10(1.0 + gain * gain * s1 / (sv + SIGMA_NSQ))
        num = num + torch.where(keep, term, zero).flatten(2).sum(2)
        den = den + torch.where(s1 >= EPS, torch.log10(1.0 + s1 / SIGMA_NSQ), zero).flatten(2).sum(2)
    return num, den


def _check(ref: torch.Tensor, dist: torch.Tensor) -> None:
    if ref.shape != dist.shape or ref.ndim != 3:
        raise ValueError(f"VIF expects [N, H, W] tensors of equal shape, got {tuple(ref.shape)}, {tuple(dist.shape)}")
    if min(ref.shape[-2:]) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE}x{VIF_MIN_SIZE}, got {tuple(ref.shape[-2:])}")


def _ratio(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    out = num / den
    return torch.where(torch.isnan(out), torch.ones_like(out), out)


def vifp(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """Pixel-domain VIF of ``dist`` against ``ref``: ``[N, H, W]`` x2 (``[0, 255]``) -> ``[N]`` float64."""
    _check(ref, dist)
    num, den = _vif_sums(ref.double()[None], dist.double())
    return _ratio(num, den)[0]


def vif(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``vifp(a, fused) + vifp(b, fused)``: ``[N, H, W]`` x3 on ``[0, 255]`` -> ``[N]``. Higher is better."""
    _check(a, fused)
    _check(b, fused)
    num, den = _vif_sums(torch.stack([a.double(), b.double()]), fused.double())
    return _ratio(num, den).sum(0)
