"""The embedded default of the deraining task: synthetic rain over scikit-image photographs, and a
synthetic rainy video; no downloads.

Sources: the photographs and DISJOINT train/val/test split of ``datasets.synthetic_lowlight``
(train ``astronaut``, ``rocket``, both ``stereo_motorcycle`` views; val ``chelsea``; test
``coffee``), downscaled by 2.

Rain model (per image, from its own seeded generator)::

    rainy = quantise8(clip((1 - h) * clean + h * A + sum_l b_l * streaks_l))

with ``L ~ {2, 3, 4}`` layers; layer ``l`` is a sparse field of impulses (density ``~ U(0.001,
0.008)`` per pixel, intensities ``U(0.5, 1)``) blurred along a line of length ``~ U(5, 17)`` px at
an angle ``~ theta + U(-10, 10)`` degrees from vertical (``theta ~ U(-30, 30)`` shared by the
image; line kernel ``kornia.filters.get_motion_kernel2d``), widened by a 3x3 box half the time,
normalised to peak 1 and scaled by brightness ``b_l ~ U(0.25, 0.6)``; haze ``h ~ U(0, 0.15)``
toward the airlight ``A ~ U(0.7, 1)``. The target is the clean crop, 8-bit quantised.

Video (``SyntheticRainVideo``): a photograph panned (``U(-1.5, 1.5)`` px/frame each axis) and
zoomed (``U(-1, 1)`` %/frame) over frames, with rain layers that fall ``U(4, 10)`` px/frame along
their streak direction (the streak field is drawn once per layer on a larger canvas and shifted),
haze constant over the video. Items as ``datasets.derain_video.DerainVideo``.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.derain_video import window_indices
from datasets.errors import DataError
from datasets.synthetic_lowlight import SOURCES, _load_source
from datasets.transforms import Size, as_hw

__all__ = ["SyntheticPhotos", "SyntheticRain", "SyntheticRainVideo", "add_rain", "IMAGE_DEFAULTS", "VIDEO_DEFAULTS"]

#: split -> (crop size, number of images).
IMAGE_DEFAULTS: dict[str, tuple[int, int]] = {"train": (64, 64), "val": (96, 8), "test": (96, 8)}
#: split -> (frame size, number of videos, frames per video).
VIDEO_DEFAULTS: dict[str, tuple[int, int, int]] = {"train": (64, 8, 12), "val": (64, 2, 10), "test": (96, 2, 12)}
_SPLIT_ID = {"train": 0, "val": 1, "test": 2}


def _quantise8(x: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(x, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def _to_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32))


def _streak_field(rng: np.random.Generator, h: int, w: int, angle: float) -> np.ndarray:
    """One layer ``[h, w]`` of motion-blurred sparse impulses with peak 1."""
    from kornia.filters import get_motion_kernel2d  # deferred: kornia import is slow

    density = rng.uniform(0.001, 0.008)
    field = (rng.random((h, w)) < density) * rng.uniform(0.5, 1.0, (h, w))
    length = int(rng.integers(2, 9)) * 2 + 1  # odd 5..17
    kernel = get_motion_kernel2d(length, 90.0 + angle)[0].numpy()
    r = length // 2 + 1  # periodic field (the video shifts it with np.roll): pad by wrapping
    padded = np.pad(field.astype(np.float32), r, mode="wrap")
    streaks = cv2.filter2D(padded, -1, kernel)
    if rng.random() < 0.5:
        streaks = cv2.blur(streaks, (3, 3))
    streaks = np.ascontiguousarray(streaks[r:-r, r:-r])
    peak = float(streaks.max())
    return streaks / peak if peak > 0 else streaks


def _rain_params(rng: np.random.Generator) -> dict:
    theta = rng.uniform(-30.0, 30.0)
    layers = int(rng.integers(2, 5))
    return {"angles": [theta + rng.uniform(-10.0, 10.0) for _ in range(layers)],
            "brightness": [rng.uniform(0.25, 0.6) for _ in range(layers)],
            "haze": rng.uniform(0.0, 0.15), "airlight": rng.uniform(0.7, 1.0)}


def _compose(clean: np.ndarray, rain: np.ndarray, haze: float, airlight: float) -> np.ndarray:
    return _quantise8((1.0 - haze) * clean + haze * airlight + rain[..., None])


def add_rain(clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rainy version of ``clean`` ``[H, W, 3]`` in ``[0, 1]`` (model in the module docstring);
    ``[H, W, 3]`` float32, 8-bit quantised."""
    p = _rain_params(rng)
    H, W = clean.shape[:2]
    rain = sum(b * _streak_field(rng, H, W, a) for a, b in zip(p["angles"], p["brightness"]))
    return _compose(clean, rain, p["haze"], p["airlight"])


