"""Registration folders (npz, neurite-OASIS NIfTI), pairs, splits, one-line errors, and the
embedded synthetic pairs."""

import sys

import numpy as np
import pytest
import torch

from datasets.errors import DataError
from datasets.registration import (RegistrationPairs, VolumeFolder, fixed_pairs, load_atlas, split_subjects)
from datasets.synthetic_registration import (SOURCES, SyntheticRegistration, integrate_svf_numpy,
                                             random_velocity, warp_numpy)


def _npz(path, shape=(8, 9), seg_shape=None, keys=("vol", "seg"), value=200.0):
    arrays = {"vol": np.full(shape, value, np.float32), "seg": np.ones(seg_shape or shape, np.int16)}
    arrays["vol"].flat[0] = 0
    np.savez(path, **{k: arrays[k] for k in keys})


def test_npz_folder_items_pairs_and_verify(tmp_path):
    for i in range(4):
        _npz(tmp_path / f"s{i}.npz")
    folder = VolumeFolder(tmp_path, 2)
    assert folder.verify() == (8, 9) and len(folder) == 4
    item = folder[0]
    assert item["image"].shape == (1, 8, 9) and item["image"].max() == 1.0 and item["seg"].dtype == torch.int64
    atlas = load_atlas(tmp_path / "s3.npz", 2)
    pairs = RegistrationPairs(folder, [0, 1, 2], atlas=atlas)
    assert pairs[1]["name"] == "s1_to_atlas" and pairs[1]["size"].tolist() == [8, 9]
    assert fixed_pairs([0, 1, 2, 3], 5, seed=3) == fixed_pairs([0, 1, 2, 3], 5, seed=3)
    assert all(a != b for a, b in fixed_pairs([0, 1, 2, 3], 20, seed=3))
    train = RegistrationPairs(folder, [0, 1, 2, 3], seed=1)
    names0 = [train[k]["name"] for k in range(4)]
    assert names0 == [train[k]["name"] for k in range(4)]
    assert all(n.split("_to_")[0] != n.split("_to_")[1] for n in names0)
    seen = set()
    for e in range(6):
        train.set_epoch(e)
        seen.add(train[0]["name"])
    assert len(seen) > 1


def test_split_subjects_is_deterministic_disjoint_and_complete():
    tr, va, te = split_subjects(20, 0.1, 0.2, seed=5)
    assert (tr, va, te) == split_subjects(20, 0.1, 0.2, seed=5)
    assert len(te) == 4 and len(va) == 2 and sorted(tr + va + te) == list(range(20))
    assert split_subjects(20, 0.1, 0.2, seed=6) != (tr, va, te)
    with pytest.raises(DataError, match="cannot be split"):
        split_subjects(2, 0.5, 0.5)


@pytest.mark.parametrize("make,match", [
    (lambda p: _npz(p / "a.npz", keys=("vol",)), r"holds arrays \['vol'\] but no label map 'seg'"),
    (lambda p: _npz(p / "a.npz", seg_shape=(8, 8)), "label map has shape"),
    (lambda p: (_npz(p / "a.npz"), _npz(p / "b.npz", shape=(8, 10))), "share one shape"),
])
def test_bad_npz_folders_give_one_line_errors(tmp_path, make, match):
    make(tmp_path)
    with pytest.raises(DataError, match=match) as e:
        VolumeFolder(tmp_path, 2).verify()
    assert "\n" not in str(e.value)


def test_2d_npz_for_dims_3_and_missing_folder(tmp_path):
    _npz(tmp_path / "a.npz", shape=(8, 9, 1))
    with pytest.raises(DataError, match=r"a 2D slice .*use --dims 2"):
        VolumeFolder(tmp_path, 3).verify()
    with pytest.raises(DataError, match="does not exist"):
        VolumeFolder(tmp_path / "nope", 2)


def test_oasis_layout_errors_without_reading_nifti(tmp_path):
    sub = tmp_path / "OASIS_OAS1_0001_MR1"
    sub.mkdir()
    (sub / "slice_norm.nii.gz").write_bytes(b"")
    with pytest.raises(DataError, match="no label map 'slice_seg24.nii.gz'"):
        VolumeFolder(tmp_path, 2)
    with pytest.raises(DataError, match="only 2D files .*use --dims 2"):
        VolumeFolder(tmp_path, 3)


def test_missing_nibabel_names_the_extra(tmp_path, monkeypatch):
    sub = tmp_path / "OASIS_OAS1_0001_MR1"
    sub.mkdir()
    for f in ("slice_norm.nii.gz", "slice_seg24.nii.gz"):
        (sub / f).write_bytes(b"")
    monkeypatch.setitem(sys.modules, "nibabel", None)
    with pytest.raises(DataError, match=r"nibabel.*pip install -e \.\[registration\]"):
        VolumeFolder(tmp_path, 2).verify()


