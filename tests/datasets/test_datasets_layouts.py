"""Benchmark folders as their authors distribute them, as tiny generated copies: each layout is read
with the right pairs, and a folder in no layout is refused in one line naming the layouts known."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from datasets.derain import DerainPairs, find_derain_pairs
from datasets.derain_video import DerainVideo
from datasets.errors import DataError
from datasets.fusion import FusionFolder
from datasets.paired import PairedFolder, UnpairedFolder
from datasets.registration import VolumeFolder, load_atlas


def _img(path: Path, value: int, shape: tuple[int, ...] = (6, 8, 3)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full(shape, value, np.uint8))


def _one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def _names(pairs: list[tuple[Path, Path]]) -> list[tuple[str, str]]:
    return [(a.name, b.name) for a, b in pairs]


# -- deraining --------------------------------------------------------------------------------------

def test_rain100_as_distributed_rainy_folder_with_clean_images_at_the_root(tmp_path):
    for i in (1, 2, 10):
        _img(tmp_path / "rainy" / f"rain-{i:03d}.png", i)
        _img(tmp_path / f"norain-{i:03d}.png", 100 + i)
    data = DerainPairs(tmp_path, "test")
    data.verify()
    assert data.layout == "rainy/+norain"
    assert _names(data.pairs) == [("rain-001.png", "norain-001.png"), ("rain-002.png", "norain-002.png"),
                                  ("rain-010.png", "norain-010.png")]
    assert data[2]["target"][0, 0, 0] == pytest.approx(110 / 255)
    (tmp_path / "norain-002.png").unlink()
    with pytest.raises(DataError) as exc:
        DerainPairs(tmp_path)
    assert "rain-002.png" in _one_line(exc) and "norain-002.png" in str(exc.value)


def test_mspfn_inputcrop_cleancrop(tmp_path):
    for i in (1, 2, 11):
        _img(tmp_path / "R100H" / "inputcrop" / f"{i}.png", i)
        _img(tmp_path / "R100H" / "cleancrop" / f"{i}.png", i)
    data = DerainPairs(tmp_path / "R100H")
    assert data.layout == "inputcrop/cleancrop" and [a.name for a, _ in data.pairs] == ["1.png", "2.png", "11.png"]


def test_jorder_rain_x2_folder(tmp_path):
    for i in (1, 2):
        _img(tmp_path / "rain" / "X2" / f"norain-{i}x2.png", i)
        _img(tmp_path / "norain" / f"norain-{i}.png", i)
    data = DerainPairs(tmp_path)
    assert data.layout == "jorder" and _names(data.pairs)[1] == ("norain-2x2.png", "norain-2.png")


def test_rain13k_input_target_and_a_folder_of_several_test_sets(tmp_path):
    """MPRNet's Datasets/: train/{input,target} and test/<set>/{input,target}."""
    for name in ("a.png", "b.png"):
        _img(tmp_path / "train" / "input" / name, 1)
        _img(tmp_path / "train" / "target" / name, 2)
    _img(tmp_path / "test" / "Rain100H" / "input" / "1.png", 1)
    _img(tmp_path / "test" / "Rain100H" / "target" / "1.png", 2)
    assert find_derain_pairs(tmp_path, "train")[0] == "input/target"
    layout, pairs = find_derain_pairs(tmp_path, "test")  # the only set of test/ is read
    assert layout == "input/target" and pairs[0][0].parent == tmp_path / "test" / "Rain100H" / "input"
    _img(tmp_path / "test" / "Rain100L" / "input" / "1.png", 1)
    _img(tmp_path / "test" / "Rain100L" / "target" / "1.png", 2)
    with pytest.raises(DataError) as exc:
        find_derain_pairs(tmp_path, "test")
    assert "several deraining sets (Rain100H, Rain100L)" in _one_line(exc)


def test_rain1400_and_rainsyn25_videos(tmp_path):
    _img(tmp_path / "rain1400" / "testing" / "ground_truth" / "901.jpg", 1)
    for k in (1, 14):
        _img(tmp_path / "rain1400" / "testing" / "rainy_image" / f"901_{k}.jpg", k)
    data = DerainPairs(tmp_path / "rain1400", "test")
    assert data.layout == "rain1400" and _names(data.pairs) == [("901_1.jpg", "901.jpg"), ("901_14.jpg", "901.jpg")]
    for k in range(1, 4):
        _img(tmp_path / "syn25" / "test" / "a1" / f"rfc-{k}.jpg", k)
        _img(tmp_path / "syn25" / "test" / "a1" / f"gtc-{k}.jpg", k)
    video = DerainVideo(tmp_path / "syn25", "test", frames=3, full_window=True)
    assert len(video) == 1 and video[0]["frames"].shape == (3, 3, 6, 8) and video[0]["name"] == "a1/rfc-2.jpg"


