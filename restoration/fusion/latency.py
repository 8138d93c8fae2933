"""Hardware-aware search after TIMFusion: op latencies measured on the current device, cached as
JSON in the run folder, the differentiable expected latency of the supernet, and the measured
latency of a discrete network.

* ``measure_op_latencies``: every primitive of ``ops`` timed alone on ``[1, C, H/s, W/s]`` for each
  cell scale ``s`` (1, 2, 4), in milliseconds (median of ``repeats`` timed runs after ``warmup``,
  CUDA synchronised); table ``{cell: {op: ms}}``.
* ``load_or_measure``: the table from ``FOLDER/op_latency.json`` when its settings (device, torch
  version, channels, size, primitives) match, else measured and written atomically;
  ``reuse_or_measure``: the same check against an in-memory record ``{"settings", "latency_ms"}``
  (the fusion task keeps it in its settings, so the search command writes it to the run folder).
* ``expected_latency``: ``sum_cells sum_edges sum_ops softmax(alpha)[edge, op] * latency[cell][op]``,
  a differentiable scalar (ms) to add as ``W x expected latency`` to the upper objective.
* ``measure_latency``: median wall time (ms) of a network's forward on an infrared/visible pair.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from datasets.atomic import atomic_write_text
from nas.ops import OpFactory
from restoration.fusion.model import CELL_NAMES

__all__ = ["LATENCY_FILE", "CELL_SCALES", "time_call", "measure_op_latencies", "latency_settings",
           "load_or_measure", "reuse_or_measure", "expected_latency", "measure_latency"]

LATENCY_FILE = "op_latency.json"
#: Downsampling factor of each cell.
CELL_SCALES: dict[str, int] = dict(zip(CELL_NAMES, (1, 2, 4)))


def time_call(fn: Callable[[], object], device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``fn()`` in milliseconds (CUDA synchronised around each call)."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


@torch.no_grad()
def measure_op_latencies(ops: Mapping[str, OpFactory], primitives: Sequence[str], C: int, size: int,
                         device: torch.device | str, repeats: int = 20, warmup: int = 3) -> dict[str, dict[str, float]]:
    """``{cell: {op: ms}}`` for each primitive at each cell's resolution (``size / scale``)."""
    device = torch.device(device)
    table: dict[str, dict[str, float]] = {}
    for cell, scale in CELL_SCALES.items():
        side = max(1, -(-size // scale))
        x = torch.rand(1, C, side, side, device=device)
        row = {}
        for name in primitives:
            op = ops[name](C, C, 1, True).to(device).eval()
            row[name] = time_call(lambda: op(x), device, repeats, warmup)
        table[cell] = row
    return table


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def latency_settings(primitives: Sequence[str], C: int, size: int, device: torch.device | str) -> dict:
    """What a latency table depends on: device name, torch version, channels, input side, primitives."""
    return {"device": _device_name(torch.device(device)), "torch": str(torch.__version__), "channels": C, "size": size,
            "primitives": list(primitives)}


def reuse_or_measure(record: Mapping | None, ops: Mapping[str, OpFactory], primitives: Sequence[str], C: int,
                     size: int, device: torch.device | str, repeats: int = 20,
                     measure: Callable[..., dict[str, dict[str, float]]] = measure_op_latencies) -> tuple[dict, bool]:
    """``(record, measured)``: ``record`` itself when its ``settings`` match ``latency_settings(...)``,
    else a new ``{"settings": ..., "latency_ms": {cell: {op: ms}}}`` measured now (``measured`` True)."""
    settings = latency_settings(primitives, C, size, device)
    if isinstance(record, Mapping) and record.get("settings") == settings:
        try:
            table = {cell: {k: float(v) for k, v in row.items()} for cell, row in record["latency_ms"].items()}
            if set(table) == set(CELL_SCALES) and all(set(row) == set(primitives) for row in table.values()):
                return {"settings": settings, "latency_ms": table}, False
        except (KeyError, AttributeError, TypeError, ValueError):
            pass  # malformed: measure again
    table = measure(ops, primitives, C, size, torch.device(device), repeats=repeats)
    return {"settings": settings, "latency_ms": table}, True


def load_or_measure(folder: str | os.PathLike, ops: Mapping[str, OpFactory], primitives: Sequence[str], C: int,
                    size: int, device: torch.device | str, repeats: int = 20,
                    measure: Callable[..., dict[str, dict[str, float]]] = measure_op_latencies) -> dict[str, dict[str, float]]:
    """The cached table of ``FOLDER/op_latency.json`` if it was measured with the same settings,
    else a new measurement (written there atomically). Returns ``{cell: {op: ms}}``."""
    device = torch.device(device)
    settings = latency_settings(primitives, C, size, device)
    path = Path(folder) / LATENCY_FILE
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
            if cached.get("settings") == settings:
                return {cell: {k: float(v) for k, v in row.items()} for cell, row in cached["latency_ms"].items()}
        except (ValueError, KeyError, AttributeError):
            pass  # unreadable cache: measure again and overwrite it
    table = measure(ops, primitives, C, size, device, repeats=repeats)
    atomic_write_text(path, json.dumps({"settings": settings, "latency_ms": table}, indent=2), parents=True)
    return table


def expected_latency(edge_weights: Mapping[str, torch.Tensor], table: Mapping[str, Mapping[str, float]],
                     primitives: Sequence[str]) -> torch.Tensor:
    """Differentiable expected latency (ms) of the supernet.

    Args:
        edge_weights: cell -> ``[edges, len(primitives)]`` softmax weights (``FusionSearchNet.edge_weights()``).
        table: ``{cell: {op: ms}}``; primitives: the column order of the weights.
    """
    total = None
    for cell, w in edge_weights.items():
        if cell not in table:
            raise KeyError(f"no latency measured for cell {cell!r}; measured: {sorted(table)}")
        lat = torch.tensor([table[cell][p] for p in primitives], dtype=w.dtype, device=w.device)
        term = (w * lat).sum()
        total = term if total is None else total + term
    if total is None:
        raise ValueError("no edge weights given")
    return total


@torch.no_grad()
def measure_latency(network: nn.Module, height: int = 256, width: int = 256, repeats: int = 20,
                    warmup: int = 3) -> float:
    """Median forward time (ms) of ``network(ir, vi)`` on a ``[1, 1, height, width]`` pair, on its device."""
    p = next(network.parameters())
    x = torch.rand(1, 1, height, width, device=p.device, dtype=p.dtype)
    was_training = network.training
    network.eval()
    try:
        return time_call(lambda: network(x, x), p.device, repeats, warmup)
    finally:
        network.train(was_training)
