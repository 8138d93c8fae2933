"""Two folders of pairs (``--pairs``): matched by name, else by number; unmatched files named in one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from datasets.derain import DerainPairs
from datasets.errors import DataError
from datasets.fusion import FusionFolder
from datasets.paired import PairedFolder
from datasets.pairs import describe_data, folder_pairs, natural_key, pair_dirs, stem_number


def _touch(folder: Path, *names: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for n in names:
        (folder / n).write_bytes(b"")
    return folder


def _names(pairs):
    return [(a.name, b.name) for a, b in pairs]


@pytest.mark.parametrize("inputs,targets,expected", [
    (["12.png", "2.png"], ["12.png", "2.png"], [("2.png", "2.png"), ("12.png", "12.png")]),
    (["a.PNG", "b.png"], ["A.jpg", "b.bmp"], [("a.PNG", "A.jpg"), ("b.png", "b.bmp")]),
    (["rain-12.png", "rain-3.png"], ["norain-12.png", "norain-003.png"],
     [("rain-3.png", "norain-003.png"), ("rain-12.png", "norain-12.png")]),
    (["IR3.png", "IR10.png"], ["VIS3.png", "VIS10.png"], [("IR3.png", "VIS3.png"), ("IR10.png", "VIS10.png")]),
    (["low7.png"], ["normal00007.png"], [("low7.png", "normal00007.png")]),
])
def test_matched_by_name_or_number(tmp_path, inputs, targets, expected):
    a, b = _touch(tmp_path / "a", *inputs), _touch(tmp_path / "b", *targets)
    assert _names(folder_pairs(a, b)) == expected


def test_unmatched_files_are_named_in_one_line(tmp_path):
    a = _touch(tmp_path / "a", *(f"rain-{i}.png" for i in range(1, 9)))
    b = _touch(tmp_path / "b", *(f"norain-{i}.png" for i in range(1, 4)), "norain-99.png")
    with pytest.raises(DataError) as exc:
        folder_pairs(a, b)
    msg = str(exc.value)
    assert "\n" not in msg and "rain-4.png' has no partner in" in msg
    assert "6 unmatched: rain-4.png, rain-5.png, rain-6.png, ...)" in msg


def test_shared_numbers_and_empty_folders(tmp_path):
    a = _touch(tmp_path / "a", "x1.png", "y1.png")
    b = _touch(tmp_path / "b", "z1.png", "w1.png")
    with pytest.raises(DataError, match=r"by the number in the name \(not by number: 'x1.png' and 'y1.png' share 1\)"):
        folder_pairs(a, b)
    c = _touch(tmp_path / "c", "x1.png", "x1.jpg")
    with pytest.raises(DataError, match="neither by name nor by number"):
        folder_pairs(c, b)
    with pytest.raises(DataError, match="no target images in"):
        folder_pairs(a, _touch(tmp_path / "empty"))


def test_pair_dirs_validates_the_setting(tmp_path):
    a, b = _touch(tmp_path / "a"), _touch(tmp_path / "b")
    assert pair_dirs(str(a)) is None and pair_dirs(None) is None
    assert pair_dirs([str(a), str(b)]) == (a, b)
    with pytest.raises(DataError, match="does not exist"):
        pair_dirs([str(a), str(tmp_path / "nope")])
    with pytest.raises(DataError, match="twice"):
        pair_dirs([str(a), str(a)])
    with pytest.raises(DataError, match="INPUT_DIR, TARGET_DIR"):
        pair_dirs([str(a)])
    assert describe_data([str(a), str(b)]) == f"{a} + {b}"


def test_number_and_natural_order():
    assert stem_number(Path("IR12.bmp")) == 12 and stem_number(Path("a.png")) is None
    assert stem_number(Path("rain-007.png")) == 7
    names = sorted(["IR10.png", "IR2.png", "b.png"], key=lambda n: natural_key(Path(n)))
    assert names == ["b.png", "IR2.png", "IR10.png"] or names == ["IR2.png", "IR10.png", "b.png"]


def test_every_image_reader_takes_two_folders(tmp_path):
    import cv2
    import numpy as np

    for i in (1, 2):
        assert cv2.imwrite(str(_touch(tmp_path / "in") / f"IR{i}.png"), np.full((4, 6), i, np.uint8))
        assert cv2.imwrite(str(_touch(tmp_path / "out") / f"VIS{i}.png"), np.full((4, 6, 3), i, np.uint8))
    dirs = [str(tmp_path / "in"), str(tmp_path / "out")]
    low = PairedFolder(dirs, split="test")
    rain = DerainPairs(dirs, split="test")
    fused = FusionFolder(dirs, split="test")
    assert _names(low.pairs) == _names(rain.pairs) == _names(fused.pairs) == [("IR1.png", "VIS1.png"),
                                                                              ("IR2.png", "VIS2.png")]
    assert rain.layout == "pairs" and fused[1]["ir"].shape == (1, 4, 6) and low[1]["target"].shape == (3, 4, 6)
