"""Embedded registration data: label-mapped images deformed by random smooth diffeomorphisms.

2D (default): scikit-image's bundled photos, grey, centre-cropped and resized to ``size^2``; the
label map of each photo is an intensity segmentation: the photo smoothed (Gaussian, sigma
``size/32``) and cut at its 25/50/75 % quantiles into labels 0-3 (0 = background). Disjoint photos
per split (``SOURCES``). 3D: ``size^3`` volumes of 3 random overlapping ellipsoids (labels 1-3,
later ones on top) on background 0, a constant intensity per label plus smooth noise; each split
draws its volumes from its own seed stream (``SPLIT_IDS``), so no volume is shared.

A pair deforms one source twice: ``moving = source o phi_m``, ``fixed = source o phi_f``, with
``phi = id + exp(v)``: ``v`` a random velocity field (normal values on a ``5^dims`` control grid,
cubic-spline upsampled, scaled to a peak of ``amplitude`` pixels) integrated by scaling and
squaring (7 steps) with ``scipy.ndimage.map_coordinates`` (linear, border clamped); images are
resampled linearly, label maps by nearest neighbour. The training split draws new deformations
each epoch (``set_epoch``); validation and test pairs are fixed. Items as ``datasets.registration``:
``{"moving", "fixed": [1, *S] float32, "moving_seg", "fixed_seg": [1, *S] int64, "name", "size"}``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from scipy import ndimage
from torch.utils.data import Dataset

__all__ = ["DEFAULT_COUNT", "SOURCES", "SPLIT_IDS", "SyntheticRegistration", "integrate_svf_numpy",
           "random_velocity", "source_image", "source_volume", "warp_numpy"]

SOURCES: dict[str, tuple[str, ...]] = {
    "train": ("camera", "coins", "moon", "clock", "page", "immunohistochemistry"),
    "val": ("chelsea", "coffee"),
    "test": ("astronaut", "rocket"),
}
SPLIT_IDS = {"train": 0, "val": 1, "test": 2}
#: (dims, split) -> number of pairs, and number of source volumes in 3D. 2D validation: 32 fixed pairs
#: (8 could not separate smoothness weights whose Dice differs by ~0.005); the test split stays at 8.
DEFAULT_COUNT = {(2, "train"): 96, (2, "val"): 32, (2, "test"): 8, (3, "train"): 16, (3, "val"): 4, (3, "test"): 4}
SOURCES_3D = {"train": 8, "val": 2, "test": 2}
DEFAULT_SIZE = {2: 64, 3: 32}
DEFAULT_AMPLITUDE = {2: 6.0, 3: 3.0}
INT_STEPS = 7
CONTROL = 5


def warp_numpy(array: np.ndarray, flow: np.ndarray, order: int = 1) -> np.ndarray:
    """``out(p) = array(p + flow(p))``: ``array`` ``[*S]``, ``flow`` ``[dims, *S]`` (pixels)."""
    coords = np.indices(array.shape, dtype=np.float64) + flow
    for i, s in enumerate(array.shape):
        np.clip(coords[i], 0, s - 1, out=coords[i])
    return ndimage.map_coordinates(array, coords, order=order, mode="nearest")


def integrate_svf_numpy(velocity: np.ndarray, steps: int = INT_STEPS) -> np.ndarray:
    """Scaling and squaring of ``velocity`` ``[dims, *S]``: ``u <- u + u o (id + u)``, ``steps`` times."""
    u = velocity / 2 ** steps
    for _ in range(steps):
        u = u + np.stack([warp_numpy(c, u) for c in u])
    return u


def random_velocity(shape: tuple[int, ...], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field ``[dims, *shape]`` with peak magnitude ``amplitude`` (pixels)."""
    dims = len(shape)
    coarse = rng.standard_normal((dims,) + (CONTROL,) * dims)
    zoom = [s / CONTROL for s in shape]
    v = np.stack([ndimage.zoom(c, zoom, order=3, mode="nearest") for c in coarse])
    peak = np.abs(v).max()
    return v * (amplitude / peak) if peak > 0 else v


