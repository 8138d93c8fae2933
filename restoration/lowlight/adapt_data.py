"""Data of the low-light fast adaptation (``--recipe adapt``): the meta-training scenes, the scene
adapted to, and the images it is scored on.

* Meta-training (``search_data``): without ``--data``, the six ``META_CAMERAS`` of the embedded data
  (``datasets.synthetic_cameras``), ``scene_images`` images of each (64x64 crops of the training
  photographs, generated once); with ``--data ROOT``, every sub-folder ``ROOT/<scene>/`` is one scene,
  read as the task reads a training folder (``ROOT/<scene>/{low,high}``, LOL's ``our485``, or a flat
  folder of low-light images without references). At least two scenes, every file checked, before
  step 1; scenes with and without references cannot be mixed (the episodes of one meta-batch share
  one loss).
* Adaptation (``train_data``): without ``--data``, the embedded held-out scene: ``held_out_camera``
  on the photographs no training split uses, ``HELD_OUT_ADAPT`` images of 96x96 from the left half
  of each; with ``--data NEW``, its training images (a ``val`` folder validates if there is one, and
  ``val_fraction`` holds images out when above 0; the recipe's is 0: a few images are all kept for
  adapting). Each step is one batch of ``batch_size`` random crops (``SceneCrops``).
* Scoring (``test_data``): without ``--data``, ``HELD_OUT_EVAL`` images of 96x96 of the held-out camera
  from the RIGHT half of the photographs (no pixel shared with the adaptation images); a folder is
  read as ``evaluate.py --data`` always reads it.
"""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset

from datasets import DataError
from datasets.pairs import describe_data
from datasets.synthetic_cameras import META_CAMERAS, SyntheticCamera
from restoration.lowlight import data as lldata
from restoration.lowlight.scenes import Materialised, SceneCrops, SceneEpisodes
from restoration.lowlight.settings import LowLightSettings
from tasks.base import Scoring, SearchData, TestData, TrainData

__all__ = ["HELD_OUT_ADAPT", "HELD_OUT_EVAL", "HELD_OUT_SIZE", "embedded_scenes", "folder_scenes", "held_out_scene",
           "search_data", "test_data", "train_data"]

#: The embedded held-out scene: adaptation images, evaluation images and their side in pixels.
HELD_OUT_ADAPT, HELD_OUT_EVAL, HELD_OUT_SIZE = 4, 8, 96
#: Side of the embedded meta-training images (a larger crop makes them larger).
SCENE_SIZE = 64

_SCENES_LAYOUT = ("ROOT/<scene>/ sub-folders, each one scene or camera (ROOT/<scene>/{low,high}, "
                  "ROOT/<scene>/our485/{low,high}, or a folder of low-light images without references)")


def embedded_scenes(s: LowLightSettings) -> tuple[list[Dataset], list[str]]:
    """The six meta-training cameras, ``scene_images`` images each (in memory), and their names."""
    size = max(SCENE_SIZE, s.crop or SCENE_SIZE)
    scenes = [Materialised(SyntheticCamera(c, size=size, count=s.scene_images, seed=lldata.SYNTHETIC_SEED))
              for c in META_CAMERAS]
    return scenes, [c.name for c in META_CAMERAS]


def folder_scenes(s: LowLightSettings) -> tuple[list[Dataset], list[str]]:
    """The scenes ``ROOT/<scene>/`` of ``s.data``, every file checked; one-line ``DataError`` for
    fewer than two scenes, a paired folder given as ROOT, or a mix of paired and unpaired scenes."""
    if isinstance(s.data, list):
        raise DataError("--recipe adapt meta-trains over scenes: --pairs gives one; pass --data ROOT with "
                        f"{_SCENES_LAYOUT}")
    root = Path(str(s.data))
    if not root.is_dir():
        raise DataError(f"data folder '{root}' does not exist; pass --data ROOT with {_SCENES_LAYOUT}")
    if any(lldata.has_pairs(root, split) for split in ("train", "val", "test")) or any(
            (root / d).is_dir() for d in ("low", "input")):
        raise DataError(f"'{root}' is one low-light folder (one scene); --recipe adapt meta-trains over several: "
                        f"pass --data ROOT with {_SCENES_LAYOUT}, at least 2")
    folders = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    if len(folders) < 2:
        found = f"only '{folders[0].name}'" if folders else "none"
        raise DataError(f"'{root}' holds {len(folders)} scene folder{'s' if len(folders) != 1 else ''} ({found}); "
                        f"--recipe adapt meta-trains over at least 2: add {_SCENES_LAYOUT}")
    scenes = []
    for folder in folders:
        base = lldata.open_folder(str(folder), "train")
        lldata._check_crop(base, base.verify(progress=True), s.crop)
        scenes.append(base)
    paired = [lldata.is_paired(b) for b in scenes]
    if any(paired) and not all(paired):
        odd = folders[paired.index(False)]
        raise DataError(f"scene '{odd}' has no reference images but other scenes of '{root}' have: give every "
                        "scene references (ROOT/<scene>/{low,high}) or none")
    return scenes, [f.name for f in folders]


