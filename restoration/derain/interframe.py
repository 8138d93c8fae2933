"""TMICS's inter-frame modules: a window of T frames -> features of the middle frame, and the
macroscopic search between them.

Input ``frames`` ``[B, T, 3, H, W]`` (T odd, >= 3, middle frame ``t = T // 2``), output
``[B, C, H, W]``. Two candidates (the paper's Fig. 2, "Frame Alignment Module"):

* ``OFM`` (Optical Flow Module): the flow from the middle frame to each neighbour, each neighbour
  backward-warped onto the middle frame (``out(p) = neighbour(p + flow(p))``, bilinear, border
  padding, ``grid_sample``), the aligned window stacked and fused to C channels.
* ``TGM`` (Temporal Grouping Module): frames grouped by their distance ``d`` from the middle,
  group ``d = (t - d, t, t + d)`` (T = 5: ``{t-1, t, t+1}`` and ``{t-2, t, t+2}``, the released
  ``NNalignedModule``'s groups ``[0, 2, 4]`` and ``[1, 2, 3]``; T = 3: one group), each group
  through its own conv, the groups fused by per-pixel attention (softmax over groups, after TGA,
  Isobe et al. CVPR 2020) or, as the released code does, by a conv over their concatenation.

``InterframeMixture`` holds both and weights them by ``softmax(beta)`` ``[2]`` (``beta`` is held by
the supernet and passed in, as ``MixedOp`` takes its weights); ``make_interframe(name, ...)`` is the
discrete version: the chosen module alone. Both modules end in the same ``PReLU`` + residual block,
so neither is favoured by depth.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from restoration.ops import ResBlock, conv
from restoration.registration.warp import warp as displace

__all__ = ["INTERFRAME_MODULES", "INTERFRAME_PRIMITIVES", "FlowNet", "InterframeMixture", "OFM", "TGM",
           "check_window", "flow_warp", "make_interframe", "temporal_groups"]


def check_window(frames: torch.Tensor, T: int) -> None:
    """``ValueError`` unless ``frames`` is ``[B, T, 3, H, W]``."""
    if frames.ndim != 5 or frames.shape[1] != T or frames.shape[2] != 3:
        raise ValueError(f"expected frames [B, {T}, 3, H, W], got {tuple(frames.shape)}")


def _check_T(frames: int) -> None:
    if frames < 3 or frames % 2 == 0:
        raise ValueError(f"inter-frame modules need an odd window of at least 3 frames, got {frames}")


def flow_warp(frame: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``frame`` ``[B, C, H, W]`` by an optical flow ``[B, 2, H, W]`` in pixels, channel 0
    horizontal (x), channel 1 vertical (y) (RAFT's and the released code's order):
    ``out(y, x) = frame(y + flow_y, x + flow_x)``, bilinear, border padding (``grid_sample`` with an
    ``align_corners`` grid, through ``restoration.registration.warp``). Zero flow returns ``frame``."""
    return displace(frame, flow.flip(1))


class FlowNet(nn.Module):
    """A small flow estimator trained with the rest: ``(middle, neighbour)`` ``[B, 3, H, W]`` each ->
    flow ``[B, 2, H, W]`` (pixels, x then y) from the middle frame to the neighbour.

    The paper's OFM and the released light model use a pre-trained RAFT (``raft-small``, run on
    ImageNet-normalised frames). Its weights cannot be fetched here, and a frozen Sintel-trained RAFT
    would see the rain streaks as motion; a small CNN trained end to end by the deraining loss needs
    no weights, runs at any size on CPU, and learns what alignment helps the deraining. Four 3x3 convs,
    dilations 1, 2, 4, 1 (receptive field 17 px, enough for the pans of a few pixels a frame of the
    embedded and RainSyn videos); the last conv starts at zero, so the module starts as no warp.
    Any module with this signature can replace it (``OFM(flow_net=...)``), e.g. a wrapped RAFT.
    """

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 6
        for d in (1, 2, 4):
            layers += [conv(c_in, hidden, 3, d), nn.PReLU()]
            c_in = hidden
        self.body = nn.Sequential(*layers)
        self.out = conv(hidden, 2, 3)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, middle: torch.Tensor, neighbour: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(torch.cat([middle, neighbour], dim=1)))


def _fuse(c_in: int, C: int) -> nn.Sequential:
    """``[B, c_in, H, W] -> [B, C, H, W]``: 3x3 conv, PReLU, residual block (3x3)."""
    return nn.Sequential(conv(c_in, C, 3), nn.PReLU(), ResBlock(C, 3))


