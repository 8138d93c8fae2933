"""Evaluation helpers: register a batch, and the pictures/arrays of ``evaluate.py --save-images``.

``register(network, batch)`` returns one dict per pair (cropped to its ``size``):
``{"name", "moving", "fixed", "warped": [C, *S], "warped_seg": [1, *S] int64, "flow": [dims, *S]
(pixels/voxels, channel i = spatial axis i), "jacobian": [*S] det(I + grad u), "metrics":
{"dice", "folding_pct", "jacobian_std"} floats, "dice_per_label": {label: Dice}}``
(labels present in the fixed or warped maps; absent ones left out).

``save_outputs(result, out_dir)`` writes ``NAME.png`` (the warped moving image; 3D: its middle slice
along axis 0), ``panels/NAME.png`` (fixed | moving | warped | deformation grid | det J, titled with
the metrics: ``pictures.pair_panel``) and ``fields/NAME.npy`` (float32 ``[dims, *S]``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch import nn

from restoration.panels import PANELS
from restoration.registration.jacobian import jacobian_determinant
from restoration.registration.metrics import dice_per_label, labels_present, registration_metrics
from restoration.registration.pictures import mid_slice, pair_panel
from restoration.registration.warp import warp

__all__ = ["register", "save_outputs"]


@torch.no_grad()
def register(network: nn.Module, batch: Mapping[str, torch.Tensor]) -> list[dict]:
    """Run ``network(moving, fixed)`` on a batch (items of one shape, on the network's device) and
    score each pair."""
    moving, fixed = batch["moving"], batch["fixed"]
    device = moving.device
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


def save_outputs(result: Mapping, out_dir: str | Path) -> list[Path]:
    """Write ``NAME.png``, ``panels/NAME.png`` and ``fields/NAME.npy``; returns the written paths."""
    from datasets.atomic import atomic_write_bytes
    from datasets.io import write_image

    out, name = Path(out_dir), str(result["name"])
    warped = mid_slice(result["warped"].float(), result["flow"].shape[0])
    paths = [write_image(out / f"{name}.png", warped[:1] if warped.shape[0] != 3 else warped),
             write_image(out / PANELS / f"{name}.png", pair_panel([result]))]
    buf = io.BytesIO()
    np.save(buf, result["flow"].numpy().astype(np.float32))
    field_path = atomic_write_bytes(out / "fields" / f"{name}.npy", buf.getvalue(), parents=True)
    return paths + [field_path]
