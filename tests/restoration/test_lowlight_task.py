"""The low-light Task: genotype conversion, cooperative search step, data, evaluation, outputs
(tiny networks, 16x16 crops)."""

from __future__ import annotations

import argparse

import pytest
import torch

import bilevel
from datasets import DataError, read_image, write_image
from nas.genotype import DARTS_V2, Genotype, GenotypeError
from restoration.lowlight import RUAS_IEM_OPS, RUAS_NRM_OPS, RUAS_PRIMITIVES, RUASNet, RUASSearch
from restoration.lowlight.genotype import (
    CONCAT,
    EDGE_INPUTS,
    RUAS_REFERENCE_PATH,
    derive_ruas,
    genotype_to_ops,
    ops_to_genotype,
    reference_genotype,
)
from restoration.lowlight.task import LowLightTask
from tasks import Scoring, SearchResult, SearchSetup, SettingsError

TINY = {"iem_stages": 1, "nrm_cells": 1, "nrm_channels": 3}


def _config(stage: str = "search", recipe: str = "default", **over):
    return LowLightTask().settings(stage, recipe).replace({**TINY, **over})


def _batch(n: int = 2, size: int = 16, target: bool = True) -> dict:
    g = torch.Generator().manual_seed(0)
    b = {"input": 0.2 * torch.rand(n, 3, size, size, generator=g), "name": [f"img{i}.png" for i in range(n)],
         "size": torch.tensor([[size, size]] * n)}
    if target:
        b["target"] = torch.rand(n, 3, size, size, generator=g)
    return b


def test_genotype_op_lists_round_trip():
    g = ops_to_genotype(RUAS_IEM_OPS, RUAS_NRM_OPS)
    assert g.space == "ruas" and set(g.cells) == {"iem", "nrm"}
    assert [i for _, i in g.cells["iem"]] == list(EDGE_INPUTS) and g.concat["nrm"] == CONCAT
    ops = genotype_to_ops(g)
    assert ops == {"iem_ops": list(RUAS_IEM_OPS), "nrm_ops": list(RUAS_NRM_OPS)}
    assert Genotype.from_json(g.to_json()) == g
    # the supernet's argmax lists and the derived genotype agree
    torch.manual_seed(0)
    net = RUASSearch(**{"iem_stages": 1, "nrm_cells": 1, "nrm_channels": 3})
    lists = net.genotype_lists()
    derived = derive_ruas({"iem": net.alphas_iem, "nrm": net.alphas_nrm})
    assert genotype_to_ops(derived) == {"iem_ops": lists["iem"], "nrm_ops": lists["nrm"]}
    result = LowLightTask().search_result(SearchSetup(net, []), _config())
    assert genotype_to_ops(result.genotype) == genotype_to_ops(derived)


def test_reference_json_loads_and_builds_3438_params():
    task = LowLightTask()
    g = Genotype.load(RUAS_REFERENCE_PATH, primitives=RUAS_PRIMITIVES, cell_names=("iem", "nrm"))
    assert g == reference_genotype()
    net = task.build_network(SearchResult(g), task.settings("train"))
    assert isinstance(net, RUASNet) and task.count_parameters(net) == 3438


def test_check_genotype_refuses_other_spaces_and_topologies():
    task = LowLightTask()
    with pytest.raises(GenotypeError, match="space 'darts'"):
        task.check_genotype(DARTS_V2, source="g.json")
    ref = reference_genotype()
    moved = Genotype("ruas", {"iem": ((op, 0) for op, _ in ref.cells["iem"]), "nrm": ref.cells["nrm"]},
                     ref.concat)
    with pytest.raises(GenotypeError, match="reads nodes"):
        task.check_genotype(moved, source="g.json")
    task.check_genotype(ref)


@pytest.mark.parametrize("method", ["darts2", "cg"])
def test_shared_lower_level_updates_iem_every_step_and_nrm_every_k(method):
    torch.manual_seed(0)
    task = LowLightTask()
    setup = task.build_search(_config(nrm_every=2), torch.device("cpu"))
    assert [g.name for g in setup.groups] == ["iem", "nrm"] and [g.every for g in setup.groups] == [1, 2]
    assert setup.groups[0].lower is setup.groups[1].lower  # one lower problem, stepped once per step
    net = setup.supernet
    loop = bilevel.GroupedLoop(setup.groups, method, {"iters": 3} if method == "cg" else {})
    lower, upper = _batch(size=12, target=False), _batch(size=12, target=False)
    for step in range(2):
        before = {k: v.detach().clone() for k, v in net.named_parameters()}
        stats = loop.step(lower, upper)
        assert set(k for k in stats if k.startswith("lower_loss")) == {"lower_loss/weights"}
        changed = {k for k, v in net.named_parameters() if not torch.equal(v, before[k])}
        assert "alphas_iem" in changed
        assert ("alphas_nrm" in changed) == (step == 0)
        assert "iem.cells.0.fuse.weight" in changed and "nrm.head.weight" in changed
    # each problem sees the other group's alphas as a live constant view
    iem_problem, nrm_problem = (g.problem for g in setup.groups)
    assert torch.equal(iem_problem.buffers["alphas_nrm"], net.alphas_nrm)
    assert torch.equal(nrm_problem.buffers["alphas_iem"], net.alphas_iem)
    assert not nrm_problem.buffers["alphas_iem"].requires_grad
    assert set(iem_problem.lower) == set(net.weight_parameters())