class OFM(nn.Module):
    """Optical Flow Module: ``[B, T, 3, H, W] -> [B, C, H, W]``.

    Every neighbour ``i != t`` is warped onto the middle frame by ``flow_net(middle, frame_i)``
    (``FlowNet``, shared by the neighbours, as the released code shares its RAFT); the aligned window
    (middle frame kept as is) is stacked on channels ``[B, 3T, H, W]`` and fused by
    conv 3x3 -> PReLU -> residual block (the released ``NNalignedModule2``: a conv of the 15 stacked
    channels, then residual modules).
    """

    def __init__(self, C: int, frames: int = 5, flow_hidden: int = 16, flow_net: Optional[nn.Module] = None) -> None:
        super().__init__()
        _check_T(frames)
        self.frames = frames
        self.flow_net = flow_net if flow_net is not None else FlowNet(flow_hidden)
        self.fuse = _fuse(3 * frames, C)

    def align(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(aligned [B, T, 3, H, W], flows [B, T, 2, H, W])``; the middle frame's flow is zero."""
        check_window(frames, self.frames)
        t = self.frames // 2
        middle = frames[:, t]
        aligned, flows = [], []
        for i in range(self.frames):
            if i == t:
                aligned.append(middle)
                flows.append(middle.new_zeros(middle.shape[0], 2, *middle.shape[2:]))
                continue
            flow = self.flow_net(middle, frames[:, i])
            aligned.append(flow_warp(frames[:, i], flow))
            flows.append(flow)
        return torch.stack(aligned, dim=1), torch.stack(flows, dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        aligned, _ = self.align(frames)
        return self.fuse(aligned.flatten(1, 2))


def temporal_groups(frames: int) -> list[tuple[int, int, int]]:
    """Frame indices of each temporal group, by distance ``d = 1 .. T // 2`` from the middle ``t``:
    ``(t - d, t, t + d)``. ``temporal_groups(5) == [(1, 2, 3), (0, 2, 4)]``."""
    _check_T(frames)
    t = frames // 2
    return [(t - d, t, t + d) for d in range(1, t + 1)]


class TGM(nn.Module):
    """Temporal Grouping Module: ``[B, T, 3, H, W] -> [B, C, H, W]``.

    Each group of ``temporal_groups(T)`` (3 frames stacked, ``[B, 9, H, W]``) through its own
    conv 3x3 -> PReLU -> residual block to ``[B, C, H, W]``. ``fusion``:

    * ``"attention"`` (default): a 3x3 conv per group scores every pixel ``[B, 1, H, W]``; the scores
      are softmaxed over the groups per pixel and weight the group features (TGA's temporal group
      attention; one group, T = 3: its features as they are, no scoring convs).
    * ``"concat"``: the group features concatenated ``[B, G*C, H, W]`` and fused by a 3x3 conv, as
      the released ``NNalignedModule`` does (then residual modules, here the common final block).

    Then PReLU -> residual block, as ``OFM``.
    """

    def __init__(self, C: int, frames: int = 5, fusion: str = "attention") -> None:
        super().__init__()
        if fusion not in ("attention", "concat"):
            raise ValueError(f"fusion must be 'attention' or 'concat', got {fusion!r}")
        self.frames, self.fusion = frames, fusion
        self.groups = temporal_groups(frames)
        self.branches = nn.ModuleList(_fuse(9, C) for _ in self.groups)
        n = len(self.groups)
        attend = fusion == "attention" and n > 1  # one group (T = 3): its weight is 1, nothing to score
        self.score = nn.ModuleList(conv(C, 1, 3) for _ in self.groups) if attend else None
        self.merge = conv(n * C, C, 3) if fusion == "concat" else None
        self.out = nn.Sequential(nn.PReLU(), ResBlock(C, 3))

    def group_weights(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Attention weights ``[B, G, 1, H, W]`` (sum 1 over ``G`` at every pixel) of group features."""
        assert self.score is not None
        logits = torch.stack([s(f) for s, f in zip(self.score, feats)], dim=1)
        return F.softmax(logits, dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        check_window(frames, self.frames)
        feats = [branch(frames[:, list(g)].flatten(1, 2)) for branch, g in zip(self.branches, self.groups)]
        if self.merge is not None:
            fused = self.merge(torch.cat(feats, dim=1))
        elif self.score is None:
            fused = feats[0]
        else:
            fused = (self.group_weights(feats) * torch.stack(feats, dim=1)).sum(dim=1)
        return self.out(fused)


#: name -> factory ``(C, frames) -> nn.Module``, in the order of ``beta``.
INTERFRAME_MODULES: dict[str, Callable[[int, int], nn.Module]] = {
    "ofm": lambda C, frames: OFM(C, frames),
    "tgm": lambda C, frames: TGM(C, frames),
}
INTERFRAME_PRIMITIVES: tuple[str, ...] = tuple(INTERFRAME_MODULES)


def make_interframe(name: str, C: int, frames: int) -> nn.Module:
    """The discrete inter-frame module ``name`` (``"ofm"`` or ``"tgm"``): ``[B, T, 3, H, W] -> [B, C, H, W]``."""
    if name not in INTERFRAME_MODULES:
        raise ValueError(f"unknown inter-frame module {name!r}; known: {', '.join(INTERFRAME_PRIMITIVES)}")
    return INTERFRAME_MODULES[name](C, frames)


class InterframeMixture(nn.Module):
    """The macroscopic relaxation: ``sum_k weights[k] * module_k(frames)`` over ``INTERFRAME_PRIMITIVES``.

    ``forward(frames [B, T, 3, H, W], weights [2])`` (``weights = softmax(beta)``) -> ``[B, C, H, W]``.
    """

    def __init__(self, C: int, frames: int = 5) -> None:
        super().__init__()
        self.primitives = INTERFRAME_PRIMITIVES
        self.candidates = nn.ModuleList(make_interframe(n, C, frames) for n in self.primitives)

    def forward(self, frames: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if weights.shape != (len(self.candidates),):
            raise ValueError(f"weights must be [{len(self.candidates)}], got {list(weights.shape)}")
        return sum(w * m(frames) for w, m in zip(weights, self.candidates))