def test_derain_refusals_name_the_layouts(tmp_path):
    _img(tmp_path / "photos" / "x.png", 1)
    with pytest.raises(DataError) as exc:
        DerainPairs(tmp_path / "photos")
    msg = _one_line(exc)
    assert all(w in msg for w in ("rainy_image", "inputcrop", "rainy/rain-XXX.png", "rfc-<k>", "--pairs"))
    _img(tmp_path / "half" / "rainy" / "rain-1.png", 1)
    with pytest.raises(DataError) as exc:
        DerainPairs(tmp_path / "half")
    assert "no sibling folder 'norain'" in _one_line(exc) and "inputcrop" in str(exc.value)


# -- low light --------------------------------------------------------------------------------------

def test_lol_and_fivek(tmp_path):
    for split, names in (("our485", ("2.png", "5.png")), ("eval15", ("1.png",))):
        for n in names:
            _img(tmp_path / "LOL" / split / "low" / n, 1)
            _img(tmp_path / "LOL" / split / "high" / n, 2)
    assert [a.name for a, _ in PairedFolder(tmp_path / "LOL", "train").pairs] == ["2.png", "5.png"]
    assert [a.name for a, _ in PairedFolder(tmp_path / "LOL", "test").pairs] == ["1.png"]
    for split, n in (("train", "a0001.png"), ("test", "a4501.png")):
        _img(tmp_path / "FiveK" / split / "input" / n, 1)
        _img(tmp_path / "FiveK" / split / "expertC" / n, 2)
    test = PairedFolder(tmp_path / "FiveK", "test")
    assert test.target_dir.name == "expertC" and [a.name for a, _ in test.pairs] == ["a4501.png"]


def test_unpaired_flat_folder_and_refusal(tmp_path):
    for i in (1, 2):
        _img(tmp_path / "DICM" / f"{i:02d}.jpg", 10)
    assert [f.name for f in UnpairedFolder(tmp_path / "DICM").files] == ["01.jpg", "02.jpg"]
    _img(tmp_path / "half" / "low" / "1.png", 1)
    (tmp_path / "half" / "other").mkdir()
    with pytest.raises(DataError) as exc:
        PairedFolder(tmp_path / "half")
    assert "no sibling folder 'high'" in _one_line(exc) and "our485" in str(exc.value) and "--pairs" in str(exc.value)


# -- fusion -----------------------------------------------------------------------------------------

def test_didfuse_one_folder_of_ir_and_vis_numbers_any_case_and_extension(tmp_path):
    d = tmp_path / "Test_data_TNO"
    for i in (1, 2, 10):
        _img(d / f"IR{i}.bmp", i, (6, 8))
        _img(d / (f"VIS{i}.bmp" if i != 10 else "vis10.png"), 50 + i, (6, 8))
    data = FusionFolder(d)
    data.verify()
    assert _names(data.pairs) == [("IR1.bmp", "VIS1.bmp"), ("IR2.bmp", "VIS2.bmp"), ("IR10.bmp", "vis10.png")]
    item = data[2]
    assert item["ir"].shape == (1, 6, 8) and item["vi"].shape == (1, 6, 8) and item["name"] == "IR10.bmp"
    assert FusionFolder(tmp_path, "test").pairs == data.pairs  # the only set of the folder
    _img(tmp_path / "Test_data_FLIR" / "IR1.jpg", 1, (6, 8))
    _img(tmp_path / "Test_data_FLIR" / "VIS1.jpg", 1, (6, 8))
    with pytest.raises(DataError) as exc:
        FusionFolder(tmp_path)
    assert "several infrared/visible sets (Test_data_FLIR, Test_data_TNO)" in _one_line(exc)
    (d / "VIS2.bmp").unlink()
    with pytest.raises(DataError) as exc:
        FusionFolder(d)
    assert "IR2.bmp" in _one_line(exc) and "no partner" in str(exc.value)


