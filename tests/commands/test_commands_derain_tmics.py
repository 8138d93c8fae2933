"""--task derain --recipe tmics-cpu: the three-level search end to end (genotype with DNA, CNA and the
inter-frame module, the AAS weights in hparams.json), retraining from it with the AAS held, evaluation,
the released cells as a reference, resume and refusals."""
import json
from pathlib import Path

import torch

from commands.errors import run
from commands.evaluate import main as evaluate_main
from commands.search import main as search_main
from commands.train import main as train_main
from datasets import write_image
from datasets.synthetic_rain import SyntheticRain

TINY = ["--task", "derain", "--recipe", "tmics-cpu", "--channels", "4", "--crop", "16", "--batch-size", "2",
        "--frames", "3"]
RELEASED = Path(__file__).resolve().parents[2] / "restoration" / "derain" / "tmics_released.json"


def test_three_level_search_then_train_and_evaluate(tmp_path, capsys):
    S, T, E = tmp_path / "S", tmp_path / "T", tmp_path / "E"
    assert run(search_main, [*TINY, "--steps", "2", "--max-steps", "2", "--out", str(S)]) == 0
    out = capsys.readouterr().out
    assert "levels, top first: aas (every 1, validation batch) > arch (every 1, validation batch) > weights" in out
    genotype = json.loads((S / "genotype.json").read_text())
    assert genotype["space"] == "tmics" and genotype["interframe"][0][0] in ("ofm", "tgm")
    assert len(genotype["dna"]) == len(genotype["cna"]) == 2
    hparams = json.loads((S / "hparams.json").read_text())
    assert hparams and all(k.startswith("aas.") for k in hparams)
    ckpt = torch.load(S / "checkpoint.pt", weights_only=True)
    assert ckpt["loop"]["step"] == 2 and set(ckpt["loop"]["optimizers"]) == {"aas", "arch", "weights"}
    assert run(train_main, [*TINY, "--from", str(S), "--max-steps", "2", "--out", str(T)]) == 0
    model = torch.load(T / "model.pt", weights_only=True)
    for k, v in hparams.items():  # the top level's AAS weights are held during retraining
        assert torch.allclose(model["state_dict"][k].float(), torch.tensor(v, dtype=torch.float32)), k
    assert run(evaluate_main, ["--checkpoint", str(T / "model.pt"), "--out", str(E)]) == 0
    assert json.loads((E / "metrics.json").read_text())["psnr"] > 0
    # single images (Rain100L layout): each scored as a still video of 3 identical frames
    images = SyntheticRain("test", size=24, count=2)
    for i in range(2):
        write_image(tmp_path / "R" / f"rain-{i + 1:03d}.png", images[i]["input"])
        write_image(tmp_path / "R" / f"norain-{i + 1:03d}.png", images[i]["target"])
    assert run(evaluate_main, ["--checkpoint", str(T / "model.pt"), "--data", str(tmp_path / "R"),
                               "--out", str(tmp_path / "E1")]) == 0
    assert json.loads((tmp_path / "E1" / "metrics.json").read_text())["count"] == 2


def test_resumed_three_level_search_equals_an_uninterrupted_one(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    args = [*TINY, "--steps", "2"]
    assert run(search_main, [*args, "--max-steps", "2", "--out", str(a)]) == 0
    assert run(search_main, [*args, "--max-steps", "1", "--out", str(b)]) == 0
    assert run(search_main, [*args, "--max-steps", "2", "--resume", "--out", str(b)]) == 0
    sa, sb = (torch.load(d / "checkpoint.pt", weights_only=True)["supernet"] for d in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_released_cells_train_as_a_reference(tmp_path):
    T = tmp_path / "T"
    assert run(train_main, [*TINY, "--genotype", str(RELEASED), "--max-steps", "1", "--out", str(T)]) == 0
    assert torch.load(T / "model.pt", weights_only=True)["genotype"]["space"] == "tmics"


def test_single_frames_and_two_level_methods_are_refused(tmp_path, capsys):
    assert run(search_main, [*TINY, "--frames", "1", "--max-steps", "1", "--out", str(tmp_path / "a")]) == 2
    assert "--frames 3 or more" in capsys.readouterr().err
    assert run(search_main, [*TINY, "--method", "darts2", "--max-steps", "1", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "cannot differentiate through more than one level" in err and err.count("\n") == 1
