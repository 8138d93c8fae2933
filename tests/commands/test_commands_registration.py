"""The registration commands end to end (tiny embedded pairs, npz and neurite-OASIS folders), every
hypergradient family, and bad inputs as one-line errors before the first step."""
import json
import sys

import numpy as np
import pytest

from commands.errors import run
from commands.evaluate import main as evaluate_main
from commands.search import main as search_main
from commands.train import main as train_main

TINY = ["--task", "registration", "--size", "16", "--synthetic-count", "8", "--channels", "4,8",
        "--batch-size", "2"]


def _names(run_dir):
    """The hyper-parameter names in a run's hparams.json (keys starting with _ are notes)."""
    return {k for k in json.loads((run_dir / "hparams.json").read_text()) if not k.startswith("_")}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg")
    assert run(search_main, [*TINY, "--max-steps", "2", "--out", str(root / "S")]) == 0
    hparams = json.loads((root / "S" / "hparams.json").read_text())
    assert _names(root / "S") == {"smooth"} and hparams["smooth"] > 0
    assert hparams["_learned"] is False  # 2 steps end inside the recipe's warm-up: the start value
    assert not (root / "S" / "genotype.json").exists()
    assert run(train_main, [*TINY, "--from", str(root / "S"), "--max-steps", "3", "--out", str(root / "T")]) == 0
    for name in ("model.pt", "checkpoint.pt", "metrics.csv", "config.json", "samples.png"):
        assert (root / "T" / name).is_file(), name
    return root / "T" / "model.pt"


