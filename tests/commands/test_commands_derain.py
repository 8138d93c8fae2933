"""The deraining commands end to end on tiny folders (Rain100L layout and a video folder), the
hypergradient families, the reference genotype, tiles, scoring a folder of outputs, and bad inputs
as one-line errors before the first step."""
import csv
import json

import pytest
import torch

from commands.errors import run
from commands.evaluate import main as evaluate_main
from tasks.registry import get_task
from commands.search import main as search_main
from commands.train import main as train_main
from datasets import write_image
from datasets.synthetic_rain import SyntheticRain, SyntheticRainVideo

TINY = ["--task", "derain", "--channels", "4", "--cells", "1", "--crop", "16", "--batch-size", "2", "--device", "cpu"]


def _rain100(root, split, count, size=24, offset=0):
    data = SyntheticRain("train" if split != "test" else "test", size=size, count=count + offset)
    for i in range(offset, offset + count):
        it = data[i]
        write_image(root / split / f"rain-{i + 1:03d}.png", it["input"])
        write_image(root / split / f"norain-{i + 1:03d}.png", it["target"])


def _video_folder(root, split, videos=2, length=5, size=24):
    data = SyntheticRainVideo("train" if split != "test" else "test", 1, size=size, videos=videos, length=length)
    for v in range(videos):
        rainy, clean = data.video(v)
        for k in range(length):
            write_image(root / split / f"v{v}" / f"rfc-{k + 1}.png", rainy[k])
            write_image(root / split / f"v{v}" / f"gtc-{k + 1}.png", clean[k])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("rain100")
    _rain100(root, "train", 5)
    _rain100(root, "val", 2, offset=5)
    _rain100(root, "test", 2)
    return root


