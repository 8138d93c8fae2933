"""Running a task's network over a data set: per-item records and their means."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from tasks import Settings, Task

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


def evaluate(task: Task, net: torch.nn.Module, dataset: Dataset, s: Settings, device: torch.device,
             save_dir: Path | None = None, progress: bool = True,
             batch_size: int | None = None
             ) -> tuple[dict[str, float], list[dict[str, Any]], dict[str, Any] | None]:
    """Mean metrics of ``net`` on ``dataset``, the per-item records, and the first batch (for
    sample images); with ``save_dir`` the task writes its outputs there."""
    was_training = net.training
    net.eval()
    records: list[dict[str, Any]] = []
    first = None
    bs = batch_size or int(getattr(s, "eval_batch_size", 1))
    batches = loader(dataset, bs, 0, 0, shuffle=False, drop_last=False, workers=s.workers)
    with torch.no_grad():
        for batch in tqdm(batches, desc="evaluate", unit="batch", disable=not progress, dynamic_ncols=True):
            batch = to_device(batch, device)
            if first is None:
                first = batch
            recs, outputs = task.evaluate_batch(net, batch)
            records.extend(recs)
            if save_dir is not None:
                task.save_outputs(outputs, batch, str(save_dir))
    net.train(was_training)
    return mean_metrics(task, records), records, first