def held_out_scene(s: LowLightSettings, region: str) -> SyntheticCamera:
    """The embedded held-out scene: its adaptation images (``region="left"``) or evaluation images (``"right"``)."""
    count = HELD_OUT_ADAPT if region == "left" else HELD_OUT_EVAL
    size = max(HELD_OUT_SIZE, s.crop or HELD_OUT_SIZE) if region == "left" else HELD_OUT_SIZE
    return SyntheticCamera(s.held_out_camera, size=size, count=count, seed=lldata.SYNTHETIC_SEED, region=region)


def search_data(s: LowLightSettings) -> SearchData:
    """Meta-training episodes over the scenes: one set serving both levels (support and query)."""
    scenes, names = embedded_scenes(s) if s.data is None else folder_scenes(s)
    episodes = SceneEpisodes(scenes, names, s.shots, s.queries, s.episodes, s.crop, s.flip, s.seed)
    where = "embedded synthetic cameras" if s.data is None else f"scene folders of '{s.data}'"
    sizes = ", ".join(f"{n} ({len(d)})" for n, d in zip(names, scenes))  # type: ignore[arg-type]
    note = (f"meta-training over {len(scenes)} scenes ({where}; images): {sizes}; {s.episodes} episodes per epoch, "
            f"each {s.shots} support and {s.queries} query crops of {s.crop} px from one scene")
    return SearchData(episodes, episodes, note=note, split={"scenes": names}, paired=True)


def train_data(s: LowLightSettings) -> TrainData:
    """Adaptation crops of one scene (one batch of ``batch_size`` crops per step) and its validation set
    (none without a ``val`` folder or ``val_fraction``: the latest model is kept)."""
    if s.data is None:
        scene = held_out_scene(s, "left")
        note = (f"adapting to the embedded held-out scene: camera {s.held_out_camera}, {len(scene)} images of "
                f"{scene.size[0]} px from the left halves of {', '.join(scene.sources)}; no validation (a few "
                "images are all used): model.pt is the last step's")
        return TrainData(SceneCrops(Materialised(scene), s.batch_size, s.crop, s.flip, s.seed), None, note,
                         {"scene": s.held_out_camera, "train": len(scene), "val": []})
    split = lldata._split_folder(s)
    scored = split.val is not None and lldata.is_paired(split.val)
    crops = SceneCrops(split.base, s.batch_size, s.crop, s.flip, s.seed, split.indices)
    where = f"adapting to '{describe_data(s.data)}': {len(split.indices)} images"
    note = (f"{where}; {split.note}" if split.val is not None else
            f"{where}; no validation (a few images are all used): model.pt is the last step's")
    return TrainData(crops, split.val, note, split.split, Scoring(references=scored, role="val"))


def test_data(data: str | list[str] | None, s: LowLightSettings) -> TestData:
    """The embedded held-out scene's evaluation images, or the folder ``data`` as always."""
    if data is not None:
        return lldata.test_data(data, s)
    scene = held_out_scene(s, "right")
    note = (f"embedded held-out scene: camera {s.held_out_camera}, {len(scene)} images of {HELD_OUT_SIZE} px from the "
            f"right halves of {', '.join(scene.sources)} (no pixel shared with the adaptation images)")
    return TestData(scene, note=note)
