"""N-way K-shot episodes of a split's classes, and the flat labelled set of a pre-trained baseline.

An episode (``EpisodeSet`` item ``index``) is drawn from a ``torch.Generator`` seeded by
``(seed, epoch, index)`` only (``datasets.transforms.item_generator``), so it is the same whichever
worker loads it, in whatever order, and a resumed run sees the same episodes; ``set_epoch(e)`` draws
new ones. The draw: ``ways`` distinct classes in random order, the ``j``-th labelled ``j``; of each,
``shots + queries`` distinct images in random order, the first ``shots`` to the support set, the rest
to the query set. Both sets are class-major (``label = arange(ways).repeat_interleave(shots)``)::

    {"support": {"image": float32 [ways * shots, C, H, W], "label": int64 [ways * shots]},
     "query":   {"image": float32 [ways * queries, C, H, W], "label": int64 [ways * queries]},
     "name": "episode-00012"}

Images are in ``[0, 1]`` (``fewshot.data``), unnormalised, unaugmented. torch's default collate turns
``E`` episodes into the same dict with a leading episode axis ``E`` (and ``name`` a list of ``E``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.transforms import item_generator
from fewshot.data import ClassImages

__all__ = ["EpisodeSet", "LabelledImages"]


def _positive(value: int, flag: str) -> int:
    if int(value) != value or value < 1:
        raise DataError(f"{flag} must be a whole number of at least 1, got {value!r}; pass --{flag} 1 or more")
    return int(value)


class EpisodeSet(Dataset):
    """``episodes`` random ``ways``-way ``shots``-shot episodes of ``classes`` (module docstring).

    Args:
        classes: the split's classes; ways: classes per episode; shots: support images per class;
        queries: query images per class; episodes: items per epoch; seed: seed of the draws.

    Raises:
        DataError: a count below 1, ``ways`` above the number of classes, or a class with fewer than
            ``shots + queries`` images (one line naming the fix).
    """

    def __init__(self, classes: ClassImages, ways: int, shots: int, queries: int, episodes: int,
                 seed: int = 0) -> None:
        self.classes = classes
        self.ways, self.shots = _positive(ways, "ways"), _positive(shots, "shots")
        self.queries, self.episodes = _positive(queries, "queries"), _positive(episodes, "episodes")
        self.seed = int(seed)
        self.epoch = 0
        if self.ways > len(classes):
            raise DataError(f"--ways {self.ways} exceeds the {len(classes)} classes of {classes.source}; lower "
                            f"--ways to {len(classes)} or fewer")
        classes.check(self.shots + self.queries)

    def set_epoch(self, epoch: int) -> None:
        """Draw the episodes of ``epoch`` (items are a function of seed, epoch, index)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.episodes

    def draw(self, index: int) -> tuple[Tensor, Tensor]:
        """The episode's class indices ``[ways]`` (label order) and image indices ``[ways, shots + queries]``
        (support first) within each class, without decoding anything."""
        g = item_generator(self.seed, self.epoch, int(index))
        chosen = torch.randperm(len(self.classes), generator=g)[: self.ways]
        k = self.shots + self.queries
        picks = torch.stack([torch.randperm(self.classes.count(int(c)), generator=g)[:k] for c in chosen])
        return chosen, picks

    def __getitem__(self, index: int) -> dict[str, Any]:
        chosen, picks = self.draw(index)
        images = torch.stack([torch.stack([self.classes.image(int(c), int(i)) for i in row])
                              for c, row in zip(chosen, picks)])  # [ways, shots + queries, C, H, W]
        s = self.shots
        return {
            "support": {"image": images[:, :s].flatten(0, 1).contiguous(),
                        "label": torch.arange(self.ways).repeat_interleave(s)},
            "query": {"image": images[:, s:].flatten(0, 1).contiguous(),
                      "label": torch.arange(self.ways).repeat_interleave(self.queries)},
            "name": f"episode-{int(index):05d}",
        }


class LabelledImages(Dataset):
    """Every image of every class of ``classes`` as one labelled set (a baseline pre-trained on all
    meta-train classes). Item ``i`` (class-major order)::

        {"image": float32 [C, H, W] in [0, 1], "label": int64 0-d (class index within the split),
         "name": "<class name>/<file stem or image index>"}

    ``num_classes``: the number of classes (rotation classes included); no randomness, ``set_epoch``
    is accepted and ignored.
    """

    def __init__(self, classes: ClassImages) -> None:
        self.classes = classes
        self.num_classes = len(classes)
        counts = torch.tensor([classes.count(c) for c in range(len(classes))], dtype=torch.int64)
        self._ends = counts.cumsum(0)  # [num_classes]: one past each class's last item

    def set_epoch(self, epoch: int) -> None:
        """Nothing to redraw: the items do not depend on the epoch."""

    def __len__(self) -> int:
        return int(self._ends[-1]) if self.num_classes else 0

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        c = int(torch.searchsorted(self._ends, index, right=True))
        i = index - (int(self._ends[c - 1]) if c else 0)
        return {"image": self.classes.image(c, i), "label": torch.tensor(c, dtype=torch.int64),
                "name": self.classes.item_name(c, i)}