def test_evaluate_writes_metrics_per_label_dice_and_pictures(model, tmp_path, capsys):
    out = tmp_path / "E"
    assert run(evaluate_main, ["--checkpoint", str(model), "--save-images", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"dice", "folding_pct", "jacobian_std", "count"} and metrics["count"] == 8
    header = (out / "per_image.csv").read_text().splitlines()[0].split(",")
    assert {"dice_unregistered", "dice_1", "dice_3"} <= set(header)
    warped = sorted(p.name for p in (out / "images").glob("*.png"))
    assert len(warped) == 8 and sorted(p.name for p in (out / "images" / "panels").glob("*.png")) == warped
    fields = sorted((out / "images" / "fields").glob("*.npy"))
    assert len(fields) == 8
    field = np.load(fields[0])
    assert field.shape == (2, 16, 16) and field.dtype == np.float32
    assert "unregistered Dice" in capsys.readouterr().out


def test_search_cells_gives_genotype_and_weights_then_trains(tmp_path, monkeypatch):
    # the genotype picture is nas.plot's (tested there); drawing it here would only cost time
    monkeypatch.setattr("commands.search.plot_genotype", lambda genotype, path, titles=None: False)
    S, T = tmp_path / "S", tmp_path / "T"
    assert run(search_main, [*TINY, "--search-cells", "--jacobian-weight", "0.5", "--max-steps", "1",
                             "--out", str(S)]) == 0
    genotype = json.loads((S / "genotype.json").read_text())
    assert genotype["space"] == "autoreg" and _names(S) == {"smooth", "jacobian"}
    assert run(train_main, [*TINY, "--from", str(S), "--max-steps", "1", "--out", str(T)]) == 0
    assert (T / "model.pt").is_file()


@pytest.mark.parametrize("method", ["darts1", "darts2", "cg"])
def test_every_method_family_runs_a_step(tmp_path, method):
    options = ["--option", "iters=2"] if method == "cg" else []  # fewer products than the recipe's 10
    assert run(search_main, [*TINY, "--method", method, *options, "--max-steps", "1", "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["method"] == method
    assert _names(tmp_path) == {"smooth"}
    assert not (tmp_path / "genotype.json").exists()


def test_dims_3_runs_end_to_end(tmp_path):
    tiny3 = [*TINY, "--dims", "3", "--size", "8", "--synthetic-count", "8", "--batch-size", "1"]
    assert run(search_main, [*tiny3, "--max-steps", "1", "--out", str(tmp_path / "S")]) == 0
    assert run(train_main, [*tiny3, "--from", str(tmp_path / "S"), "--max-steps", "1", "--out", str(tmp_path / "T")]) == 0
    out = tmp_path / "E"
    assert run(evaluate_main, ["--checkpoint", str(tmp_path / "T" / "model.pt"), "--save-images", "--out", str(out)]) == 0
    field = np.load(next((out / "images" / "fields").glob("*.npy")))
    assert field.shape == (3, 8, 8, 8)


def _npz(path, shape=(16, 16), seg_shape=None, keys=("vol", "seg")):
    rng = np.random.default_rng(0)
    arrays = {"vol": rng.random(shape).astype(np.float32), "seg": rng.integers(0, 3, seg_shape or shape)}
    np.savez(path, **{k: arrays[k] for k in keys})


def _nifti(folder, name, shape):
    nibabel = pytest.importorskip("nibabel", reason="needs the registration extra: pip install -e '.[registration]'")

    folder.mkdir(parents=True, exist_ok=True)
    nibabel.save(nibabel.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), str(folder / name))


def _error(main, argv, capsys):
    capsys.readouterr()
    code = run(main, argv)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.mark.parametrize("case,match", [
    ("no_label_map", "has no label map"),
    ("shapes_differ", "share one shape"),
    ("npz_without_seg", "holds arrays ['vol'] but no label map 'seg'"),
    ("2d_file_for_dims_3", "use --dims 2"),
    ("nibabel_missing", "needs nibabel"),
])
def test_bad_inputs_are_one_line_errors_before_the_first_step(tmp_path, capsys, monkeypatch, case, match):
    data, dims = tmp_path / "D", "2"
    data.mkdir()
    if case == "no_label_map":
        _nifti(data / "OASIS_OAS1_0001_MR1", "slice_norm.nii.gz", (16, 16, 1))
    elif case == "shapes_differ":
        for i in range(20):
            _npz(data / f"s{i}.npz", shape=(16, 16) if i else (16, 12))
    elif case == "npz_without_seg":
        for i in range(20):
            _npz(data / f"s{i}.npz", keys=("vol",) if i == 2 else ("vol", "seg"))
    elif case == "2d_file_for_dims_3":
        _nifti(data / "OASIS_OAS1_0001_MR1", "slice_norm.nii.gz", (16, 16, 1))
        dims = "3"
    elif case == "nibabel_missing":
        for i in range(20):
            _nifti(data / f"OASIS_OAS1_{i:04d}_MR1", "slice_norm.nii.gz", (16, 16, 1))
            _nifti(data / f"OASIS_OAS1_{i:04d}_MR1", "slice_seg24.nii.gz", (16, 16, 1))
        monkeypatch.setitem(sys.modules, "nibabel", None)
    out = tmp_path / "S"
    for main in (search_main, train_main):
        extra = ["--hparams", str(_weights(tmp_path))] if main is train_main else []
        code, err = _error(main, [*TINY, "--data", str(data), "--dims", dims, "--max-steps", "1", "--out", str(out),
                                  "--force", *extra], capsys)
        assert code == 2 and err.startswith("error: ") and match in err, err
        assert not (out / "checkpoint.pt").exists()


def _weights(tmp_path):
    path = tmp_path / "hparams.json"
    path.write_text('{"smooth": 0.5}')
    return path


@pytest.mark.parametrize("argv,match", [
    (["--smooth-weight", "0"], "must be positive"),
    (["--dims", "4"], "invalid choice"),
    (["--no-learn-weights"], "nothing to search"),
    (["--channels", "8"], "at least 2"),
])
def test_bad_settings_are_errors(tmp_path, capsys, argv, match):
    capsys.readouterr()
    try:
        code = run(search_main, [*TINY, *argv, "--max-steps", "1", "--out", str(tmp_path / "S")])
    except SystemExit as e:  # argparse's own usage error
        code = e.code
    assert code == 2 and match in capsys.readouterr().err


def test_bad_hparams_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "h.json"
    bad.write_text('{"lambda": 0.1}')
    code, err = _error(train_main, [*TINY, "--hparams", str(bad), "--max-steps", "1", "--out", str(tmp_path / "T")], capsys)
    assert code == 2 and "smooth" in err and str(bad) in err
