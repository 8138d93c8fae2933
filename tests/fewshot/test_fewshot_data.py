"""Few-shot data: the embedded glyph classes, N-way K-shot episodes and the flat labelled set, and tiny
generated copies of Omniglot (both layouts) and miniImageNet read in place, with one-line errors."""
from __future__ import annotations

import random
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from datasets.errors import DataError
from fewshot.data import image_format, load_classes, omniglot_flat_split
from fewshot.episodes import EpisodeSet, LabelledImages
from fewshot.synthetic import synthetic_glyphs


def _one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def _character(folder: Path, images: int = 3, side: int = 20) -> None:
    """Omniglot-like PNGs: black ink (a square in the top-left quarter) on white paper, one-bit values."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(images):
        img = np.full((side, side), 255, np.uint8)
        img[: side // 2, : side // 2] = 0
        assert cv2.imwrite(str(folder / f"{folder.name}_{i:02d}.png"), img)


def _omniglot(root: Path, alphabets: int, characters: int, images: int = 3) -> None:
    for a in range(alphabets):
        for c in range(characters):
            _character(root / f"Alphabet_{a}" / f"character{c + 1:02d}", images)


def _mini(root: Path, counts: dict[str, int], images: int = 4) -> None:
    """miniImageNet-like: ``counts[split]`` class folders of pure-red 12x12 JPEGs."""
    for split, n in counts.items():
        for c in range(n):
            folder = root / split / f"n0{split}{c}"
            folder.mkdir(parents=True)
            for i in range(images):
                assert cv2.imwrite(str(folder / f"n0{split}{c}_{i}.jpg"), np.full((12, 12, 3), (0, 0, 255), np.uint8))


# -- the embedded glyphs ----------------------------------------------------------------------------
def test_glyphs_are_deterministic_quantised_and_a_prefix_when_fewer_classes():
    a, names = synthetic_glyphs("test", seed=3, classes=4, images=5)
    b, _ = synthetic_glyphs("test", seed=3, classes=4, images=5)
    assert a.dtype == torch.uint8 and a.shape == (4, 5, 1, 28, 28) and len(names) == 4
    assert torch.equal(a, b)
    assert torch.equal(synthetic_glyphs("test", seed=3, classes=2, images=5)[0], a[:2])
    assert not torch.equal(synthetic_glyphs("test", seed=4, classes=4, images=5)[0], a)
    assert a.float().amax() > 200 and a.float().mean() < 100  # ink high on a dark paper


def test_glyph_splits_are_disjoint_classes_of_alike_images():
    imgs, names = {}, {}
    for split in ("train", "val", "test"):
        imgs[split], names[split] = synthetic_glyphs(split, classes=6, images=6)
    assert len(set(names["train"]) | set(names["val"]) | set(names["test"])) == 18
    assert not torch.equal(imgs["train"], imgs["test"])
    x = imgs["test"].float().flatten(2) / 255  # [classes, images, HW]
    d = torch.cdist(x.flatten(0, 1), x.flatten(0, 1)).view(6, 6, 6, 6)
    same = torch.stack([d[c, :, c] for c in range(6)]).mean()
    other = (d.sum() - torch.stack([d[c, :, c] for c in range(6)]).sum()) / (36 * 36 - 6 * 36)
    assert same < 0.85 * other  # images of one class look alike, classes differ


def test_default_synthetic_split_sizes_and_format():
    classes = load_classes(None, "val", min_images=16)
    assert len(classes) == 16 and classes.count(0) == 20 and classes.channels == 1 and classes.size == 28
    assert image_format(None) == (1, 28)
    img = classes.image(0, 0)
    assert img.dtype == torch.float32 and img.shape == (1, 28, 28) and 0 <= img.min() and img.max() <= 1


# -- episodes ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def glyphs():
    return load_classes(None, "train", synthetic_classes=8, synthetic_images=6, size=16)


def test_episode_shapes_labels_and_distinct_draws(glyphs):
    episodes = EpisodeSet(glyphs, ways=3, shots=2, queries=3, episodes=10, seed=0)
    e = episodes[4]
    assert e["support"]["image"].shape == (6, 1, 16, 16) and e["support"]["image"].dtype == torch.float32
    assert e["query"]["image"].shape == (9, 1, 16, 16)
    assert e["support"]["label"].tolist() == [0, 0, 1, 1, 2, 2]
    assert e["query"]["label"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and e["query"]["label"].dtype == torch.int64
    assert e["name"] == "episode-00004" and len(episodes) == 10
    chosen, picks = episodes.draw(4)
    assert len(set(chosen.tolist())) == 3 and all(len(set(row.tolist())) == 5 for row in picks)
    c, i = int(chosen[1]), int(picks[1, 2])  # label 1's first query image
    assert torch.equal(e["query"]["image"][3], glyphs.image(c, i))


def test_episodes_depend_on_seed_epoch_and_index_only(glyphs):
    a = EpisodeSet(glyphs, 3, 1, 2, 10, seed=5)
    b = EpisodeSet(glyphs, 3, 1, 2, 10, seed=5)
    _ = b[7], b[2]  # another order of access
    assert torch.equal(a[2]["query"]["image"], b[2]["query"]["image"])
    assert not torch.equal(a[2]["query"]["image"], a[3]["query"]["image"])
    first = a[2]["support"]["image"]
    a.set_epoch(1)
    assert not torch.equal(a[2]["support"]["image"], first)
    b.set_epoch(1)
    assert torch.equal(a[2]["support"]["image"], b[2]["support"]["image"])


def test_episodes_collate_into_a_batch(glyphs):
    episodes = EpisodeSet(glyphs, 2, 1, 3, 4, seed=0)
    batch = default_collate([episodes[0], episodes[1], episodes[2]])
    assert batch["support"]["image"].shape == (3, 2, 1, 16, 16) and batch["query"]["label"].shape == (3, 6)
    assert batch["name"] == ["episode-00000", "episode-00001", "episode-00002"]
    loaded = next(iter(DataLoader(episodes, batch_size=2)))
    assert torch.equal(loaded["query"]["image"][1], episodes[1]["query"]["image"])


def test_episode_errors_name_the_flags(glyphs):
    with pytest.raises(DataError) as exc:
        EpisodeSet(glyphs, ways=9, shots=1, queries=1, episodes=1)
    assert "lower --ways" in _one_line(exc) and "8 classes" in str(exc.value)
    with pytest.raises(DataError) as exc:
        EpisodeSet(glyphs, ways=2, shots=4, queries=3, episodes=1)
    assert "holds 6 images" in _one_line(exc) and "--shots/--queries" in str(exc.value)
    with pytest.raises(DataError, match="--queries"):
        EpisodeSet(glyphs, ways=2, shots=1, queries=0, episodes=1)


def test_labelled_images_cover_every_image_once(glyphs):
    flat = LabelledImages(glyphs)
    assert len(flat) == 48 and flat.num_classes == 8
    item = flat[13]
    assert item["label"].dtype == torch.int64 and item["label"].dim() == 0 and int(item["label"]) == 2
    assert torch.equal(item["image"], glyphs.image(2, 1)) and item["name"] == f"{glyphs.names[2]}/0001"
    assert [int(flat[i]["label"]) for i in (0, 5, 6, 47)] == [0, 0, 1, 7]
    with pytest.raises(IndexError):
        flat[48]


# -- Omniglot ---------------------------------------------------------------------------------------
def test_omniglot_flat_follows_mamls_split_with_rotations(tmp_path):
    _omniglot(tmp_path, alphabets=2, characters=3)
    assert omniglot_flat_split(6) == (3, 1, 2) and omniglot_flat_split(1623) == (1100, 100, 423)
    order = sorted(f"Alphabet_{a}/character{c + 1:02d}" for a in range(2) for c in range(3))
    random.Random(1).shuffle(order)
    train = load_classes(tmp_path, "train", size=10, progress=False)
    val, test = (load_classes(tmp_path, s, size=10, progress=False) for s in ("val", "test"))
    assert set(train.names[:3]) == set(order[:3]) and val.names == (order[3],) and set(test.names) == set(order[4:])
    assert len(train) == 12 and train.names[3].endswith("/rot090") and len(val) == 1 and len(test) == 2
    img = train.image(0, 0)  # ink (top-left square) 1, paper 0, resized 20 -> 10
    assert img.shape == (1, 10, 10) and img[0, :5, :5].min() == 1 and img[0, 5:, :].max() == 0
    assert torch.equal(train.image(3, 1), torch.rot90(train.image(0, 1), 1, dims=(-2, -1)))
    assert len(load_classes(tmp_path, "train", rotations=False, progress=False)) == 3
    assert image_format(tmp_path) == (1, 28) and train.count(0) == 3


def test_omniglot_background_evaluation_layout(tmp_path):
    _omniglot(tmp_path / "images_background", alphabets=2, characters=3)
    _omniglot(tmp_path / "images_evaluation", alphabets=1, characters=2)
    train = load_classes(tmp_path, "train", progress=False)
    val = load_classes(tmp_path, "val", progress=False)
    test = load_classes(tmp_path, "test", progress=False)
    assert len(train) == 5 * 4 and len(val) == 1 and len(test) == 2  # val: max(1, 6 // 10) characters
    assert val.names[0] not in train.names and str(tmp_path / "images_evaluation") in test.source
    assert train.image(0, 0).shape == (1, 28, 28) and isinstance(train.items[0], torch.Tensor)  # eager


def test_omniglot_errors(tmp_path):
    _omniglot(tmp_path / "images_background", alphabets=1, characters=3)
    with pytest.raises(DataError) as exc:
        load_classes(tmp_path, "test", progress=False)
    assert "images_evaluation" in _one_line(exc)
    with pytest.raises(DataError) as exc:
        load_classes(tmp_path, "train", min_images=4, progress=False)
    assert "holds 3 images" in _one_line(exc) and "character01" in str(exc.value)
    for c in (1, 2, 3):  # in every character: two are meta-train, one meta-val
        (tmp_path / "images_background" / "Alphabet_0" / f"character{c:02d}" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DataError) as exc:
        load_classes(tmp_path, "train", progress=False)
    assert "bad.png" in _one_line(exc)


# -- miniImageNet -----------------------------------------------------------------------------------
def test_miniimagenet_split_folders_read_lazily_as_rgb(tmp_path):
    _mini(tmp_path, {"train": 3, "val": 2, "test": 2})
    train = load_classes(tmp_path, "train", size=8, rotations=True, cache=4)
    assert len(train) == 3 and train.names == ("n0train0", "n0train1", "n0train2")  # no rotations here
    assert isinstance(train.items[0], tuple) and train.channels == 3 and image_format(tmp_path) == (3, 84)
    img = train.image(1, 2)
    assert img.shape == (3, 8, 8) and img[0].min() > 0.9 and img[1:].max() < 0.1  # red first
    assert len(train._decoded) == 1 and torch.equal(train.image(1, 2), img)
    assert LabelledImages(train)[5]["name"] == "n0train1/n0train1_1"
    assert load_classes(tmp_path, "test").image(0, 0).shape == (3, 84, 84)


def test_miniimagenet_errors(tmp_path):
    _mini(tmp_path, {"train": 2, "test": 2})
    with pytest.raises(DataError) as exc:
        load_classes(tmp_path, "val")
    assert "'val'" in _one_line(exc)
    with pytest.raises(DataError) as exc:
        load_classes(tmp_path, "train", min_images=5)
    assert "holds 4 images" in _one_line(exc) and str(tmp_path / "train" / "n0train0") in str(exc.value)
    bad = tmp_path / "train" / "n0train1" / "n0train1_0.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    classes = load_classes(tmp_path, "train")  # lazy: the file is read when drawn
    with pytest.raises(DataError) as exc:
        [classes.image(1, i) for i in range(4)]
    assert str(bad) in _one_line(exc)


def test_missing_folder_and_unknown_layout(tmp_path):
    with pytest.raises(DataError) as exc:
        load_classes(tmp_path / "nope", "train")
    assert "does not exist" in _one_line(exc) and "images_background" in str(exc.value)
    _character(tmp_path / "flat" / "cat", images=2)  # one level of class folders: no layout
    with pytest.raises(DataError) as exc:
        load_classes(tmp_path / "flat", "train")
    assert "no layout" in _one_line(exc) and "ROOT/train" in str(exc.value) and "miniImageNet" in str(exc.value)
