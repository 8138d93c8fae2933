"""Running a task's network over a data set: per-item records and their means."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from tasks import Scoring, Settings, Task

from .data import loader, to_device


def mean_metrics(task: Task, records: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of each of the task's metric keys over the records that have it, plus ``count``."""
    out: dict[str, float] = {}
    for key in task.metrics:
        values = [float(r[key]) for r in records if key in r]
        if values:
            out[key] = sum(values) / len(values)
    out["count"] = len(records)
    return out


def confidence_intervals(task: Task, records: list[dict[str, Any]]) -> dict[str, float]:
    """``<metric>_ci95``: the half-width of the 95% confidence interval of each metric's mean over the
    records, ``1.96 * std / sqrt(n)`` with the sample standard deviation (n - 1), the normal approximation
    few-shot papers report over their test episodes (MAML, Finn et al. 2017; Chen et al. 2019)."""
    out: dict[str, float] = {}
    for key in task.metrics:
        values = torch.tensor([float(r[key]) for r in records if key in r], dtype=torch.float64)
        if len(values) > 1:
            out[f"{key}_ci95"] = float(1.96 * values.std(unbiased=True) / len(values) ** 0.5)
    return out


#: Items gathered from the first batches for the sample images.
SAMPLES = 4


def _gather(first: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """``first`` with ``batch``'s items appended up to ``SAMPLES`` items, when every tensor has the same
    per-item shape (images of other sizes cannot share a batch: ``first`` is kept as it is)."""
    if not isinstance(first, dict) or not isinstance(batch, dict) or first.keys() != batch.keys():
        return first
    n = next((len(v) for v in first.values() if isinstance(v, (torch.Tensor, list))), SAMPLES)
    room = SAMPLES - n
    if room <= 0:
        return first
    merged: dict[str, Any] = {}
    for k, v in first.items():
        w = batch[k]
        if isinstance(v, torch.Tensor) and isinstance(w, torch.Tensor) and v.ndim and v.shape[1:] == w.shape[1:]:
            merged[k] = torch.cat([v, w[:room]])
        elif isinstance(v, list) and isinstance(w, list):
            merged[k] = v + w[:room]
        elif isinstance(v, torch.Tensor) or isinstance(v, list):
            return first
        else:
            merged[k] = v
    return merged


def evaluate(task: Task, net: torch.nn.Module, dataset: Dataset, s: Settings, device: torch.device,
             scoring: Scoring, save_dir: Path | None = None, progress: bool = True,
             batch_size: int | None = None
             ) -> tuple[dict[str, float], list[dict[str, Any]], dict[str, Any] | None]:
    """Mean metrics of ``net`` on ``dataset``, the per-item records, and the first items as one
    batch (up to ``SAMPLES`` items, for the sample images of train.py), scored as ``scoring`` says;
    with ``save_dir`` the task writes its outputs there."""
    was_training = net.training
    net.eval()
    records: list[dict[str, Any]] = []
    first = None
    bs = batch_size or s.eval_batch_size
    batches = loader(dataset, bs, 0, 0, shuffle=False, drop_last=False, workers=s.workers)
    with torch.no_grad():
        for batch in tqdm(batches, desc="evaluate", unit="batch", disable=not progress, dynamic_ncols=True):
            batch = to_device(batch, device)
            first = batch if first is None else _gather(first, batch)
            recs, outputs = task.evaluate_batch(net, batch, s, scoring)
            records.extend(recs)
            if save_dir is not None:
                task.save_outputs(outputs, batch, str(save_dir))
    net.train(was_training)
    return mean_metrics(task, records), records, first
