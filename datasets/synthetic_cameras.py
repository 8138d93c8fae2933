"""Synthetic low-light cameras: the embedded photographs of ``synthetic_lowlight`` seen through a
few distinct, fixed degradation profiles, so that the embedded data has several "scenes" to
meta-learn over (low-light fast adaptation) and held-out ones to adapt to.

A ``Camera`` is a profile: an exposure range, a tone gamma range, its own colour cast (fixed RGB
gains), shot noise (photons per unit intensity, log-uniform in a range), read noise, a tone curve
exponent applied after the noise (below 1 lifts the shadows and the noise with them, as an
in-camera curve does) and a black level (lifted pedestal). Per item (``x`` the clean sRGB crop in
``[0, 1]``, the ranges drawn from the item's own generator)::

    low = quantise8(black + (1 - black) * clip(Poisson(a * k * cast * x**g) / a + N(0, s**2))**tone)

``CAMERAS`` lists ``META_CAMERAS`` (six cameras for meta-training, on the training photographs
``SOURCES["train"]``) and ``HELD_OUT_CAMERAS`` (two cameras never seen in meta-training, on the
photographs no training split uses: ``HELD_OUT_SOURCES``, the validation and test sources of the
default data). A held-out camera on the held-out photographs is "a held-out scene": its adaptation
images are crops of the LEFT half of each photograph, its evaluation images crops of the RIGHT
half, so the two never share a pixel. ``write_camera_folder`` writes such a scene as a LOL-layout
folder (``our485/{low,high}``: the adaptation images, ``eval15/{low,high}``: the evaluation ones);
``write_camera_scenes`` writes cameras as ``ROOT/<camera>/{low,high}`` (the layout of
``search.py --task lowlight --recipe adapt --data ROOT``).

Item ``i`` of a camera depends only on ``(seed, camera, region, i)``, never on access order; the
default data of ``SyntheticLowLight`` is not touched (its items draw from other seeds).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from datasets.errors import DataError
from datasets.io import PathLike, write_image
from datasets.synthetic_lowlight import SOURCES, _load_source, _quantise8, _to_tensor
from datasets.transforms import Size, as_hw

__all__ = ["CAMERAS", "Camera", "HELD_OUT_CAMERAS", "HELD_OUT_SOURCES", "META_CAMERAS", "REGIONS",
           "SyntheticCamera", "camera_by_name", "degrade_camera", "write_camera_folder", "write_camera_scenes"]


@dataclass(frozen=True)
class Camera:
    """A fixed degradation profile (module docstring): ranges are ``(low, high)`` drawn per item."""

    name: str
    exposure: tuple[float, float]
    gamma: tuple[float, float]
    cast: tuple[float, float, float]
    photons: tuple[float, float]
    read_noise: tuple[float, float]
    tone: float = 1.0
    black: float = 0.0


#: Six cameras for meta-training: distinct casts, exposures, noise and tone curves.
META_CAMERAS: tuple[Camera, ...] = (
    Camera("warm-dslr", (0.08, 0.25), (1.1, 1.4), (1.12, 1.0, 0.78), (800.0, 3000.0), (0.002, 0.005)),
    Camera("cool-phone", (0.05, 0.15), (1.0, 1.3), (0.82, 0.97, 1.18), (150.0, 500.0), (0.006, 0.012), 0.85, 0.01),
    Camera("green-cctv", (0.10, 0.30), (1.3, 1.7), (0.88, 1.14, 0.90), (300.0, 1000.0), (0.004, 0.010), 1.0, 0.02),
    Camera("magenta-action", (0.04, 0.12), (1.0, 1.2), (1.10, 0.84, 1.06), (400.0, 1500.0), (0.003, 0.008), 0.9),
    Camera("neutral-dim", (0.03, 0.08), (1.2, 1.5), (1.0, 1.0, 1.0), (1000.0, 4000.0), (0.001, 0.004)),
    Camera("amber-sodium", (0.10, 0.20), (1.0, 1.3), (1.20, 0.95, 0.65), (200.0, 800.0), (0.005, 0.010), 0.8, 0.015),
)
#: Two cameras never used in meta-training.
HELD_OUT_CAMERAS: tuple[Camera, ...] = (
    Camera("teal-night", (0.05, 0.15), (1.1, 1.4), (0.80, 1.05, 1.12), (250.0, 900.0), (0.004, 0.009), 0.9, 0.01),
    Camera("rose-webcam", (0.08, 0.20), (1.2, 1.5), (1.15, 0.88, 0.95), (300.0, 1200.0), (0.003, 0.008), 1.0, 0.02),
)
CAMERAS: tuple[Camera, ...] = META_CAMERAS + HELD_OUT_CAMERAS
#: Photographs of the held-out scenes: those no training split of the default data uses.
HELD_OUT_SOURCES: tuple[str, ...] = SOURCES["val"] + SOURCES["test"]
#: Part of each photograph an item is cut from: all of it, its left half (adaptation) or right half (evaluation).
REGIONS: tuple[str, ...] = ("all", "left", "right")
_TAG = 7919  # first entropy word of every camera item: no SyntheticLowLight item shares a stream


def camera_by_name(name: Union[str, Camera]) -> Camera:
    """The camera named ``name`` (a ``Camera`` passes through); one-line ``DataError`` otherwise."""
    if isinstance(name, Camera):
        return name
    for camera in CAMERAS:
        if camera.name == name:
            return camera
    raise DataError(f"unknown synthetic camera '{name}'; use one of {', '.join(c.name for c in CAMERAS)}")


def degrade_camera(clean: np.ndarray, camera: Camera, rng: np.random.Generator) -> np.ndarray:
    """A low-light observation of ``clean`` by ``camera`` (module docstring for the model).

    Args:
        clean: ``[H, W, 3]`` float in ``[0, 1]``.
        camera: the profile.
        rng: source of the per-item parameters and the noise.

    Returns:
        ``[H, W, 3]`` float32 in ``[0, 1]``, 8-bit quantised.
    """
    k = rng.uniform(*camera.exposure)
    g = rng.uniform(*camera.gamma)
    photons = float(np.exp(rng.uniform(np.log(camera.photons[0]), np.log(camera.photons[1]))))
    read_sigma = rng.uniform(*camera.read_noise)
    dark = k * np.asarray(camera.cast) * np.power(clean, g)
    noisy = rng.poisson(dark * photons) / photons + rng.normal(0.0, read_sigma, size=dark.shape)
    toned = np.power(np.clip(noisy, 0.0, 1.0), camera.tone)
    return _quantise8(camera.black + (1.0 - camera.black) * toned)


class SyntheticCamera(Dataset):
    """Deterministic low-light pairs of one synthetic camera.

    Args:
        camera: a ``Camera`` or the name of one of ``CAMERAS``.
        sources: skimage photographs (default: ``SOURCES["train"]`` for a meta-training camera,
            ``HELD_OUT_SOURCES`` for a held-out one); item ``i`` uses source ``i % len(sources)``.
        size: crop size (int or ``(h, w)``), cut at a random place of the region.
        count: number of items.
        seed: item ``i`` depends only on ``(seed, camera, region, i)``.
        region: ``"all"``, ``"left"`` or ``"right"`` half of each photograph (``REGIONS``).

    Items: ``{"input": [3, h, w], "target": [3, h, w], "name": str, "size": LongTensor [2]}``,
    like ``PairedFolder``; values in ``[0, 1]``.
    """

    def __init__(self, camera: Union[str, Camera], sources: Optional[Sequence[str]] = None, size: Size = 64,
                 count: int = 32, seed: int = 0, region: str = "all") -> None:
        self.camera = camera_by_name(camera)
        held_out = self.camera in HELD_OUT_CAMERAS
        self.sources = tuple(sources) if sources is not None else (HELD_OUT_SOURCES if held_out else SOURCES["train"])
        if region not in REGIONS:
            raise DataError(f"unknown region '{region}'; use one of {', '.join(REGIONS)}")
        if count < 1:
            raise DataError(f"synthetic camera count must be >= 1, got {count}")
        self.size, self.count, self.seed, self.region = as_hw(size), count, seed, region
        self.camera_id = CAMERAS.index(self.camera) if self.camera in CAMERAS else len(CAMERAS)

    def __len__(self) -> int:
        return self.count

    def _window(self, name: str) -> np.ndarray:
        """The region of source ``name``: ``[H, W', 3]``."""
        clean = _load_source(name)
        half = clean.shape[1] // 2
        return {"all": clean, "left": clean[:, :half], "right": clean[:, half:]}[self.region]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for {self.count} items")
        source = self.sources[index % len(self.sources)]
        clean = self._window(source)
        rng = np.random.default_rng(np.random.SeedSequence(
            [_TAG, self.seed, self.camera_id, REGIONS.index(self.region), index]))
        H, W = clean.shape[:2]
        h, w = self.size
        if h > H or w > W:
            raise DataError(f"synthetic camera size {h}x{w} exceeds the {self.region} region of '{source}' "
                            f"({H}x{W}); use a size of at most {min(H, W)}")
        top, left = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
        clean = clean[top:top + h, left:left + w]
        low = degrade_camera(clean, self.camera, rng)
        target = _to_tensor(_quantise8(clean))
        return {"input": _to_tensor(low), "target": target,
                "name": f"{self.camera.name}_{self.region}_{index:04d}_{source}.png", "size": torch.tensor([h, w])}


def _write_pairs(data: Dataset, folder: Path) -> None:
    for i in range(len(data)):  # type: ignore[arg-type]
        item = data[i]
        write_image(folder / "low" / item["name"], item["input"])
        write_image(folder / "high" / item["name"], item["target"])


def _check_empty(folder: Path, overwrite: bool) -> None:
    if folder.exists() and any(folder.rglob("*")) and not overwrite:
        raise DataError(f"'{folder}' already holds files; pass overwrite=True or choose an empty folder")


def write_camera_folder(root: PathLike, camera: Union[str, Camera] = HELD_OUT_CAMERAS[0], adapt: int = 4,
                        evaluate: int = 8, adapt_size: Size = 96, eval_size: Size = 96, seed: int = 0,
                        overwrite: bool = False) -> Path:
    """Write a camera's scene as a LOL-layout folder: ``ROOT/our485/{low,high}`` holds ``adapt``
    pairs cut from the left half of each photograph (what ``train.py --data ROOT`` adapts on),
    ``ROOT/eval15/{low,high}`` ``evaluate`` pairs from the right half (what ``evaluate.py --data
    ROOT`` scores); the photographs are the camera's default sources. Returns ``Path(root)``."""
    out = Path(root)
    _check_empty(out, overwrite)
    _write_pairs(SyntheticCamera(camera, size=adapt_size, count=adapt, seed=seed, region="left"), out / "our485")
    _write_pairs(SyntheticCamera(camera, size=eval_size, count=evaluate, seed=seed, region="right"), out / "eval15")
    return out


def write_camera_scenes(root: PathLike, cameras: Sequence[Union[str, Camera]] = META_CAMERAS, count: int = 16,
                        size: Size = 64, seed: int = 0, overwrite: bool = False) -> Path:
    """Write each camera's pairs (its default sources, whole photographs) as ``ROOT/<camera>/{low,high}``:
    the scenes layout of ``search.py --task lowlight --recipe adapt --data ROOT``. Returns ``Path(root)``."""
    out = Path(root)
    _check_empty(out, overwrite)
    for camera in cameras:
        cam = camera_by_name(camera)
        _write_pairs(SyntheticCamera(cam, size=size, count=count, seed=seed), out / cam.name)
    return out
