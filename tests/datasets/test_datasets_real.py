"""Real benchmark samples as distributed (``../shared/data/real``, see its SOURCES.md): each read by
the layout it ships in. Skipped where the samples are absent (a clone without ``shared/``)."""
from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch

from tasks.registry import get_task
from datasets.derain import DerainPairs
from datasets.fusion import FusionFolder
from datasets.registration import VolumeFolder

REAL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "real"


def _sample(*parts: str) -> Path:
    path = REAL.joinpath(*parts)
    if not path.is_dir():
        pytest.skip(f"real sample {'/'.join(parts)} not present (needs ../shared/data/real)")
    return path


def test_rain100h_as_distributed(tmp_path):
    root = _sample("derain", "Rain100H_sample")
    data = DerainPairs(root, "test")
    data.verify()
    assert data.layout == "rainy/+norain" and len(data) == 6
    assert [(a.name, b.name) for a, b in data.pairs][0] == ("rain-001.png", "norain-001.png")
    item = data[5]
    assert item["input"].shape == item["target"].shape == (3, 320, 480)
    two = DerainPairs([str(root / "rainy"), str(root)])  # --pairs RAINY_DIR CLEAN_DIR: the same pairs
    assert two.pairs == data.pairs


def test_tno_of_mmif_cddfuse_reads_the_infrared_as_one_channel():
    root = _sample("fusion", "TNO8")
    data = FusionFolder(root, "test")
    data.verify()
    assert len(data) == 8
    for i in (0, 7):
        item = data[i]
        ir_file = cv2.imread(str(data.pairs[i][0]), cv2.IMREAD_UNCHANGED)
        assert ir_file.ndim == 3 and item["ir"].shape == (1, *ir_file.shape[:2])
        assert torch.equal(item["ir"][0], torch.from_numpy(ir_file[:, :, 0] / 255.0).float())
    assert FusionFolder([str(root / "ir"), str(root / "vi")]).pairs == data.pairs


def test_voxelmorph_slices_npz():
    root = _sample("registration", "vxm_slices2d")
    folder = VolumeFolder(root, 2)
    assert len(folder) == 20 and folder.verify() == (160, 192)
    item = folder[0]
    assert item["image"].max() <= 1.0 and item["seg"].dtype == torch.int64 and item["seg"].max() > 0
    task = get_task("registration")
    s = task.settings("train").replace({"data": str(root)})
    data = task.train_data(s)  # split by slice, checked whole before a step
    train, val = data.train, data.val
    assert len(train) > 0 and len(val) > 0


def test_dicm_unpaired_lowlight_test_folder():
    root = _sample("lowlight", "DICM8")
    task = get_task("lowlight")
    data = task.test_data(str(root), task.settings("train")).test  # no references: outputs only
    assert len(data) == 8 and "target" not in data[0] and data[0]["input"].shape[0] == 3