def source_image(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Grey photo ``skimage.data.<name>`` ``[size, size]`` in ``[0, 1]`` and its label map (0-3)."""
    import skimage.data
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.transform import resize

    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
    if img.ndim == 3:
        img = rgb2gray(rgba2rgb(img) if img.shape[-1] == 4 else img)
    img = img / max(img.max(), 1e-8)
    h, w = img.shape
    s = min(h, w)
    img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    img = resize(img, (size, size), anti_aliasing=True)
    smooth = ndimage.gaussian_filter(img, sigma=size / 32)
    seg = np.digitize(smooth, np.quantile(smooth, [0.25, 0.5, 0.75]))
    return img.astype(np.float32), seg.astype(np.int64)


def source_volume(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Random 3D volume ``[size]*3`` of 3 ellipsoids (labels 1-3) and its intensity image."""
    grid = np.indices((size,) * 3, dtype=np.float64)
    seg = np.zeros((size,) * 3, np.int64)
    for label in (1, 2, 3):
        centre = rng.uniform(0.3, 0.7, 3) * size
        radii = rng.uniform(0.12, 0.3, 3) * size
        inside = sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3)) <= 1
        seg[inside] = label
    levels = np.array([0.0, 0.35, 0.65, 1.0])
    img = levels[seg] + 0.05 * ndimage.gaussian_filter(rng.standard_normal(seg.shape), 1.5)
    img = ndimage.gaussian_filter(img, 0.7)
    return np.clip(img, 0, 1).astype(np.float32), seg


class SyntheticRegistration(Dataset):
    """Embedded pairs for ``split`` in ``"train" | "val" | "test"`` (see the module docstring).

    Args: ``dims`` 2 or 3; ``size`` side length (default 64 in 2D, 32 in 3D); ``count`` pairs
    (default ``DEFAULT_COUNT``); ``amplitude`` peak velocity in pixels; ``seed`` of the data.
    """

    def __init__(self, split: str, dims: int = 2, size: Optional[int] = None, count: Optional[int] = None,
                 amplitude: Optional[float] = None, seed: int = 0) -> None:
        if split not in SPLIT_IDS:
            raise ValueError(f"split must be one of {list(SPLIT_IDS)}, got {split!r}")
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.split, self.dims, self.seed, self.epoch = split, dims, seed, 0
        self.size = DEFAULT_SIZE[dims] if size is None else int(size)
        self.count = DEFAULT_COUNT[(dims, split)] if count is None else int(count)
        self.amplitude = DEFAULT_AMPLITUDE[dims] * self.size / DEFAULT_SIZE[dims] if amplitude is None else amplitude
        self._sources: dict[int, tuple[np.ndarray, np.ndarray, str]] = {}

    def set_epoch(self, epoch: int) -> None:
        """New training deformations for ``epoch`` (validation and test pairs never change)."""
        self.epoch = epoch

    def verify(self, progress: bool = False) -> None:
        """Nothing to check on generated data (kept for the folder-dataset protocol)."""

    def __len__(self) -> int:
        return self.count

    def n_sources(self) -> int:
        return len(SOURCES[self.split]) if self.dims == 2 else SOURCES_3D[self.split]

    def source(self, s: int) -> tuple[np.ndarray, np.ndarray, str]:
        """(image, label map, name) of source ``s``, cached."""
        if s not in self._sources:
            if self.dims == 2:
                name = SOURCES[self.split][s]
                img, seg = source_image(name, self.size)
            else:
                name = f"{self.split}vol{s}"
                rng = np.random.default_rng([self.seed, 3, SPLIT_IDS[self.split], s])
                img, seg = source_volume(rng, self.size)
            self._sources[s] = (img, seg, name)
        return self._sources[s]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.count:
            raise IndexError(index)
        img, seg, name = self.source(index % self.n_sources())
        epoch = self.epoch if self.split == "train" else 0
        rng = np.random.default_rng([self.seed, self.dims, SPLIT_IDS[self.split], epoch, index])
        out = {}
        for role in ("moving", "fixed"):
            u = integrate_svf_numpy(random_velocity(img.shape, self.amplitude, rng))
            out[role] = torch.from_numpy(warp_numpy(img, u, 1).astype(np.float32))[None]
            out[role + "_seg"] = torch.from_numpy(warp_numpy(seg, u, 0).astype(np.int64))[None]
        out["name"] = f"{name}_{index:03d}"
        out["size"] = torch.tensor(img.shape)
        return out
