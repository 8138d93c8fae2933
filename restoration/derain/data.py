"""Data of the deraining task: the embedded synthetic rain or a benchmark folder, split and
augmented for search and training.

The functions read these fields of ``DerainSettings``:

* ``data``: benchmark folder, two folders ``[RAINY_DIR, CLEAN_DIR]`` (``--pairs``, matched by name or
  number; one set, split like a single folder) or ``None`` (embedded synthetic data);
* ``frames``: odd window; > 1 reads videos (``datasets.derain_video``); with 1, a video
  folder is read frame by frame (the single-frame baseline of a video model);
* ``video``: for the embedded default, use the synthetic video even with ``frames = 1``;
* ``crop``: training/search crop side, ``None`` for whole images; ``flip``;
* ``seed``: augmentation and split seed; ``val_fraction``: share of the training
  items (of the VIDEOS for video folders) held out for validation when the folder has no
  validation split; ``full_window``: evaluate only frames with a full window;
* ``eval_window``: video validation/test sets keep only the frames whose window of this
  size lies inside the video (a single-frame model scored on the frames a ``frames = 5`` model
  is scored on); None: ``frames``;
* ``synthetic_count``: number of synthetic training images (None: 64); ``synthetic_val_count``:
  number of synthetic validation crops the SEARCH's upper level draws from (None: 8; more lets a
  search epoch take more steps; training validates on the 8 fixed ones).

Crops and flips are ``datasets.views.CropFlipView`` windows shared by ``frames``, ``input`` and
``target``. Validation never reads test files: it is the folder's ``val`` split when present, else a
seeded slice of the training split (``datasets.splits.split_train_val``); the embedded default has
disjoint train/val/test photographs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from torch.utils.data import Dataset

from datasets.derain import DerainPairs, split_folder
from datasets.derain_video import DerainVideo, find_videos
from datasets.errors import DataError, no_folder
from datasets.pairs import describe_data, pair_dirs
from datasets.splits import split_train_val
from datasets.synthetic_rain import SyntheticRain, SyntheticRainVideo
from datasets.views import CropFlipView
from restoration.derain.settings import DerainSettings

__all__ = ["StaticWindows", "is_video_folder", "open_folder", "restrict_to_window", "search_sets", "train_sets", "test_set"]

#: the images of an item that share one crop window and flips
_KEYS = ("frames", "input", "target")


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


def open_folder(root: str | list[str], split: Optional[str], s: DerainSettings, full_window: bool = False) -> Dataset:
    """``DerainVideo`` for video folders (or ``frames > 1``), else ``DerainPairs``; two folders
    ``[RAINY_DIR, CLEAN_DIR]`` are single-image pairs."""
    if pair_dirs(root) is not None:
        if s.frames > 1:
            raise DataError(f"--frames {s.frames} needs a video folder (DIR/<video>/rfc-<k>.jpg), not --pairs; "
                            "pass the folder to --data or use --frames 1")
        return DerainPairs(root)
    if not Path(root).is_dir():
        raise no_folder(root)
    if s.frames > 1 or is_video_folder(root, split):
        return DerainVideo(root, split, s.frames, full_window)
    return DerainPairs(root, split)


def _use_video(s: DerainSettings) -> bool:
    return s.frames > 1 or s.video


_Part = tuple[Dataset, Optional[Sequence[int]]]  # a base set and its items (None: all)


def _train_val(s: DerainSettings, val_count: Optional[int] = None) -> tuple[_Part, _Part]:
    """``((training base, its indices), (validation base, its indices))`` without any test file;
    ``val_count``: synthetic validation images (None: the split's default)."""
    if s.data is None:
        if _use_video(s):
            return (SyntheticRainVideo("train", s.frames), None), (SyntheticRainVideo("val", s.frames), None)
        return (SyntheticRain("train", count=s.synthetic_count), None), (SyntheticRain("val", count=val_count), None)
    root = s.data
    train = open_folder(root, "train", s)
    if pair_dirs(root) is None and split_folder(Path(root), "val") is not None:
        return (train, None), (open_folder(root, "val", s, s.full_window), None)
    if isinstance(train, DerainVideo):
        videos = find_videos(root, "train")
        if len(videos) < 2:
            raise DataError(f"'{root}' has one training video and no val/ folder; add a video or a val/ split")
        tr, va = split_train_val(len(videos), s.val_fraction, s.seed)
        return ((DerainVideo(root, "train", s.frames, videos=[videos[i] for i in tr]), None),
                (DerainVideo(root, "train", s.frames, s.full_window, videos=[videos[i] for i in va]), None))
    if len(train) < 2:  # type: ignore[arg-type]
        raise DataError(f"'{describe_data(root)}' has {len(train)} training pair(s); add images to split off validation")
    tr, va = split_train_val(len(train), s.val_fraction, s.seed)  # type: ignore[arg-type]
    return (train, tr), (train, va)


def search_sets(s: DerainSettings) -> tuple[CropFlipView, CropFlipView]:
    """``(lower, upper)``: the training part (weights) and the validation part (architecture),
    both cropped and flipped."""
    (base, idx), (val, val_idx) = _train_val(s, s.synthetic_val_count)
    return (CropFlipView(base, idx, s.crop, s.flip, s.seed, _KEYS),
            CropFlipView(val, val_idx, s.crop, s.flip, s.seed + 1, _KEYS))


def train_sets(s: DerainSettings) -> tuple[CropFlipView, Dataset]:
    """``(training set with crops/flips, validation set at full resolution)``."""
    (base, idx), (val, val_idx) = _train_val(s)
    if val_idx is not None:
        val = CropFlipView(val, val_idx, None, False, s.seed, _KEYS)
    return CropFlipView(base, idx, s.crop, s.flip, s.seed, _KEYS), restrict_to_window(val, s.eval_window)


class StaticWindows(Dataset):
    """Single-image pairs as still videos, for a model that reads windows of ``frames`` frames: item
    ``frames`` is the rainy image repeated, ``[T, 3, H, W]``; the rest of the item is the pair's."""

    def __init__(self, pairs: Dataset, frames: int) -> None:
        self.pairs, self.frames = pairs, int(frames)

    def verify(self, progress: bool = False) -> None:
        self.pairs.verify(progress=progress)  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.pairs)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict:
        item = dict(self.pairs[index])
        item["frames"] = item["input"][None].expand(self.frames, *item["input"].shape).contiguous()
        return item


def test_set(data: str | list[str] | None, s: DerainSettings) -> Dataset:
    """The folder ``data``'s test split (or the folder itself, or all pairs of two folders), or the
    synthetic test split; video sets keep only full-window frames unless ``s.full_window`` is False. A
    model of ``frames > 1`` scores single-image pairs as still videos (``StaticWindows``)."""
    if data is None:
        if not _use_video(s):
            return SyntheticRain("test")
        dataset: Dataset = SyntheticRainVideo("test", s.frames, s.full_window)
    elif s.frames > 1 and (pair_dirs(data) is not None or not is_video_folder(str(data), "test")):
        if pair_dirs(data) is None and not Path(str(data)).is_dir():
            raise no_folder(str(data))
        pairs = DerainPairs(data) if pair_dirs(data) is not None else DerainPairs(str(data), "test")
        return StaticWindows(pairs, s.frames)
    else:
        dataset = open_folder(data, "test", s, s.full_window)
    return restrict_to_window(dataset, s.eval_window)
