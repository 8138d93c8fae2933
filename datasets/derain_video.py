"""Video deraining benchmark folders (RainSynLight25, RainSynComplex25, NTURain-style), read in
place, as odd frame windows around a middle frame.

Layout: ``D/<video>/rfc-<k>.jpg`` (rainy frame ``k``) with ``D/<video>/gtc-<k>.jpg`` (clean),
where ``D`` is ``ROOT`` or ``ROOT/<split folder>`` (``datasets.derain.SPLIT_DIRS``: ``train``,
``test``, ...); a folder holding ``rfc-*`` files itself is one video. Frame numbers of a video
must run without gaps (``rfc-1 .. rfc-n``, any start), every rainy frame needs its clean frame.

Windows: ``frames = 2r + 1`` consecutive rainy frames centred on frame ``k``; past the ends of
the sequence the window is REFLECTED (``k - 1, k, k + 1`` at the first frame reads frames
``1, 0, 1``; the frame itself is not repeated). ``full_window=True`` keeps only the frames whose
window lies inside the sequence (``r <= k < n - r``): the convention of the video deraining
papers, which evaluate the frames that have a full window; with ``False`` every frame is an item.

Items: ``{"frames": [T, 3, H, W] rainy window, "input": [3, H, W] middle rainy frame, "target":
[3, H, W] clean middle frame, "name": "<video>/rfc-<k>.<ext>", "size": LongTensor [2]}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from datasets.derain import image_size, split_folder
from datasets.errors import DataError, no_folder
from datasets.io import PathLike, is_image_file, read_image
from datasets.transforms import pad_to_multiple

__all__ = ["DerainVideo", "Video", "find_videos", "window_indices"]

_FRAME = re.compile(r"^(?P<kind>rfc|gtc)-(?P<k>\d+)$", re.IGNORECASE)


def window_indices(center: int, length: int, frames: int) -> list[int]:
    """Indices of the ``frames``-long window around ``center`` in a sequence of ``length``,
    reflected at the ends (``-1 -> 1``, ``length -> length - 2``). ``frames`` must be odd."""
    if frames < 1 or frames % 2 == 0:
        raise ValueError(f"frames must be a positive odd number, got {frames}")
    if not 0 <= center < length:
        raise IndexError(f"frame {center} outside a sequence of {length}")
    r = frames // 2
    out = []
    for j in range(center - r, center + r + 1):
        if length == 1:
            out.append(0)
            continue
        period = 2 * (length - 1)
        j = j % period
        out.append(j if j < length else period - j)
    return out


class Video:
    """One sequence: ``rainy`` and ``clean`` frame paths in frame order."""

    def __init__(self, name: str, rainy: list[Path], clean: list[Path]) -> None:
        self.name, self.rainy, self.clean = name, rainy, clean

    def __len__(self) -> int:
        return len(self.rainy)


def _read_video(folder: Path, name: str) -> Video:
    frames: dict[str, dict[int, Path]] = {"rfc": {}, "gtc": {}}
    for f in sorted(folder.iterdir()):
        m = _FRAME.match(f.stem) if f.is_file() and is_image_file(f) else None
        if m:
            frames[m.group("kind").lower()][int(m.group("k"))] = f
    rainy, clean = frames["rfc"], frames["gtc"]
    if not rainy:
        raise DataError(f"video folder '{folder}' has no rainy frames rfc-<k>.jpg; add them or remove the folder")
    ext = next(iter(rainy.values())).suffix
    first, last = min(rainy), max(rainy)
    for k in range(first, last + 1):
        if k not in rainy:
            raise DataError(f"video '{folder}' is missing frame '{folder / f'rfc-{k}{ext}'}' (frames "
                            f"{first}..{last} must all be present); add it or cut the sequence there")
    for k in range(first, last + 1):
        if k not in clean:
            raise DataError(f"rainy frame '{rainy[k]}' has no clean frame '{folder / f'gtc-{k}{ext}'}'; add it")
    extra = sorted(set(clean) - set(rainy))
    if extra:
        raise DataError(f"clean frame '{clean[extra[0]]}' has no rainy frame 'rfc-{extra[0]}'; add it or remove it")
    order = range(first, last + 1)
    return Video(name, [rainy[k] for k in order], [clean[k] for k in order])


def _has_frames(folder: Path) -> bool:
    return any(_FRAME.match(f.stem) for f in folder.iterdir() if f.is_file())


def find_videos(root: PathLike, split: Optional[str] = None) -> list[Video]:
    """The videos of ``root`` (``root/<split folder>`` when it exists), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise no_folder(root)
    d = split_folder(root, split) or root
    if _has_frames(d):
        return [_read_video(d, d.name)]
    videos = [_read_video(v, v.name) for v in sorted(p for p in d.iterdir() if p.is_dir()) if _has_frames(v)]
    if not videos:
        raise DataError(f"no videos in '{d}'; expected DIR/<video>/rfc-<k>.jpg with gtc-<k>.jpg")
    return videos


