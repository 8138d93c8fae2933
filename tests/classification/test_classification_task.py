"""The classification reference task: data (CIFAR-10 folders, embedded synthetic set), search
setup driven through ``bilevel.BilevelLoop``, the discrete network's loss and evaluation."""
from __future__ import annotations

import argparse
import os
import pickle

import numpy as np
import pytest
import torch
import torchvision.datasets  # noqa: F401  (imported by the CIFAR reader; seconds, paid at collection)

import bilevel
from classification import ClassificationTask
from classification import data as cdata
from classification.synthetic import SYNTHETIC_CLASSES, synthetic_shapes
from datasets.errors import DataError
from nas import DARTS_V2, Genotype, GenotypeError
from tasks import SearchResult
from tasks.base import Scoring

TINY = {"channels": 4, "layers": 3, "batch_size": 2, "seed": 0, "data": None,
        "synthetic_train": 40, "synthetic_test": 20}


def tiny(stage: str = "search", **over):
    """The ``darts`` recipe (DARTS's settings) at a tiny size."""
    return ClassificationTask().settings(stage, "darts").replace({**TINY, **over})


def batch(n: int = 2, size: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, size, size, generator=g),
            "label": torch.randint(10, (n,), generator=g), "name": [f"{i:05d}" for i in range(n)]}


# -- synthetic data -------------------------------------------------------------------------------
def test_synthetic_is_deterministic_balanced_and_splits_differ():
    a, la = synthetic_shapes(60, seed=3)
    b, lb = synthetic_shapes(60, seed=3)
    c, _ = synthetic_shapes(60, seed=4)
    assert a.dtype == torch.uint8 and a.shape == (60, 3, 32, 32) and la.dtype == torch.int64
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert torch.bincount(la, minlength=10).tolist() == [6] * 10
    train, test = cdata.synthetic("train", 30), cdata.synthetic("test", 30)
    assert not torch.equal(train.images, test.images)
    assert train.classes == SYNTHETIC_CLASSES


def _fft_features(images: torch.Tensor) -> torch.Tensor:
    x = images.float() / 255
    x = x - x.mean((-2, -1), keepdim=True)
    return torch.log1p(torch.fft.rfft2(x).abs().sum(1)).flatten(1)  # translation invariant


def test_synthetic_is_learnable_nearest_class_mean_beats_chance():
    xtr, ytr = synthetic_shapes(1000, seed=0)
    xte, yte = synthetic_shapes(300, seed=1)
    ftr, fte = _fft_features(xtr), _fft_features(xte)
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6
    ftr, fte = (ftr - mu) / sd, (fte - mu) / sd
    means = torch.stack([ftr[ytr == c].mean(0) for c in range(10)])
    acc = (torch.cdist(fte, means).argmin(1) == yte).float().mean().item()
    assert acc > 0.45, acc  # chance is 0.10 (measured about 0.7)


# -- transforms ----------------------------------------------------------------------------------
def test_items_are_dicts_and_test_transform_only_normalises():
    ds = cdata.synthetic("test", 10)
    item = ds[3]
    assert set(item) == {"image", "label", "name"} and item["name"] == "00003"
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["label"].dtype == torch.int64 and item["label"].dim() == 0
    mean, std = torch.tensor(cdata.CIFAR_MEAN).view(3, 1, 1), torch.tensor(cdata.CIFAR_STD).view(3, 1, 1)
    assert torch.allclose(item["image"], (ds.images[3].float() / 255 - mean) / std)
    loaded = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert loaded["image"].shape == (4, 3, 32, 32) and loaded["label"].dtype == torch.int64
    assert loaded["name"] == ["00000", "00001", "00002", "00003"]


