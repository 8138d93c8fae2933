"""Evaluation helpers: register a batch, and the pictures/arrays of ``evaluate.py --save-images``.

``register(network, batch)`` returns one dict per pair (cropped to its ``size``):
``{"name", "moving", "fixed", "warped": [C, *S], "warped_seg": [1, *S] int64, "flow": [dims, *S]
(pixels/voxels, channel i = spatial axis i), "jacobian": [*S] det(I + grad u), "metrics":
{"dice", "folding_pct", "jacobian_std"} floats, "dice_per_label": {label: Dice}}``
(labels present in the fixed or warped maps; absent ones left out).

``visuals(result)`` gives the 2D pictures (3D: the middle slice along axis 0, in-plane field
components 1 and 2): ``"warped"`` ``[1, H, W]``, ``"grid"`` ``[1, H, W]`` (a grid of lines every
``GRID_STEP`` pixels warped by the field), ``"jacobian"`` ``[3, H, W]`` (det J mapped with
matplotlib's ``coolwarm`` over ``[0, 2]``, white = 1; det <= 0 black), all in ``[0, 1]``.
``save_outputs(result, out_dir)`` writes ``warped/NAME.png``, ``grid/NAME.png``,
``jacobian/NAME.png`` and ``fields/NAME.npy`` (float32 ``[dims, *S]``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from restoration.registration.jacobian import jacobian_determinant
from restoration.registration.metrics import dice_per_label, labels_present, registration_metrics
from restoration.registration.warp import warp

__all__ = ["GRID_STEP", "register", "save_outputs", "visuals"]

GRID_STEP = 4


@torch.no_grad()
def register(network: nn.Module, batch: Mapping[str, torch.Tensor]) -> list[dict]:
    """Run ``network(moving, fixed)`` on a batch (items of one shape) and score each pair."""
    device = next(network.parameters()).device
    moving, fixed = batch["moving"].to(device), batch["fixed"].to(device)
    out = network(moving, fixed)
    flow = out["flow"]
    warped_seg = warp(batch["moving_seg"].to(device, flow.dtype), flow, mode="nearest").round().long()
    fixed_seg = batch["fixed_seg"].to(device)
    det = jacobian_determinant(flow)
    results = []
    for n in range(moving.shape[0]):
        size = [int(s) for s in batch["size"][n]]
        crop = tuple(slice(0, s) for s in size)
        ws, fs, fl = warped_seg[n][(slice(None),) + crop], fixed_seg[n][(slice(None),) + crop], flow[n][(slice(None),) + crop]
        labels = labels_present(ws, fs)
        per = dice_per_label(ws[None], fs[None], labels)[0]
        metrics = registration_metrics(ws[None], fs[None], fl[None], labels)
        results.append({
            "name": batch["name"][n],
            "moving": moving[n][(slice(None),) + crop].detach().cpu(),
            "fixed": fixed[n][(slice(None),) + crop].detach().cpu(),
            "warped": out["warped"][n][(slice(None),) + crop].detach().cpu(),
            "warped_seg": ws.detach().cpu(), "flow": fl.detach().cpu(), "jacobian": det[n][crop].detach().cpu(),
            "metrics": {k: float(v[0]) for k, v in metrics.items()},
            "dice_per_label": {lab: float(d) for lab, d in zip(labels, per.tolist()) if d == d},
        })
    return results


def _slice2d(result: Mapping) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image [C, H, W], in-plane flow [2, H, W], det [H, W]) of a 2D result or a 3D mid-slice."""
    img, flow, det = result["warped"], result["flow"], result["jacobian"]
    if flow.shape[0] == 3:
        k = flow.shape[1] // 2
        return img[:, k], flow[1:, k], det[k]
    return img, flow, det


def visuals(result: Mapping) -> dict[str, torch.Tensor]:
    """``{"warped", "grid", "jacobian"}`` pictures in ``[0, 1]`` (see the module docstring)."""
    import matplotlib

    img, flow, det = _slice2d(result)
    h, w = flow.shape[1:]
    lines = torch.zeros(1, 1, h, w)
    lines[..., ::GRID_STEP, :] = 1.0
    lines[..., :, ::GRID_STEP] = 1.0
    grid = warp(lines, flow[None].float())[0]
    cmap = matplotlib.colormaps["coolwarm"]
    rgb = cmap(np.clip(det.numpy() / 2.0, 0.0, 1.0))[..., :3]
    rgb[det.numpy() <= 0] = 0.0
    gray = img[:1] if img.shape[0] != 3 else img
    return {"warped": gray.clamp(0, 1), "grid": grid, "jacobian": torch.from_numpy(rgb).permute(2, 0, 1).float()}


def save_outputs(result: Mapping, out_dir: str | Path) -> list[Path]:
    """Write the pictures and ``fields/NAME.npy``; returns the written paths."""
    from datasets.atomic import atomic_write_bytes
    from datasets.io import write_image

    out, name = Path(out_dir), str(result["name"])
    paths = [write_image(out / kind / f"{name}.png", pic) for kind, pic in visuals(result).items()]
    buf = io.BytesIO()
    np.save(buf, result["flow"].numpy().astype(np.float32))
    field_path = atomic_write_bytes(out / "fields" / f"{name}.npy", buf.getvalue(), parents=True)
    return paths + [field_path]