def test_upper_case_folders_extension_differences_and_gray_stored_as_rgb(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    _img(tmp_path / "IR" / "a.PNG", 0, (6, 8))
    assert cv2.imwrite(str(tmp_path / "IR" / "a.PNG"), np.stack([gray] * 3, -1))  # gray as three equal channels
    _img(tmp_path / "VI" / "a.jpg", 9)
    data = FusionFolder(tmp_path)
    assert _names(data.pairs) == [("a.PNG", "a.jpg")]
    assert torch.equal(data[0]["ir"][0], torch.from_numpy(gray / 255.0).float())  # exactly that channel


def test_llvip_splits_inside_the_modality_folders(tmp_path):
    for split, n in (("train", "010001.jpg"), ("test", "190001.jpg")):
        _img(tmp_path / "infrared" / split / n, 1, (6, 8))
        _img(tmp_path / "visible" / split / n, 2)
    assert [a.name for a, _ in FusionFolder(tmp_path, "train").pairs] == ["010001.jpg"]
    assert [a.name for a, _ in FusionFolder(tmp_path, "test").pairs] == ["190001.jpg"]


def test_fusion_refusal_names_the_layouts(tmp_path):
    _img(tmp_path / "x.png", 1)
    with pytest.raises(DataError) as exc:
        FusionFolder(tmp_path)
    assert all(w in _one_line(exc) for w in ("ROOT/{ir,vi}", "IR<n>", "--pairs"))


# -- registration -----------------------------------------------------------------------------------

def test_voxelmorph_older_vol_data_files(tmp_path):
    vol = np.arange(48, dtype=np.float64).reshape(6, 8, 1)
    seg = (vol > 20).astype(np.int16)
    np.savez(tmp_path / "test_vol.npz", vol_data=vol)
    np.savez(tmp_path / "test_seg.npz", vol_data=seg)
    np.savez(tmp_path / "scan.npz", vol=vol[..., 0] / 47, seg=seg[..., 0])
    folder = VolumeFolder(tmp_path, 2)
    assert [v.name for v in folder.volumes] == ["scan", "test"] and folder.verify() == (6, 8)
    item = folder[1]
    assert item["image"].shape == (1, 6, 8) and item["image"].max() == 1.0
    assert torch.equal(item["seg"][0], torch.from_numpy(seg[..., 0].astype(np.int64)))
    assert torch.equal(load_atlas(tmp_path / "test_vol.npz", 2)["seg"], item["seg"])


@pytest.mark.parametrize("files,words", [
    ({"a_vol.npz": {"vol_data"}}, ["'a_seg.npz'", "vol_data"]),
    ({"a_vol.npz": {"vol_data"}, "a_seg.npz": {"labels"}}, ["['labels']", "'seg' or 'vol_data'"]),
    ({"a.npz": {"vol_data"}}, ["['vol_data']", "no label map 'seg'", "a_seg.npz"]),
    ({"a.npz": {"image", "mask"}, "b.npz": {"image", "mask"}}, ["['image', 'mask']", "'vol'", "vol_data"]),
])
def test_npz_key_errors_name_the_keys_found_and_expected(tmp_path, files, words):
    for name, keys in files.items():
        np.savez(tmp_path / name, **{k: np.zeros((6, 8)) for k in sorted(keys)})
    with pytest.raises(DataError) as exc:
        VolumeFolder(tmp_path, 2)  # refused when listed, before any split counts the volumes
    assert all(w in _one_line(exc) for w in words), str(exc.value)


def test_neurite_oasis_2d_subject_folders(tmp_path):
    nib = pytest.importorskip("nibabel", reason="needs the registration extra: pip install -e '.[registration]'")
    for i in range(2):
        sub = tmp_path / f"OASIS_OAS1_000{i}_MR1"
        sub.mkdir()
        nib.save(nib.Nifti1Image(np.full((6, 8, 1), 2.0 + i, np.float32), np.eye(4)), str(sub / "slice_norm.nii.gz"))
        nib.save(nib.Nifti1Image(np.ones((6, 8, 1), np.int16), np.eye(4)), str(sub / "slice_seg24.nii.gz"))
    folder = VolumeFolder(tmp_path, 2)
    assert len(folder) == 2 and folder.verify() == (6, 8) and folder[1]["image"].shape == (1, 6, 8)