class DerainVideo(Dataset):
    """Frame windows of a video deraining folder (see the module docstring).

    Args:
        root: benchmark folder; split: as ``datasets.derain.DerainPairs``.
        frames: odd window length (1 = single frames).
        full_window: keep only frames with a complete window (evaluation convention).
        pad_multiple: pad bottom/right to a multiple of this.
        videos: use these videos instead of scanning ``root`` (for train/val splits by video).
    """

    def __init__(self, root: PathLike, split: Optional[str] = None, frames: int = 5, full_window: bool = False,
                 pad_multiple: int = 1, videos: Optional[list[Video]] = None) -> None:
        window_indices(0, 1, frames)  # validates frames
        self.root = Path(root)
        self.videos = find_videos(root, split) if videos is None else list(videos)
        self.frames = frames
        self.full_window = full_window
        self.pad_multiple = pad_multiple
        r = frames // 2
        self.index: list[tuple[int, int]] = []
        for v, video in enumerate(self.videos):
            lo, hi = (r, len(video) - r) if full_window else (0, len(video))
            self.index.extend((v, k) for k in range(lo, hi))
        if not self.index:
            raise DataError(f"no frame of '{self.root}' has a full window of {frames} frames; "
                            "use fewer --frames or longer videos")

    def __len__(self) -> int:
        return len(self.index)

    def verify(self, progress: bool = False) -> None:
        """Read every frame header; ``DataError`` for an unreadable frame or one whose size differs
        from the video's first rainy frame."""
        files = [(v, f) for v in self.videos for f in v.rainy + v.clean]
        first: dict[str, tuple[tuple[int, int], Path]] = {}
        for video, f in tqdm(files, desc="checking frames", disable=not progress, leave=False):
            h, w, _ = image_size(f)
            ref = first.setdefault(video.name, ((h, w), f))
            if ref[0] != (h, w):
                raise DataError(f"frame '{f}' is {h}x{w} but '{ref[1]}' is {ref[0][0]}x{ref[0][1]}; "
                                "all frames of a video must have one size")

    def __getitem__(self, index: int) -> dict:
        v, k = self.index[index]
        video = self.videos[v]
        window = torch.stack([read_image(video.rainy[j]) for j in window_indices(k, len(video), self.frames)])
        target = read_image(video.clean[k])
        if window.shape[1:] != target.shape:
            raise DataError(f"'{video.rainy[k]}' and '{video.clean[k]}' (or its window) differ in size; "
                            "all frames of a video must have one size")
        size = torch.tensor(target.shape[-2:])
        if self.pad_multiple > 1:
            window, _ = pad_to_multiple(window, self.pad_multiple)
            target, _ = pad_to_multiple(target, self.pad_multiple)
        r = self.frames // 2
        return {"frames": window, "input": window[r], "target": target,
                "name": f"{video.name}/{video.rainy[k].name}", "size": size}