def test_augmentation_is_a_function_of_seed_epoch_and_index():
    images, labels = synthetic_shapes(8, seed=0)
    ds = cdata.ImageSet(images, labels, augment=True, cutout=8, seed=5)
    first = [ds[i]["image"] for i in range(8)]
    again = cdata.ImageSet(images, labels, augment=True, cutout=8, seed=5)
    assert all(torch.equal(a, again[i]["image"]) for i, a in enumerate(first))
    ds[7], ds[2]  # order of access does not matter
    assert torch.equal(ds[0]["image"], first[0])
    ds.set_epoch(1)
    assert sum(not torch.equal(ds[i]["image"], first[i]) for i in range(8)) >= 6
    ds.set_epoch(0)
    assert torch.equal(ds[4]["image"], first[4])
    other = cdata.ImageSet(images, labels, augment=True, cutout=8, seed=6)
    assert sum(not torch.equal(other[i]["image"], first[i]) for i in range(8)) >= 6


def test_cutout_zeroes_a_square_and_crop_pads_with_black():
    images = torch.full((1, 3, 32, 32), 200, dtype=torch.uint8)
    labels = torch.zeros(1, dtype=torch.int64)
    cut = cdata.ImageSet(images, labels, augment=False, cutout=16)
    zeros = (cut[0]["image"] == 0).all(0)
    assert 64 <= int(zeros.sum()) <= 256  # a 16x16 square, clipped at the border
    black = (-torch.tensor(cdata.CIFAR_MEAN) / torch.tensor(cdata.CIFAR_STD)).view(3, 1, 1)
    crops = cdata.ImageSet(images, labels, augment=True)
    padded = 0
    for epoch in range(6):
        crops.set_epoch(epoch)
        padded += int(torch.isclose(crops[0]["image"], black.expand(3, 32, 32)).all(0).sum())
    assert padded > 0  # shifted crops show the zero padding


def test_search_split_follows_train_portion():
    task = ClassificationTask()
    data = task.search_data(tiny(train_portion=0.75))
    lower, upper = data.lower, data.upper
    assert (len(lower), len(upper)) == (30, 10)
    assert lower[0]["name"] == "00000" and upper[0]["name"] == "00030"
    lower.set_epoch(2)
    assert upper.base.epoch == 2
    with pytest.raises(ValueError, match="train_portion"):
        task.search_data(tiny(train_portion=1.0))
    with pytest.raises(ValueError, match="train_portion must be in"):
        tiny(train_portion=1.5)