def test_ruas_recipe_separates_the_lower_problems():
    """RUAS's cooperative search: IEM weights and alphas every step, NRM weights and alphas every k
    steps, each on its own loss; the IEM lower loss does not depend on the NRM."""
    torch.manual_seed(0)
    task = LowLightTask()
    s = _config(recipe="ruas", nrm_every=2, crop=16)
    assert (s.epochs, s.batch_size, s.lr_schedule, s.weight_decay, s.arch_lr) == (20, 1, "constant", 0.0, 3e-4)
    setup = task.build_search(s, torch.device("cpu"))
    iem, nrm = setup.groups
    assert iem.lower is not nrm.lower and (iem.lower.every, nrm.lower.every) == (1, 2)
    assert set(iem.problem.lower) == set(setup.supernet.weight_parameters("iem"))
    assert set(nrm.problem.lower) == set(setup.supernet.weight_parameters("nrm"))
    assert set(iem.problem.buffers) >= set(nrm.problem.lower) and "alphas_nrm" in iem.problem.buffers
    assert setup.schedulers == [] and isinstance(iem.lower.optimizer, torch.optim.SGD)
    net = setup.supernet
    loop = bilevel.GroupedLoop(setup.groups, "darts2")
    batch = _batch(n=1, size=12, target=False)
    # the IEM lower loss ignores the NRM weights: its gradient there is zero
    f = iem.problem.lower_loss({**{k: v.detach().requires_grad_() for k, v in iem.problem.lower.items()},
                                **iem.problem.buffers}, iem.problem.upper, batch)
    for step in range(2):
        before = {k: v.detach().clone() for k, v in net.named_parameters()}
        stats = loop.step(batch, batch)
        changed = {k for k, v in net.named_parameters() if not torch.equal(v, before[k])}
        assert {"alphas_iem", "iem.cells.0.fuse.weight"} <= changed
        assert ("alphas_nrm" in changed) == ("nrm.head.weight" in changed) == (step == 0)
        assert ("lower_loss/nrm" in stats) == (step == 0) and "lower_loss/iem" in stats
    assert f.ndim == 0


def test_search_and_train_data_are_deterministic_halves():
    task = LowLightTask()
    data = task.search_data(_config(synthetic_count=4, crop=16))
    lower, upper = data.lower, data.upper
    assert "embedded" in data.note
    assert len(lower) == len(upper) == 2
    a, b = lower[0], lower[0]
    assert a["input"].shape == (3, 16, 16) and torch.equal(a["input"], b["input"])
    assert torch.equal(a["size"], torch.tensor([16, 16]))
    lower.set_epoch(1)
    assert not torch.equal(lower[0]["input"], a["input"])
    assert not torch.equal(upper[0]["input"], a["input"])


def test_train_losses_supervised_unsupervised_and_ruas_groups():
    task = LowLightTask()
    net = task.build_network(SearchResult(reference_genotype()), _config("train"))
    batch = _batch()
    sup = task.train_losses(net, batch, _config("train", supervised="auto"))["loss"]
    unsup = task.train_losses(net, batch, _config("train", supervised=False))["loss"]
    assert sup.ndim == 0 and unsup.ndim == 0 and not torch.isclose(sup, unsup)
    assert torch.isclose(task.train_losses(net, _batch(target=False), _config("train"))["loss"], unsup)
    with pytest.raises(DataError, match="reference"):
        task.train_losses(net, _batch(target=False), _config("train", supervised=True))
    ruas = _config("train", recipe="ruas")
    losses = task.train_losses(net, batch, ruas)
    assert set(losses) == {"iem", "nrm"} and torch.isclose(losses["iem"] + losses["nrm"], unsup)
    setup = task.build_training(net, ruas, steps_per_epoch=10)
    (iem, nrm) = setup.groups
    assert (iem.loss, iem.every, nrm.loss, nrm.every) == ("iem", 1, "nrm", 50)
    assert iem.optimizer.defaults["lr"] == 0.015 and nrm.optimizer.defaults["lr"] == 0.001
    assert {id(p) for p in iem.parameters()} == {id(p) for p in net.iem.parameters()}