def _check_split(split: str) -> None:
    if split not in SOURCES:
        raise DataError(f"unknown synthetic split '{split}'; use one of {sorted(SOURCES)}")


class SyntheticPhotos(Dataset):
    """``count`` generated items of ``split`` over the photographs named ``sources`` (as
    ``datasets.synthetic_lowlight.SOURCES`` names them): item ``i`` is drawn from photograph
    ``sources[i % len(sources)]`` with its own generator seeded by ``(seed, split, i)`` (``draw``),
    so it depends on nothing else. Subclasses make the item in ``__getitem__``."""

    def __init__(self, split: str, sources: Sequence[str], count: int, seed: int) -> None:
        if count < 1:
            raise DataError(f"synthetic count must be >= 1, got {count}")
        self.split, self.sources, self.count, self.seed = split, sources, int(count), seed

    def __len__(self) -> int:
        return self.count

    def verify(self, progress: bool = False) -> None:
        """Generated data needs no check (kept for the folder-dataset protocol)."""

    def draw(self, index: int) -> tuple[str, np.ndarray, np.random.Generator]:
        """``(source name, photograph [H, W, 3] float32 in [0, 1], generator)`` of item ``index``."""
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} items")
        source = self.sources[index % len(self.sources)]
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, _SPLIT_ID[self.split], index]))
        return source, _load_source(source), rng


class SyntheticRain(SyntheticPhotos):
    """Deterministic synthetic rainy/clean pairs (items as ``datasets.derain.DerainPairs``).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint source photographs).
        size: crop size; ``None``: ``IMAGE_DEFAULTS[split][0]``.
        count: number of items; ``None``: ``IMAGE_DEFAULTS[split][1]``.
        seed: item ``i`` depends only on ``(seed, split, i)``.
    """

    def __init__(self, split: str = "train", size: Optional[Size] = None, count: Optional[int] = None,
                 seed: int = 0) -> None:
        _check_split(split)
        super().__init__(split, SOURCES[split], IMAGE_DEFAULTS[split][1] if count is None else int(count), seed)
        self.size = as_hw(IMAGE_DEFAULTS[split][0] if size is None else size)

    def __getitem__(self, index: int) -> dict:
        source, img, rng = self.draw(index)
        (h, w), (H, W) = self.size, img.shape[:2]
        if h > H or w > W:
            raise DataError(f"synthetic size {h}x{w} exceeds source image '{source}' ({H}x{W})")
        top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        clean = _quantise8(img[top : top + h, left : left + w])
        rainy = add_rain(clean, rng)
        return {"input": _to_tensor(rainy), "target": _to_tensor(clean),
                "name": f"{self.split}_{index:04d}_{source}.png", "size": torch.tensor([h, w])}


