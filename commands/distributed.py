"""Data-parallel runs under ``torchrun``, with PyTorch's own process group (NCCL on CUDA, gloo on CPU).

``torchrun --nproc_per_node N search.py ...`` (or ``train.py``) starts N processes; each finds
``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK`` in its environment. Here ``data_parallel`` joins the
process group (CUDA: process ``LOCAL_RANK`` on ``cuda:LOCAL_RANK``) and hands the command a
``World``: its rank, the number of processes, ``average`` (the all-reduce that keeps every process's
parameters identical) and ``any`` (a flag agreed by all, for a stop request). Without torchrun (or
with one process) the ``World`` is inactive and every call is free: the single-process path is
unchanged.

``--batch-size`` is per process (PyTorch's convention): N processes with batch B take together the
global batch of N*B items one process with ``--batch-size N*B`` takes (``commands.data``'s shards).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Iterable, Iterator

import torch
import torch.distributed as dist
from torch import Tensor
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from .errors import UserError

#: How long a process waits at a collective for the others (rank 0 validates and writes meanwhile).
TIMEOUT = timedelta(minutes=60)


def world_size_from_env() -> int:
    """``WORLD_SIZE`` set by torchrun (1 without it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """Whether torchrun started this process as one of several."""
    return world_size_from_env() > 1


@dataclass(frozen=True)
class World:
    """The processes of a data-parallel run (default: one process, inactive)."""

    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str = ""

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes the run folder and prints."""
        return self.rank == 0

    def average(self, tensors: Iterable[Tensor | None]) -> None:
        """Replace each tensor by its mean over the processes, in place (``None`` entries skipped).
        One all-reduce per (device, dtype) over the flattened tensors; every process must pass
        tensors of the same shapes in the same order."""
        if self.active:
            for group in _buckets(tensors):
                flat = _flatten_dense_tensors(group)
                dist.all_reduce(flat)  # SUM then divide: gloo has no AVG
                flat.div_(self.size)
                for t, mean in zip(group, _unflatten_dense_tensors(flat, group)):
                    t.copy_(mean)

    def broadcast(self, tensors: Iterable[Tensor | None]) -> None:
        """Rank 0's values of the tensors on every process, in place (as DDP does at its start)."""
        if self.active:
            for group in _buckets(tensors):
                flat = _flatten_dense_tensors(group)
                dist.broadcast(flat, src=0)
                for t, value in zip(group, _unflatten_dense_tensors(flat, group)):
                    t.copy_(value)

    def any(self, flag: bool) -> bool:
        """True on every process when ``flag`` is True on at least one (a collective)."""
        if not self.active:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.active:
            dist.barrier(device_ids=[self.device.index]) if self.backend == "nccl" else dist.barrier()

    def note(self, batch_size: int) -> str:
        """The first line's words on the data parallelism ('' for one process)."""
        if not self.active:
            return ""
        return (f"; data-parallel on {self.size} processes ({self.backend}): batch {batch_size} per process, "
                f"{batch_size * self.size} in all")


def _buckets(tensors: Iterable[Tensor | None]) -> list[list[Tensor]]:
    """The tensors (``None`` dropped) grouped by device and dtype, in order."""
    buckets: dict[tuple[torch.device, torch.dtype], list[Tensor]] = {}
    for t in tensors:
        if t is not None:
            buckets.setdefault((t.device, t.dtype), []).append(t)
    return list(buckets.values())


@contextlib.contextmanager
def data_parallel(device: torch.device) -> Iterator[World]:
    """The ``World`` of this process: under torchrun with several processes, the process group is
    joined here (backend nccl when ``device`` is CUDA, else gloo; each process on
    ``cuda:LOCAL_RANK``) and left on exit, and only rank 0 prints to stdout."""
    size = world_size_from_env()
    if size <= 1:
        yield World(device=device)
        return
    if not dist.is_available():
        raise UserError("torchrun asked for several processes but this PyTorch has no torch.distributed; "
                        "run with python")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UserError(f"torchrun process {local} on this machine has no GPU of its own "
                            f"({torch.cuda.device_count()} visible): pass --nproc_per_node "
                            f"{torch.cuda.device_count()} or less")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend, timeout=TIMEOUT)
    world = World(rank=rank, size=size, device=device, backend=backend)
    try:
        with contextlib.ExitStack() as stack:
            if not world.main:
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
            yield world
    finally:
        dist.destroy_process_group()


class SharedStop:
    """A ``Stopper``'s request (Ctrl-C / SIGTERM) agreed by every process: ``poll()`` after each
    step (a collective); ``requested`` is the agreed answer of the last poll (one process: the
    stopper's own, at once). torchrun forwards the signal to each process at slightly different
    times: all of them stop after the same step."""

    def __init__(self, stopper: Any, world: World) -> None:
        self.stopper, self.world = stopper, world
        self._agreed = False

    @property
    def requested(self) -> bool:
        return self._agreed if self.world.active else bool(self.stopper.requested)

    def poll(self) -> bool:
        if self.world.active:
            self._agreed = self.world.any(bool(self.stopper.requested))
        return self.requested
