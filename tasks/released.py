"""``ReleasedWeights``: a paper's released weight file, recognised by a task and mapped onto its network.

A task that can read the files a paper distributes offers ``released_weights(state, source)``:
``state`` is the file's mapping of names to tensors, the answer ``None`` when the names are not
that paper's, a ``ReleasedWeights`` when they are, and a ``ValueError`` (one line: what the file is
and why the task's network cannot hold it) when they are the paper's but do not fit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from tasks.results import SearchResult

__all__ = ["ReleasedWeights"]


@dataclass
class ReleasedWeights:
    """A released file mapped onto a task's network.

    Attributes:
        description: one line saying what was recognised and how it was mapped (printed).
        result: the search result (genotype) of the network the weights fit.
        settings: setting values the network needs to hold them (sizes, the output used).
        state_dict: the weights under the network's own names; all of them when ``complete``.
        complete: whether ``state_dict`` covers the whole network.
        not_evaluable: why the weights alone cannot be evaluated (``None`` when they can).
    """

    description: str
    result: SearchResult
    settings: dict[str, Any] = field(default_factory=dict)
    state_dict: dict[str, Tensor] = field(default_factory=dict)
    complete: bool = True
    not_evaluable: str | None = None