# -- CIFAR-10 folders ----------------------------------------------------------------------------
def _write_cifar(folder, per_batch: int = 3, seed: int = 0) -> dict:
    """A tiny CIFAR-10 folder in the python format: uint8 rows of 3072 (R, G, B planes)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {"batch_label": name, "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 "labels": rng.integers(0, 10, per_batch).tolist(),
                 "filenames": [f"{name}_{k}.png" for k in range(per_batch)]}
        with open(os.path.join(folder, name), "wb") as fh:
            pickle.dump(entry, fh)
        written[name] = entry
    with open(os.path.join(folder, "batches.meta"), "wb") as fh:
        pickle.dump({"label_names": list(cdata.CIFAR10_CLASSES), "num_cases_per_batch": per_batch}, fh)
    return written


def test_cifar_folder_in_torchvision_format_loads(tmp_path):
    written = _write_cifar(tmp_path / "cifar-10-batches-py")
    train = cdata.cifar10(tmp_path, train=True)
    assert len(train) == 15 and train.classes == cdata.CIFAR10_CLASSES
    first = torch.from_numpy(written["data_batch_1"]["data"][0].reshape(3, 32, 32))
    assert torch.equal(train.images[0], first)
    assert train.labels.tolist()[:3] == written["data_batch_1"]["labels"]
    test = cdata.cifar10(tmp_path / "cifar-10-batches-py", train=False)  # the folder itself
    assert len(test) == 3 and test.labels.tolist() == written["test_batch"]["labels"]

    task = ClassificationTask()
    cfg = tiny(data=str(tmp_path))
    data = task.search_data(cfg)
    lower, upper = data.lower, data.upper
    assert (len(lower), len(upper)) == (7, 8)
    data = task.train_data(tiny("train", data=str(tmp_path)))
    train_set, val_set = data.train, data.val
    assert len(train_set) == 15 and val_set is None and train_set.cutout == 16  # DARTS: no validation
    data = task.train_data(tiny("train", data=str(tmp_path), val_fraction=0.2))
    train_set, val_set = data.train, data.val
    assert (len(train_set), len(val_set)) == (12, 3)
    train_names = {train_set[i]["name"] for i in range(12)}
    val_names = {val_set[i]["name"] for i in range(3)}
    assert not train_names & val_names and train_names | val_names == {f"{i:05d}" for i in range(15)}
    assert len(task.test_data(str(tmp_path), cfg).test) == 3


def test_cifar_folder_missing_incomplete_or_corrupt_is_a_data_error(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="nowhere.*does not exist.*data_batch_1") as info:
        cdata.cifar10(missing, train=True)
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="nowhere"):
        ClassificationTask().test_data(str(missing), tiny())

    folder = tmp_path / "cifar-10-batches-py"
    _write_cifar(folder)
    os.remove(folder / "data_batch_4")
    with pytest.raises(DataError, match="lacks data_batch_4"):
        cdata.cifar10(tmp_path, train=True)

    _write_cifar(folder)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="corrupt") as info:
        cdata.cifar10(tmp_path, train=False)
    assert "\n" not in str(info.value) and str(folder) in str(info.value)


# -- search ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["darts2", "darts1"])
def test_build_search_runs_a_bilevel_step(method):
    task = ClassificationTask()
    cfg = tiny()
    setup = task.build_search(cfg, torch.device("cpu"))
    (group,) = setup.groups
    assert group.name == "arch" and group.every == 1
    net = setup.supernet
    assert set(group.problem.upper) == {"alphas_normal", "alphas_reduce"}
    assert set(group.problem.lower) == set(net.weight_parameters())
    assert set(group.problem.buffers) == {n for n, _ in net.named_buffers()}
    alphas = {k: v.detach().clone() for k, v in group.problem.upper.items()}
    stem = net.stem[0].weight.detach().clone()
    assert group.grad_clip == cfg.grad_clip and group.lower.grad_clip == cfg.lower_grad_clip
    loop = bilevel.GroupedLoop(setup.groups, method)
    stats = loop.step(batch(2, 16, seed=1), batch(2, 16, seed=2))
    assert np.isfinite(stats["upper_loss/arch"]) and np.isfinite(stats["lower_loss/weights"])
    assert all(not torch.equal(alphas[k], v) for k, v in group.problem.upper.items())
    assert not torch.equal(stem, net.stem[0].weight)
    setup.schedulers[0].step()
    assert group.lower.optimizer.param_groups[0]["lr"] < cfg.lr
    assert task.search_result(setup, cfg).genotype.space == "darts"


def test_build_search_is_seeded_and_uses_darts_optimizers():
    task = ClassificationTask()
    a = task.build_search(tiny(), torch.device("cpu"))
    b = task.build_search(tiny(), torch.device("cpu"))
    c = task.build_search(tiny(seed=1), torch.device("cpu"))
    assert torch.equal(a.supernet.alphas_normal, b.supernet.alphas_normal)
    assert not torch.equal(a.supernet.alphas_normal, c.supernet.alphas_normal)
    opt = a.groups[0].optimizer
    assert isinstance(opt, torch.optim.Adam) and opt.defaults["betas"] == (0.5, 0.999)
    assert opt.defaults["lr"] == 3e-4 and opt.defaults["weight_decay"] == 1e-3
    sgd = a.groups[0].lower.optimizer.defaults
    assert (sgd["lr"], sgd["momentum"], sgd["weight_decay"]) == (0.025, 0.9, 3e-4)


# -- train and evaluate ------------------------------------------------------------------------------
def test_network_from_darts_v2_trains_and_evaluates():
    task = ClassificationTask()
    cfg = tiny("train", epochs=10)
    net = task.build_network(SearchResult(DARTS_V2), cfg)
    assert net.auxiliary_head is not None
    assert task.count_parameters(net) < sum(p.numel() for p in net.parameters())
    setup = task.build_training(net, cfg, steps_per_epoch=1)
    task.on_epoch(net, 5, cfg)
    assert net.drop_path_prob == pytest.approx(0.2 * 5 / 10)
    net.train()
    loss = task.train_losses(net, batch(2, 32), cfg)["loss"]
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    setup.groups[0].optimizer.step()
    net.eval()
    b = batch(3, 32, seed=3)
    records, pred = task.evaluate_batch(net, b, cfg, Scoring())
    assert [r["name"] for r in records] == b["name"]
    assert all(r["top1"] in (0.0, 100.0) for r in records)
    assert [r["top1"] for r in records] == [100.0 if p == y else 0.0 for p, y in zip(pred, b["label"])]
    no_aux = task.build_network(SearchResult(DARTS_V2), tiny("train", auxiliary_weight=0.0))
    assert no_aux.auxiliary_head is None


def test_darts_v2_at_train_defaults_counts_3_3m_parameters():
    task = ClassificationTask()
    net = task.build_network(SearchResult(DARTS_V2), task.settings("train", "darts"))
    assert task.count_parameters(net) == 3_349_342  # DARTS: 3.3M, auxiliary head excluded
    assert sum(p.numel() for p in net.parameters()) > 3_349_342


def test_genotype_of_another_space_is_refused():
    task = ClassificationTask()
    other = Genotype("ruas", {"iem": (("conv_3x3", 0),)}, {"iem": (1,)})
    with pytest.raises(GenotypeError, match="space 'ruas'.*'darts'"):
        task.check_genotype(other, "file 'g.json'")
    with pytest.raises(GenotypeError):
        task.build_network(SearchResult(other), tiny("train"))
    task.check_genotype(DARTS_V2)


# -- configuration -------------------------------------------------------------------------------------
def test_darts_recipe_is_the_papers_and_the_default_is_cpu_sized_and_flags_map_to_config_keys():
    task = ClassificationTask()
    s, t = task.settings("search", "darts"), task.settings("train", "darts")
    assert (s.method, s.channels, s.layers, s.epochs, s.batch_size, s.train_portion) == ("darts2", 16, 8, 50, 64, 0.5)
    assert (s.lr, s.lr_min, s.arch_lr, s.lower_grad_clip, s.grad_clip) == (0.025, 0.001, 3e-4, 5.0, None)
    assert (t.channels, t.layers, t.epochs, t.batch_size) == (36, 20, 600, 96)
    assert (t.auxiliary_weight, t.cutout, t.drop_path, t.grad_clip) == (0.4, 16, 0.2, 5.0)
    d, e = task.settings("search"), task.settings("train")
    assert (d.method, d.channels, d.layers, d.epochs, d.batch_size) == ("darts1", 6, 4, 5, 32)
    assert (e.channels, e.layers, e.epochs, e.batch_size, e.auxiliary_weight) == (8, 5, 15, 64, 0.0)
    s = s.to_dict()
    for stage, flags in (("search", ["--train-portion", "0.6"]), ("train", ["--auxiliary-weight", "0.3",
                                                                            "--drop-path", "0.1"])):
        parser = argparse.ArgumentParser()
        task.add_arguments(parser, stage)
        args = vars(parser.parse_args(["--channels", "8", "--layers", "5", "--cutout", "0", *flags]))
        assert args["channels"] == 8 and args["layers"] == 5 and args["cutout"] == 0
        assert set(args) <= set(s)
        assert all(v is None for v in vars(parser.parse_args([])).values())
    parser = argparse.ArgumentParser()
    task.add_arguments(parser, "search")
    with pytest.raises(SystemExit):
        parser.parse_args(["--drop-path", "0.1"])