def test_oasis_nifti_2d_and_3d(tmp_path):
    nib = pytest.importorskip("nibabel", reason="needs the registration extra: pip install -e '.[registration]'")
    rng = np.random.default_rng(0)
    for i in range(2):
        sub = tmp_path / f"OASIS_OAS1_000{i}_MR1"
        sub.mkdir()
        for name, arr in (("slice_norm", rng.random((8, 9, 1)).astype(np.float32)),
                          ("slice_seg24", rng.integers(0, 4, (8, 9, 1)).astype(np.int16)),
                          ("aligned_norm", rng.random((6, 7, 5)).astype(np.float32)),
                          ("aligned_seg35", rng.integers(0, 4, (6, 7, 5)).astype(np.int16))):
            nib.save(nib.Nifti1Image(arr, np.eye(4)), str(sub / f"{name}.nii.gz"))
    f2, f3 = VolumeFolder(tmp_path, 2), VolumeFolder(tmp_path, 3)
    assert f2.verify() == (8, 9) and f3.verify() == (6, 7, 5)
    assert f2[0]["image"].shape == (1, 8, 9) and f3[1]["seg"].shape == (1, 6, 7, 5)
    atlas = load_atlas(tmp_path / "OASIS_OAS1_0000_MR1", 3)
    assert atlas["image"].shape == (1, 6, 7, 5)
    nib.save(nib.Nifti1Image(np.zeros((6, 7, 4), np.int16), np.eye(4)),
             str(tmp_path / "OASIS_OAS1_0001_MR1" / "aligned_seg35.nii.gz"))
    with pytest.raises(DataError, match="aligned_seg35.nii.gz' label map has shape"):
        f3.verify()


def test_numpy_svf_integration_matches_torch_scaling_and_squaring():
    from restoration.registration.warp import integrate_velocity

    v = random_velocity((20, 22), 4.0, np.random.default_rng(0))
    ours = integrate_svf_numpy(v)
    theirs = integrate_velocity(torch.from_numpy(v)[None])[0].numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    img = np.random.default_rng(1).random((20, 22))
    from restoration.registration.warp import warp

    np.testing.assert_allclose(warp_numpy(img, ours), warp(torch.from_numpy(img)[None, None], torch.from_numpy(ours)[None])[0, 0].numpy(), atol=1e-9)


def test_synthetic_2d_pairs_are_deterministic_deformed_fold_free_and_disjoint():
    from restoration.registration.metrics import folding_pct, mean_dice

    assert not set(SOURCES["train"]) & set(SOURCES["val"]) and not set(SOURCES["val"]) & set(SOURCES["test"])
    assert not set(SOURCES["train"]) & set(SOURCES["test"])
    ds = SyntheticRegistration("train", 2, size=32, count=4)
    a, b = ds[1], ds[1]
    assert torch.equal(a["moving"], b["moving"]) and a["moving"].shape == (1, 32, 32)
    assert sorted(torch.unique(a["fixed_seg"]).tolist()) == [0, 1, 2, 3]
    assert mean_dice(a["moving_seg"][None], a["fixed_seg"][None]).item() < 0.9
    ds.set_epoch(1)
    assert not torch.equal(ds[1]["moving"], a["moving"])
    val = SyntheticRegistration("val", 2, size=32, count=2)
    v0 = val[0]["moving"]
    val.set_epoch(3)
    assert torch.equal(val[0]["moving"], v0)
    for seed in range(3):
        u = integrate_svf_numpy(random_velocity((32, 32), 6.0 * 32 / 64, np.random.default_rng(seed)))
        assert folding_pct(torch.from_numpy(u)[None]).item() == 0.0


def test_synthetic_3d_small():
    ds = SyntheticRegistration("test", 3, size=12, count=2)
    item = ds[0]
    assert item["moving"].shape == (1, 12, 12, 12) and item["size"].tolist() == [12, 12, 12]
    assert set(torch.unique(item["fixed_seg"]).tolist()) <= {0, 1, 2, 3}
    train = SyntheticRegistration("train", 3, size=12, count=2)
    assert not np.array_equal(train.source(0)[0], ds.source(0)[0])


def test_task_sets_split_training_subjects_and_keep_test_apart(tmp_path):
    from restoration.registration.data import search_sets, test_set, train_sets
    from restoration.registration.settings import RegistrationSettings

    for i in range(10):
        _npz(tmp_path / f"s{i}.npz", value=float(i + 2))
    cfg = RegistrationSettings().replace({"data": str(tmp_path), "val_pairs": 3, "val_fraction": 0.2})
    lower, upper = search_sets(cfg)
    train, val = train_sets(cfg)
    test = test_set(str(tmp_path), cfg)
    names = lambda ds: {part for k in range(len(ds)) for part in ds[k]["name"].split("_to_")}
    assert not names(lower) & names(upper)
    assert names(lower) | names(upper) == names(train)
    assert not names(test) & (names(train) | names(val)) and not names(val) & names(train)
    assert len(val) == 3 and [val[k]["name"] for k in range(3)] == [val[k]["name"] for k in range(3)]
    val.verify()
    with pytest.raises(ValueError, match="unknown setting 'date'"):
        train_sets(RegistrationSettings().replace({"date": "x"}))
    lo, up = search_sets(RegistrationSettings().replace({"size": 16, "synthetic_count": 12}))
    assert len(lo) + len(up) == 12 and lo[0]["moving"].shape == (1, 16, 16)
