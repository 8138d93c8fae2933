"""Data of the deraining task: the embedded synthetic rain or a benchmark folder, split and
augmented for search and training.

Settings (a plain dict; missing keys take these defaults):

* ``data``: benchmark folder, two folders ``[RAINY_DIR, CLEAN_DIR]`` (``--pairs``, matched by name or
  number; one set, split like a single folder) or ``None`` (embedded synthetic data);
* ``frames`` (1): odd window; > 1 reads videos (``datasets.derain_video``); with 1, a video
  folder is read frame by frame (the single-frame baseline of a video model);
* ``video`` (False): for the embedded default, use the synthetic video even with ``frames = 1``;
* ``crop`` (64): training/search crop side, ``None`` for whole images; ``flip`` (True);
* ``seed`` (0): augmentation and split seed; ``val_fraction`` (0.1): share of the training
  items (of the VIDEOS for video folders) held out for validation when the folder has no
  validation split; ``full_window`` (True): evaluate only frames with a full window;
* ``eval_window`` (None): video validation/test sets keep only the frames whose window of this
  size lies inside the video (a single-frame model scored on the frames a ``frames = 5`` model
  is scored on); None: ``frames``;
* ``synthetic_count`` (None): number of synthetic training images; ``synthetic_val_count``
  (None): number of synthetic validation crops the SEARCH's upper level draws from (default 8;
  more lets a search epoch take more steps; training validates on the 8 fixed ones).

Validation never reads test files: it is the folder's ``val`` split when present, else a seeded
slice of the training split (``datasets.splits.split_train_val``); the embedded default has
disjoint train/val/test photographs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch.utils.data import Dataset

from datasets.derain import DerainPairs, split_folder
from datasets.derain_video import DerainVideo, find_videos
from datasets.errors import DataError, no_folder
from datasets.pairs import describe_data, pair_dirs
from datasets.splits import split_train_val
from datasets.synthetic_rain import SyntheticRain, SyntheticRainVideo
from datasets.transforms import as_hw, item_generator

__all__ = ["DerainView", "SETTINGS_DEFAULTS", "is_video_folder", "open_folder", "restrict_to_window", "search_sets",
           "train_sets", "test_set"]

SETTINGS_DEFAULTS: dict[str, Any] = {"data": None, "frames": 1, "video": False, "crop": 64, "flip": True,
                                     "seed": 0, "val_fraction": 0.1, "full_window": True,
                                     "synthetic_count": None, "synthetic_val_count": None,
                                     "eval_window": None}
_KEYS = ("frames", "input", "target")


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(settings) - set(SETTINGS_DEFAULTS))
    if unknown:
        raise DataError(f"unknown deraining data setting(s) {unknown}; known: {sorted(SETTINGS_DEFAULTS)}")
    return {**SETTINGS_DEFAULTS, **settings}


class DerainView(Dataset):
    """Items ``indices`` of ``base`` with a random crop and flips drawn from ``(seed, epoch,
    index)`` only; the same window for ``frames``, ``input`` and ``target``. ``verify`` defers to
    the base set."""

    def __init__(self, base: Dataset, indices: Optional[Sequence[int]] = None, crop: Any = None,
                 flip: bool = True, seed: int = 0) -> None:
        self.base = base
        self.indices = list(range(len(base))) if indices is None else list(indices)  # type: ignore[arg-type]
        self.crop = None if crop is None else as_hw(crop)
        self.flip, self.seed, self.epoch = flip, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def verify(self, progress: bool = False) -> None:
        self.base.verify(progress)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        i = self.indices[index]
        item = dict(self.base[i])
        gen = item_generator(self.seed, self.epoch, i)
        H, W = item["input"].shape[-2:]
        if self.crop is not None:
            h, w = self.crop
            if h > H or w > W:
                raise DataError(f"image '{item['name']}' ({H}x{W}) is smaller than the crop {h}x{w}; use a smaller crop")
            top = int(torch.randint(H - h + 1, (1,), generator=gen))
            left = int(torch.randint(W - w + 1, (1,), generator=gen))
            for k in _KEYS:
                if k in item:
                    item[k] = item[k][..., top : top + h, left : left + w]
        if self.flip:
            dims = [d for d, p in ((-1, torch.rand((), generator=gen)), (-2, torch.rand((), generator=gen))) if p < 0.5]
            if dims:
                for k in _KEYS:
                    if k in item:
                        item[k] = item[k].flip(dims)
        for k in _KEYS:
            if k in item:
                item[k] = item[k].contiguous()
        item["size"] = torch.tensor(item["input"].shape[-2:])
        return item


def restrict_to_window(dataset: Dataset, window: Optional[int]) -> Dataset:
    """Drop the items of a video set (``DerainVideo``, ``SyntheticRainVideo``) whose frame has no
    full window of ``window`` frames; other sets and ``None`` pass unchanged."""
    index = getattr(dataset, "index", None)
    if window is None or index is None:
        return dataset
    r = int(window) // 2

    def length(v: int) -> int:  # DerainVideo holds its videos, SyntheticRainVideo one length for all
        videos = getattr(dataset, "videos", None)
        return len(videos[v]) if isinstance(videos, list) else int(dataset.length)  # type: ignore[attr-defined]

    dataset.index = [(v, k) for v, k in index if r <= k < length(v) - r]  # type: ignore[attr-defined]
    if not dataset.index:  # type: ignore[attr-defined]
        raise DataError(f"no video frame has a full window of {window} frames; use a smaller eval_window")
    return dataset


def is_video_folder(root: str, split: Optional[str] = None) -> bool:
    """Whether ``root`` (or its ``split`` folder) holds ``<video>/rfc-<k>`` frames."""
    d = split_folder(Path(root), split) or Path(root)
    if not d.is_dir():
        return False
    has = lambda f: any(p.name.lower().startswith("rfc-") for p in f.iterdir() if p.is_file())  # noqa: E731
    return has(d) or any(has(v) for v in d.iterdir() if v.is_dir())


def open_folder(root: str | list[str], split: Optional[str], s: dict[str, Any], full_window: bool = False) -> Dataset:
    """``DerainVideo`` for video folders (or ``frames > 1``), else ``DerainPairs``; two folders
    ``[RAINY_DIR, CLEAN_DIR]`` are single-image pairs."""
    if pair_dirs(root) is not None:
        if int(s["frames"]) > 1:
            raise DataError(f"--frames {s['frames']} needs a video folder (DIR/<video>/rfc-<k>.jpg), not --pairs; "
                            "pass the folder to --data or use --frames 1")
        return DerainPairs(root)
    if not Path(root).is_dir():
        raise no_folder(root)
    if int(s["frames"]) > 1 or is_video_folder(root, split):
        return DerainVideo(root, split, int(s["frames"]), full_window)
    return DerainPairs(root, split)


def _use_video(s: dict[str, Any]) -> bool:
    return int(s["frames"]) > 1 or bool(s["video"])


def _train_val(s: dict[str, Any], val_count: Optional[int] = None) -> tuple[Dataset, Optional[Sequence[int]], Dataset]:
    """(training base, its indices, validation set) without any test file; ``val_count``: synthetic
    validation images (None: the split's default)."""
    if s["data"] is None:
        if _use_video(s):
            return SyntheticRainVideo("train", int(s["frames"])), None, SyntheticRainVideo("val", int(s["frames"]))
        return SyntheticRain("train", count=s["synthetic_count"]), None, SyntheticRain("val", count=val_count)
    root, frac, seed = s["data"], float(s["val_fraction"]), int(s["seed"])
    train = open_folder(root, "train", s)
    if pair_dirs(root) is None and split_folder(Path(root), "val") is not None:
        return train, None, open_folder(root, "val", s, bool(s["full_window"]))
    if isinstance(train, DerainVideo):
        videos = find_videos(root, "train")
        if len(videos) < 2:
            raise DataError(f"'{root}' has one training video and no val/ folder; add a video or a val/ split")
        tr, va = split_train_val(len(videos), frac, seed)
        frames = int(s["frames"])
        return (DerainVideo(root, "train", frames, videos=[videos[i] for i in tr]), None,
                DerainVideo(root, "train", frames, bool(s["full_window"]), videos=[videos[i] for i in va]))
    if len(train) < 2:  # type: ignore[arg-type]
        raise DataError(f"'{describe_data(root)}' has {len(train)} training pair(s); add images to split off validation")
    tr, va = split_train_val(len(train), frac, seed)  # type: ignore[arg-type]
    return train, tr, DerainView(train, va, None, False, seed)


def search_sets(settings: dict[str, Any]) -> tuple[DerainView, DerainView]:
    """``(lower, upper)``: the training part (weights) and the validation part (architecture),
    both cropped and flipped."""
    s = _settings(settings)
    base, idx, val = _train_val(s, s["synthetic_val_count"])
    seed = int(s["seed"])
    val_base, val_idx = (val.base, val.indices) if isinstance(val, DerainView) else (val, None)
    return (DerainView(base, idx, s["crop"], bool(s["flip"]), seed),
            DerainView(val_base, val_idx, s["crop"], bool(s["flip"]), seed + 1))


def train_sets(settings: dict[str, Any]) -> tuple[DerainView, Dataset]:
    """``(training set with crops/flips, validation set at full resolution)``."""
    s = _settings(settings)
    base, idx, val = _train_val(s)
    return DerainView(base, idx, s["crop"], bool(s["flip"]), int(s["seed"])), restrict_to_window(val, s["eval_window"])


def test_set(data: str | list[str] | None, settings: dict[str, Any]) -> Dataset:
    """The folder's test split (or the folder itself, or all pairs of two folders), or the synthetic
    test split; video sets
    keep only full-window frames unless ``full_window`` is False."""
    s = _settings({**settings, "data": data})
    if data is None:
        if _use_video(s):
            dataset: Dataset = SyntheticRainVideo("test", int(s["frames"]), bool(s["full_window"]))
        else:
            return SyntheticRain("test")
    else:
        dataset = open_folder(data, "test", s, bool(s["full_window"]))
    return restrict_to_window(dataset, s["eval_window"])