@pytest.fixture(scope="module")
def runs(folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("derain")
    S, T = root / "S", root / "T"
    assert run(search_main, [*TINY, "--data", str(folder), "--steps", "2", "--max-steps", "2", "--out", str(S)]) == 0
    assert run(train_main, [*TINY, "--data", str(folder), "--from", str(S), "--max-steps", "2", "--out", str(T)]) == 0
    return S, T


def test_search_writes_a_chain_genotype_and_train_uses_it(runs):
    S, T = runs
    genotype = json.loads((S / "genotype.json").read_text())
    assert genotype["space"] == "derain" and len(genotype["cell"]) == 2
    assert json.loads((S / "config.json").read_text())["split"] == {"lower_items": 5, "upper_items": 2}
    model = torch.load(T / "model.pt", weights_only=True)
    assert model["task"] == "derain" and model["genotype"]["cell"] == genotype["cell"]
    assert model["metric"] == "psnr" and (T / "samples.png").is_file()


def test_evaluate_saves_outputs_that_score_the_same_as_a_predictions_folder(runs, folder, tmp_path):
    _, T = runs
    out = tmp_path / "E"
    assert run(evaluate_main, ["--checkpoint", str(T / "model.pt"), "--data", str(folder), "--save-images",
                               "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"psnr", "ssim", "count", "convention"} and metrics["count"] == 2
    assert "Y channel" in metrics["convention"] and "rgb2ycbcr" in metrics["convention"]
    assert sorted(p.name for p in (out / "images").glob("*.png")) == ["rain-001.png", "rain-002.png"]
    assert sorted(p.name for p in (out / "images" / "panels").glob("*.png")) == ["rain-001.png", "rain-002.png"]
    task = get_task("derain")
    s = task.settings("train").replace({"data": str(folder)})
    rows, _ = task.score_predictions(str(out / "images"), str(folder), s)
    with open(out / "per_image.csv") as f:
        written = {r["name"]: r for r in csv.DictReader(f)}
    # the Y metrics score the 8-bit image (RGB rounded as the PNG holds it), so the saved PNGs score exactly as the
    # network's outputs
    for row in rows:
        for key in ("psnr", "ssim"):
            assert float(written[row["name"]][key]) == pytest.approx(row[key], rel=1e-5), key
    scored = tmp_path / "P"
    assert run(evaluate_main, ["--task", "derain", "--predictions", str(out / "images"), "--data", str(folder),
                               "--out", str(scored)]) == 0
    again = json.loads((scored / "metrics.json").read_text())
    assert again["psnr"] == pytest.approx(metrics["psnr"], rel=1e-6) and again["count"] == 2


def test_tiled_evaluation_of_a_local_network_equals_whole_images(runs, folder):
    _, T = runs
    ckpt = torch.load(T / "model.pt", weights_only=True)
    task = get_task("derain")
    from tasks import SearchResult
    from restoration.derain.genotype import ops_to_genotype

    s = task.Settings.from_dict(ckpt["config"])
    # receptive-field radius 3 (stem, conv_3x3, head) <= overlap // 4, no global pooling: tiles are exact
    local = SearchResult(genotype=ops_to_genotype(["conv_3x3"]))
    torch.manual_seed(0)
    whole = task.build_network(local, s)
    tiles = s.replace({"tile": 16, "tile_overlap": 12})
    tiled = task.build_network(local, tiles)
    tiled.load_state_dict(whole.state_dict())
    test = task.test_data(str(folder), s)
    batch = {k: (v[None] if torch.is_tensor(v) else [v]) for k, v in test.test[0].items()}
    _, a = task.evaluate_batch(whole, batch, s, test.scoring)
    _, b = task.evaluate_batch(tiled, batch, tiles, test.scoring)
    assert a[0]["output"].shape == (3, 24, 24)
    assert (a[0]["output"] - b[0]["output"]).abs().max() < 1e-4


@pytest.mark.parametrize("method", ["darts1", "cg", "ias"])  # darts2 (the default) runs in the fixture
def test_every_method_family_runs_a_step(folder, tmp_path, method):
    options = ["--option", "iters=2"] if method == "cg" else []
    assert run(search_main, [*TINY, "--data", str(folder), "--steps", "2", "--method", method, *options,
                             "--max-steps", "1", "--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "config.json").read_text())["method"] == method


def test_reference_genotype_trains_on_a_video_folder_with_frame_windows(tmp_path):
    _video_folder(tmp_path / "data", "train", videos=2)
    _video_folder(tmp_path / "data", "test", videos=1)
    T, E = tmp_path / "T", tmp_path / "E"
    assert run(train_main, [*TINY, "--frames", "3", "--data", str(tmp_path / "data"), "--genotype",
                            "restoration/derain/tmics_reference.json", "--max-steps", "2", "--out", str(T)]) == 0
    config = json.loads((T / "config.json").read_text())
    assert config["frames"] == 3 and config["split"] == {"train_items": 5, "val_items": 3}
    assert run(evaluate_main, ["--checkpoint", str(T / "model.pt"), "--data", str(tmp_path / "data"),
                               "--out", str(E)]) == 0
    assert json.loads((E / "metrics.json").read_text())["count"] == 3  # frames 2..4 of 5 have a full window


def _break(root, problem):
    if problem == "unpaired":
        (root / "train" / "norain-002.png").unlink()
        return "rain-002.png"
    if problem == "sizes":
        write_image(root / "train" / "norain-003.png", torch.rand(3, 20, 24))
        return "003"
    if problem == "rain1400":
        for k in (1, 2):
            write_image(root / "train" / "rainy_image" / f"7_{k}.jpg", torch.rand(3, 24, 24))
        write_image(root / "train" / "rainy_image" / "8_1.jpg", torch.rand(3, 24, 24))
        write_image(root / "train" / "ground_truth" / "7.jpg", torch.rand(3, 24, 24))
        return "8_1.jpg"
    if problem == "video":
        (root / "train" / "v1" / "rfc-3.png").unlink()
        return "v1"
    raise AssertionError(problem)


@pytest.mark.parametrize("problem", ["unpaired", "sizes", "rain1400", "video"])
def test_bad_inputs_are_one_line_errors_before_the_first_step(tmp_path, capsys, problem):
    data = tmp_path / "data"
    if problem == "video":
        _video_folder(data, "train", videos=2)
    elif problem != "rain1400":
        _rain100(data, "train", 4)
    named = _break(data, problem)
    out = tmp_path / "S"
    frames = ["--frames", "3"] if problem == "video" else []
    code = run(search_main, [*TINY, *frames, "--data", str(data), "--max-steps", "1", "--out", str(out)])
    # what the terminal shows last: the file-check bar clears its line (\r) before the error
    err = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]
    assert code == 2 and err.startswith("error:") and named in err, err
    assert not (out / "checkpoint.pt").exists()


def test_settings_refuse_even_windows_and_unknown_keys(tmp_path, capsys):
    (tmp_path / "c.json").write_text(json.dumps({"frame": 3}))
    code = run(search_main, [*TINY, "--config", str(tmp_path / "c.json"), "--out", str(tmp_path / "S")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "'frame'" in err and "frames" in err
    code = run(search_main, [*TINY, "--frames", "2", "--out", str(tmp_path / "S2")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "odd" in err


@pytest.mark.slow
def test_embedded_default_search_and_train_beat_the_rainy_input_and_a_median_filter(tmp_path):
    """One search epoch (16 darts2 steps) and the default retraining (320 steps) on the embedded data:
    Y-PSNR and Y-SSIM above the rainy input's and a 5x5 median filter's on the test split."""
    from restoration.derain.baseline import median_derain
    from restoration.derain.evaluation import derain_metrics

    assert run(search_main, ["--task", "derain", "--device", "cpu", "--epochs", "1", "--out", str(tmp_path / "S")]) == 0
    assert run(train_main, ["--task", "derain", "--device", "cpu", "--from", str(tmp_path / "S"),
                            "--out", str(tmp_path / "T")]) == 0
    assert run(evaluate_main, ["--checkpoint", str(tmp_path / "T" / "model.pt"), "--out", str(tmp_path / "E")]) == 0
    ours = json.loads((tmp_path / "E" / "metrics.json").read_text())
    data = SyntheticRain("test")
    x = torch.stack([data[i]["input"] for i in range(len(data))])
    y = torch.stack([data[i]["target"] for i in range(len(data))])
    for name, baseline in (("rainy", x), ("median", median_derain(x))):
        m = {k: float(v.mean()) for k, v in derain_metrics(baseline, y).items()}
        assert ours["psnr"] > m["psnr"] + 1.0 and ours["ssim"] > m["ssim"], (name, ours, m)