def test_evaluate_batch_and_save_outputs(tmp_path):
    task = LowLightTask()
    s = _config("train")
    net = task.build_network(SearchResult(reference_genotype()), s)
    batch = _batch()
    records, outputs = task.evaluate_batch(net, batch, s, Scoring())
    assert [set(r) for r in records] == [{"name", "psnr", "ssim"}] * 2
    assert records[0]["name"] == "img0.png" and isinstance(records[0]["psnr"], float)
    task.save_outputs(outputs, batch, str(tmp_path))
    assert read_image(tmp_path / "img0.png").shape == (3, 16, 16)
    assert outputs[1]["metrics"] == {"psnr": records[1]["psnr"], "ssim": records[1]["ssim"]}  # the panel's titles
    panel = read_image(tmp_path / "panels" / "img1.png")  # input | enhanced | reference, enlarged (panels.py)
    assert panel.shape[1] > 256 and panel.shape[2] > 3 * 256
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == ["img0.png", "img0.png", "img1.png", "img1.png"]
    side = 16 * 12  # 16 px tiles enlarged 12x to a readable 192 px (restoration.grid), under a label strip
    grid = task.samples(net, batch)
    assert grid.shape == (3, 22 + 2 * side + 4, 3 * side + 8) and 0 <= grid.min() and grid.max() <= 1
    assert "full resolution" in task.evaluation_note(s, Scoring())


def test_unpaired_folder_gives_names_only(tmp_path):
    for i in range(2):
        write_image(tmp_path / "data" / f"{i}.jpg", 0.1 * torch.rand(3, 12 + i, 16))
    task = LowLightTask()
    s = _config("train")
    test = task.test_data(str(tmp_path / "data"), s)
    item = test.test[1]
    assert "target" not in item and item["input"].shape == (3, 13, 16) and not test.scoring.references
    net = task.build_network(SearchResult(reference_genotype()), s)
    batch = {"input": item["input"][None], "name": [item["name"]], "size": item["size"][None]}
    records, outputs = task.evaluate_batch(net, batch, s, test.scoring)
    assert records == [{"name": "1.jpg"}]
    task.save_outputs(outputs, batch, str(tmp_path / "out"))
    assert (tmp_path / "out" / "1.png").is_file() and (tmp_path / "out" / "panels" / "1.png").is_file()
    assert "no reference metrics" in task.evaluation_note(s, test.scoring)


def test_paired_folder_for_test_and_errors(tmp_path):
    for sub in ("low", "high"):
        write_image(tmp_path / "lol" / "eval15" / sub / "a.png", torch.rand(3, 16, 16))
    task = LowLightTask()
    test = task.test_data(str(tmp_path / "lol"), _config("train"))
    item = test.test[0]
    assert set(item) >= {"input", "target", "name"} and test.scoring.references
    (tmp_path / "lol" / "eval15" / "low" / "b.png").write_bytes(b"")
    with pytest.raises(DataError, match="no partner"):
        task.test_data(str(tmp_path / "lol"), _config("train"))
    with pytest.raises(DataError, match="does not exist"):
        task.test_data(str(tmp_path / "missing"), _config("train"))


def test_task_flags():
    parser = argparse.ArgumentParser()
    LowLightTask().add_arguments(parser, "search")
    args = parser.parse_args(["--crop", "32", "--nrm-every", "5", "--no-supervised", "--arch-lr", "1e-3"])
    assert (args.crop, args.nrm_every, args.supervised, args.arch_lr) == (32, 5, False, 1e-3)
    assert parser.parse_args([]).supervised is None
    train = argparse.ArgumentParser()
    LowLightTask().add_arguments(train, "train")
    assert train.parse_args(["--supervised"]).supervised is True
    assert train.parse_args(["--nrm-every", "50"]).nrm_every == 50  # the ruas retraining's NRM period
    with pytest.raises(SystemExit):
        train.parse_args(["--arch-lr", "1e-3"])


def test_settings_are_validated():
    with pytest.raises(SettingsError, match="unknown setting 'nrm_evrey'.*did you mean 'nrm_every'"):
        _config(nrm_evrey=3)
    with pytest.raises(SettingsError, match="nrm_every must be >= 1"):
        _config(nrm_every=0)
    with pytest.raises(SettingsError, match="lower_problems must be one of"):
        _config(lower_problems="both")
    with pytest.raises(SettingsError, match="no recipe 'paper'.*default, ruas"):
        LowLightTask().settings("search", "paper")
