"""SAGA memory over a fixed partition of the data into minibatches, each named by an integer.

A stochastic quantity ``phi_i`` (a gradient, a Hessian-vector product) of minibatch ``i`` is
replaced by the variance-reduced estimate ``phi_i(new) - phi_i(old) + mean_j phi_j(old)``, where
``phi_j(old)`` is the value last computed on minibatch ``j``; then ``phi_i(old) <- phi_i(new)``.

Which minibatch a batch is: the batch names it. ``batch_index(batch, key)`` reads ``batch[key]``
(a ``Mapping`` batch) or ``batch.key`` (an object with that attribute): one integer, or an integer
tensor of one element, the same for every visit of the same minibatch (a data loader over a fixed
partition, shuffled over the minibatches, not over the samples). A batch of ``None`` (a problem
without data) is minibatch 0. The memory holds one entry per minibatch, not per sample: the losses
are black-box means over a batch, and one entry per sample would take one backward pass per sample.

The table grows with the minibatches seen: the mean runs over the entries filled so far, and a
minibatch seen for the first time gives its fresh value (a plain stochastic step) and fills its
entry. After one pass over the partition every entry is filled and the estimate is SAGA's.
"""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ..tensors import TensorDict, cloned


class MissingIndexError(ValueError):
    """A batch that does not say which minibatch of the fixed partition it is."""


def batch_index(batch: Any, key: str) -> int:
    """The minibatch id of ``batch``: ``batch[key]`` or ``batch.key`` (``None``: 0)."""
    if batch is None:
        return 0
    if isinstance(batch, Mapping) and key in batch:
        value = batch[key]
    elif not isinstance(batch, Mapping) and hasattr(batch, key):
        value = getattr(batch, key)
    else:
        raise MissingIndexError(
            f"saba keeps one memory entry per minibatch and needs each batch to say which one it is: "
            f"pass batches as dicts (or objects) holding {key!r}, one integer naming the minibatch of a fixed "
            f"partition of the data (the same integer at every visit), or set the option index_key; got a "
            f"batch of type {type(batch).__name__} without it")
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_floating_point() or value.is_complex():
            raise MissingIndexError(f"batch[{key!r}] must be one integer naming the minibatch, got a tensor of "
                                    f"shape {tuple(value.shape)} and dtype {value.dtype} (per-sample indices are "
                                    "not memory keys: name the minibatch of a fixed partition instead)")
        return int(value.item())
    if isinstance(value, bool) or not isinstance(value, int):
        raise MissingIndexError(f"batch[{key!r}] must be one integer naming the minibatch, got {value!r}")
    return value


class SagaMemory:
    """One SAGA table: minibatch id -> the values last computed on it, and their running sum."""

    def __init__(self) -> None:
        self.entries: dict[int, TensorDict] = {}
        self.total: TensorDict | None = None

    def estimate(self, index: int, fresh: TensorDict) -> TensorDict:
        """The variance-reduced estimate of ``fresh`` (computed on minibatch ``index``); the
        memory then holds ``fresh`` for ``index``. Values are detached; shapes of ``fresh``."""
        fresh = {k: v.detach() for k, v in fresh.items()}
        old = self.entries.get(index)
        if old is None:
            self.entries[index] = cloned(fresh)
            self.total = cloned(fresh) if self.total is None else {k: self.total[k] + fresh[k] for k in fresh}
            return fresh
        if set(old) != set(fresh):
            raise ValueError(f"memory holds {sorted(old)}, got {sorted(fresh)}; build a new method for this problem")
        assert self.total is not None
        n = len(self.entries)
        out = {k: fresh[k] - old[k] + self.total[k] / n for k in fresh}
        self.total = {k: self.total[k] + (fresh[k] - old[k]) for k in fresh}
        self.entries[index] = cloned(fresh)
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"entries": {i: cloned(e) for i, e in self.entries.items()},
                "total": cloned(self.total)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.entries = {int(i): cloned(e) for i, e in state["entries"].items()}
        self.total = cloned(state["total"])

    def nbytes(self) -> int:
        """Bytes the table holds (entries and sum)."""
        tensors = [t for e in self.entries.values() for t in e.values()] + list((self.total or {}).values())
        return sum(t.numel() * t.element_size() for t in tensors)

