"""Deterministic, resumable data loading: the order of epoch ``e`` depends only on (seed, e)."""
from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .errors import UserError


class EpochSampler(Sampler[int]):
    """A permutation of ``range(n)`` drawn from ``(seed, epoch)``, starting at ``start``.

    ``rank``/``world``: the shard of process ``rank`` of ``world`` (data-parallel runs): every
    ``world``-th index of the order from ``start`` on, beginning at the ``rank``-th, as
    ``DistributedSampler`` deals them (the tail that does not fill a round is dropped). Batch ``k``
    of size B of each of the ``world`` shards together are exactly batch ``k`` of size
    ``world*B`` of the unsharded order (``start`` counts items of that order)."""

    def __init__(self, n: int, seed: int, epoch: int, start: int = 0, shuffle: bool = True,
                 rank: int = 0, world: int = 1) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not one of {world} processes")
        self.n, self.seed, self.epoch, self.start, self.shuffle = n, seed, epoch, start, shuffle
        self.rank, self.world = rank, world

    def __iter__(self) -> Iterator[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        order = order[self.start:]
        if self.world > 1:
            order = order[self.rank:len(order) // self.world * self.world:self.world]
        return iter(order)

    def __len__(self) -> int:
        return max(0, self.n - self.start) // self.world


def set_epoch(dataset: Dataset, epoch: int) -> None:
    """Tell a dataset (or the dataset under a Subset) which epoch its augmentation is for."""
    target = getattr(dataset, "dataset", dataset)
    for d in (dataset, target):
        if hasattr(d, "set_epoch"):
            d.set_epoch(epoch)


def loader(dataset: Dataset, batch_size: int, seed: int, epoch: int, skip_batches: int = 0,
           shuffle: bool = True, drop_last: bool = True, workers: int = 0,
           shard: tuple[int, int] = (0, 1)) -> DataLoader:
    """A loader over ``dataset`` for ``epoch``, skipping the first ``skip_batches`` batches.

    ``shard=(rank, world)``: process ``rank``'s share of each global batch of ``world*batch_size``
    items (``batch_size`` is per process)."""
    set_epoch(dataset, epoch)
    rank, world = shard
    sampler = EpochSampler(len(dataset), seed, epoch, skip_batches * batch_size * world, shuffle, rank, world)
    # its own generator: creating the iterator must not draw from the global RNG (exact resume)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=drop_last,
                      num_workers=workers, generator=torch.Generator().manual_seed(seed + epoch))


def steps_per_epoch(*datasets: Dataset, batch_size: int, names: tuple[str, ...] = ()) -> int:
    """Full batches per epoch (the smallest set decides); a one-line error naming the sets when
    ``batch_size`` exceeds one of them."""
    n = min(len(d) for d in datasets) // batch_size
    if n == 0:
        names = names or tuple(f"set {i + 1}" for i in range(len(datasets)))
        sizes = ", ".join(f"{name} {len(d)} item{'s' if len(d) != 1 else ''}" for name, d in zip(names, datasets))
        largest = min(len(d) for d in datasets)
        fix = f"pass --batch-size {largest} or less, or add data" if largest else "add data"
        raise UserError(f"--batch-size {batch_size} is larger than the data ({sizes}); {fix}")
    return n


def to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) batch to ``device``; other values are left as they are."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
