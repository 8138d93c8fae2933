"""The direct implementations the fast fusion metrics replaced, kept for tests and for
``benchmarks/fusion_scoring.py``'s "before" timings only: VIF by 2-D float64 convolution with the full
``fspecial`` windows and the reference's step-by-step masking, Qabf with 2-D ``conv2d`` Sobel
responses, MI with one ``torch.unique`` label per distinct value. Same conventions as
``restoration.fusion.metrics`` (``[N, H, W]`` gray images on ``[0, 255]`` -> ``[N]`` float64).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restoration.fusion.metrics_qabf import edge_preservation
from restoration.fusion.metrics_vif import EPS, SIGMA_NSQ, matlab_gaussian_window

__all__ = ["vif_direct", "qabf_direct", "mutual_information_direct", "REFERENCE_METRICS"]


def _filter2d_valid(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x.unsqueeze(1), win[None, None]).squeeze(1)


def _vifp_direct(ref: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    ref, dist = ref.double(), dist.double()
    num = torch.zeros(ref.shape[0], dtype=torch.float64)
    den = torch.zeros_like(num)
    zero = torch.zeros((), dtype=torch.float64)
    for scale in range(1, 5):
        win = matlab_gaussian_window(2 ** (5 - scale) + 1)
        if scale > 1:
            ref = _filter2d_valid(ref, win)[:, ::2, ::2]
            dist = _filter2d_valid(dist, win)[:, ::2, ::2]
        mu1, mu2 = _filter2d_valid(ref, win), _filter2d_valid(dist, win)
        s1 = (_filter2d_valid(ref * ref, win) - mu1 * mu1).clamp_min(0.0)
        s2 = (_filter2d_valid(dist * dist, win) - mu2 * mu2).clamp_min(0.0)
        s12 = _filter2d_valid(ref * dist, win) - mu1 * mu2
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


def vif_direct(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _vifp_direct(a, fused) + _vifp_direct(b, fused)


_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
_SOBEL_Y = ((1.0, 2.0, 1.0), (0.0, 0.0, 0.0), (-1.0, -2.0, -1.0))


def _sobel_direct(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = []
    for kernel in (_SOBEL_X, _SOBEL_Y):
        k = torch.tensor(kernel, dtype=torch.float64).flip(0, 1)
        out.append(F.conv2d(img.unsqueeze(1), k[None, None], padding=1).squeeze(1))
    sx, sy = out
    g = torch.sqrt(sx * sx + sy * sy)
    zero_x = sx == 0
    ang = torch.where(zero_x, torch.full_like(sx, torch.pi / 2),
                      torch.atan(sy / torch.where(zero_x, torch.ones_like(sx), sx)))
    return g, ang


def qabf_direct(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    (g_a, a_a), (g_b, a_b), (g_f, a_f) = (_sobel_direct(x.double()) for x in (a, b, fused))
    q_af = edge_preservation(g_a, a_a, g_f, a_f)
    q_bf = edge_preservation(g_b, a_b, g_f, a_f)
    return (q_af * g_a + q_bf * g_b).flatten(1).sum(1) / (g_a + g_b).flatten(1).sum(1)


def _mi_unique(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    ux, lx = torch.unique(x, return_inverse=True)
    uy, ly = torch.unique(y, return_inverse=True)
    joint = torch.bincount(lx * len(uy) + ly, minlength=len(ux) * len(uy)).double()
    pxy = joint.view(len(ux), len(uy)) / float(x.numel())
    px, py = pxy.sum(1, keepdim=True), pxy.sum(0, keepdim=True)
    nz = pxy > 0
    safe = torch.where(nz, pxy, torch.ones_like(pxy))
    return torch.where(nz, pxy * torch.log(safe / (px * py)), torch.zeros_like(pxy)).sum().clamp_min(0.0)


def mutual_information_direct(fused: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    f, a, b = (x.double().flatten(1) for x in (fused, a, b))
    return torch.stack([_mi_unique(fi, ai) + _mi_unique(fi, bi) for fi, ai, bi in zip(f, a, b)])


#: key -> the direct implementation it replaced.
REFERENCE_METRICS = {"vif": vif_direct, "qabf": qabf_direct, "mi": mutual_information_direct}