@functools.lru_cache(maxsize=16)
def _make_video(seed: int, split: str, v: int, size: tuple[int, int], length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rainy, clean)``, each ``[length, h, w, 3]``: one synthetic video (module docstring)."""
    sources = SOURCES[split]
    img = _load_source(sources[v % len(sources)])
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_ID[split], 1000 + v]))
    (h, w), (H, W) = size, img.shape[:2]
    pan = rng.uniform(-1.5, 1.5, 2)
    zoom = rng.uniform(-0.01, 0.01)
    margin = 1.0 + abs(zoom) * length + 0.1
    if h * margin + abs(pan[0]) * length >= H or w * margin + abs(pan[1]) * length >= W:
        raise DataError(f"synthetic video size {h}x{w} is too large for source '{sources[v % len(sources)]}'")
    cy = rng.uniform(h * margin / 2 + abs(pan[0]) * length, H - h * margin / 2 - abs(pan[0]) * length)
    cx = rng.uniform(w * margin / 2 + abs(pan[1]) * length, W - w * margin / 2 - abs(pan[1]) * length)
    p = _rain_params(rng)
    speeds = [rng.uniform(4.0, 10.0) for _ in p["angles"]]
    ch, cw = h + 12 * length, w + 12 * length
    fields = [_streak_field(rng, ch, cw, a) for a in p["angles"]]
    clean, rainy = [], []
    for t in range(length):
        s = 1.0 + zoom * t  # magnification
        y0, x0 = cy + pan[0] * t, cx + pan[1] * t
        M = np.array([[s, 0.0, w / 2 - s * x0], [0.0, s, h / 2 - s * y0]], dtype=np.float64)
        frame = _quantise8(cv2.warpAffine(img, M, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        rain = np.zeros((h, w), np.float32)
        for f, a, b, sp in zip(fields, p["angles"], p["brightness"], speeds):
            rad = np.deg2rad(a)
            dy, dx = int(round(sp * t * np.cos(rad))), int(round(-sp * t * np.sin(rad)))
            rain += b * np.roll(f, (dy, dx), axis=(0, 1))[:h, :w]
        clean.append(frame)
        rainy.append(_compose(frame, rain, p["haze"], p["airlight"]))
    return np.stack(rainy), np.stack(clean)


class SyntheticRainVideo(Dataset):
    """Deterministic synthetic rainy videos as frame windows (items as ``DerainVideo``).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint source photographs).
        frames: odd window length; full_window: keep only frames with a complete window.
        size, videos, length: frame size, number of videos, frames per video
            (``None``: ``VIDEO_DEFAULTS[split]``).
        seed: video ``v`` depends only on ``(seed, split, v)``.
    """

    def __init__(self, split: str = "train", frames: int = 5, full_window: bool = False,
                 size: Optional[Size] = None, videos: Optional[int] = None, length: Optional[int] = None,
                 seed: int = 0) -> None:
        _check_split(split)
        window_indices(0, 1, frames)
        d_size, d_videos, d_length = VIDEO_DEFAULTS[split]
        self.split, self.frames, self.seed = split, frames, seed
        self.size = as_hw(d_size if size is None else size)
        self.videos = d_videos if videos is None else int(videos)
        self.length = d_length if length is None else int(length)
        r = frames // 2
        lo, hi = (r, self.length - r) if full_window else (0, self.length)
        self.index = [(v, k) for v in range(self.videos) for k in range(lo, hi)]
        if not self.index:
            raise DataError(f"synthetic videos of {self.length} frames have no full window of {frames}")

    def __len__(self) -> int:
        return len(self.index)

    def verify(self, progress: bool = False) -> None:
        """Generated data needs no check (kept for the folder-dataset protocol)."""

    def video(self, v: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole video ``v``: ``(rainy, clean)``, each ``[length, 3, h, w]``."""
        rainy, clean = _make_video(self.seed, self.split, v, self.size, self.length)
        return torch.from_numpy(rainy).permute(0, 3, 1, 2), torch.from_numpy(clean).permute(0, 3, 1, 2)

    def __getitem__(self, index: int) -> dict:
        v, k = self.index[index]
        rainy, clean = self.video(v)
        window = rainy[window_indices(k, self.length, self.frames)].contiguous()
        return {"frames": window, "input": rainy[k].contiguous(), "target": clean[k].contiguous(),
                "name": f"{self.split}_video{v:02d}/rfc-{k + 1}.png", "size": torch.tensor(self.size)}
