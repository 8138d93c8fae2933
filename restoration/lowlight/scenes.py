"""Scenes of the low-light fast adaptation (``--recipe adapt``): random crops of a scene's images and
meta-training episodes over several scenes.

A scene is a set of images taken alike (one camera, one place): a synthetic camera of the embedded
data (``datasets.synthetic_cameras``) or a folder. ``draw_crops`` cuts ``count`` crops from a
scene's images: distinct images while there are enough (a seeded permutation, then round again),
each at a random window with random flips; ``SceneCrops`` is one batch of such crops per epoch (what
``train.py --recipe adapt`` adapts on: ``--max-steps K`` takes K batches), ``SceneEpisodes`` the
episodes of meta-training: support crops and query crops of one scene (other images of it where it
has enough). Every draw comes from ``item_generator(seed, epoch, index)`` alone, so a resumed run
sees the same crops.

Items: crops ``{"input": [3, c, c], "target": [3, c, c] (paired scenes), "name": str, "size": [2]}``;
episodes ``{"support": {"input": [S, 3, c, c], "target": ...}, "query": {... [Q, 3, c, c]},
"name": str}`` (collated: a leading episode axis, ``tasks.meta.episode_tasks``).
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.transforms import as_hw, item_generator, paired_random_crop, paired_random_flip

__all__ = ["Materialised", "SceneCrops", "SceneEpisodes", "draw_crops"]


class Materialised(Dataset):
    """The items of a small data set held in memory (a synthetic camera's images, generated once)."""

    def __init__(self, base: Dataset) -> None:
        self.items = [base[i] for i in range(len(base))]  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.items[index]


def _crop(item: dict[str, Any], crop: Optional[tuple[int, int]], flip: bool, g: torch.Generator) -> dict[str, Tensor]:
    """The images of ``item`` at one random window of size ``crop`` (None: whole), flipped alike
    (``paired_random_crop`` / ``paired_random_flip``; an item without a target is paired with itself)."""
    x = item["input"]
    y = item.get("target", x)
    H, W = x.shape[-2:]
    if crop is not None:
        h, w = crop
        if h > H or w > W:
            raise DataError(f"image '{item.get('name', '?')}' ({H}x{W}) is smaller than the crop {h}x{w}; use a "
                            "smaller --crop")
        x, y = paired_random_crop(x, y, crop, g)
    if flip:
        x, y = paired_random_flip(x, y, g)
    return {"input": x.contiguous(), **({"target": y.contiguous()} if "target" in item else {})}


def draw_crops(base: Dataset, indices: Sequence[int], positions: Sequence[int], order: Sequence[int],
               crop: Optional[tuple[int, int]], flip: bool, g: torch.Generator) -> dict[str, Tensor]:
    """Crops of the images ``indices[order[p % len(order)]]`` for each ``p`` in ``positions``, stacked:
    ``{"input": [P, 3, h, w], "target": [P, 3, h, w] (when the items have one)}``."""
    crops = [_crop(base[indices[order[p % len(order)]]], crop, flip, g) for p in positions]
    return {k: torch.stack([c[k] for c in crops]) for k in crops[0]}


class SceneCrops(Dataset):
    """``count`` crops of the images ``indices`` of ``base`` (default all) per epoch, drawn by
    ``draw_crops`` from ``item_generator(seed, epoch, 0)``: distinct images while ``count`` allows.
    One batch of ``count`` items is one adaptation step.

    Items: ``{"input": [3, h, w], "target": [3, h, w] (paired), "name": str, "size": LongTensor [2]}``.
    """

    def __init__(self, base: Dataset, count: int, crop: Any = None, flip: bool = True, seed: int = 0,
                 indices: Optional[Sequence[int]] = None) -> None:
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)  # type: ignore[arg-type]
        if not self.indices:
            raise DataError("a scene needs at least one image to adapt on; add images")
        self.count, self.crop, self.flip, self.seed = count, None if crop is None else as_hw(crop), flip, seed
        self.epoch, self._cached = 0, (-1, None)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def verify(self, progress: bool = False) -> Any:
        verify = getattr(self.base, "verify", None)
        return verify(progress) if verify is not None else None

    def __len__(self) -> int:
        return self.count

    def _batch(self) -> dict[str, Tensor]:
        """This epoch's ``count`` crops (drawn once an epoch)."""
        if self._cached[0] != self.epoch:
            g = item_generator(self.seed, self.epoch, 0)
            order = torch.randperm(len(self.indices), generator=g).tolist()
            self._cached = (self.epoch, draw_crops(self.base, self.indices, range(self.count), order, self.crop,
                                                   self.flip, g))
        return self._cached[1]  # type: ignore[return-value]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} crops")
        item: dict[str, Any] = {k: v[index] for k, v in self._batch().items()}
        item["name"] = f"crop_{self.epoch:04d}_{index:02d}.png"
        item["size"] = torch.tensor(item["input"].shape[-2:])
        return item


class SceneEpisodes(Dataset):
    """``count`` episodes per epoch over ``scenes`` (data sets of one scene each, named ``names``):
    episode ``i`` is of scene ``i % len(scenes)`` (every scene as often), with ``shots`` support
    crops and ``queries`` query crops from a seeded permutation of the scene's images (support images
    first, the query's next: distinct images where the scene has ``shots + queries``).

    Items: ``{"support": {"input": [shots, 3, h, w], "target": ...}, "query": {... [queries, ...]},
    "name": "<scene>/<i>"}``.
    """

    def __init__(self, scenes: Sequence[Dataset], names: Sequence[str], shots: int, queries: int, count: int,
                 crop: Any = None, flip: bool = True, seed: int = 0) -> None:
        if len(scenes) != len(names) or not scenes:
            raise ValueError("give one name per scene, and at least one scene")
        self.scenes, self.names = list(scenes), list(names)
        self.shots, self.queries, self.count = shots, queries, count
        self.crop, self.flip, self.seed = None if crop is None else as_hw(crop), flip, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} episodes")
        scene = index % len(self.scenes)
        base = self.scenes[scene]
        g = item_generator(self.seed, self.epoch, index)
        indices = list(range(len(base)))  # type: ignore[arg-type]
        order = torch.randperm(len(indices), generator=g).tolist()
        support = draw_crops(base, indices, range(self.shots), order, self.crop, self.flip, g)
        query = draw_crops(base, indices, range(self.shots, self.shots + self.queries), order, self.crop,
                           self.flip, g)
        return {"support": support, "query": query, "name": f"{self.names[scene]}/{index:04d}"}
