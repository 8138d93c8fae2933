"""A file of the wrong kind where the commands expect another gets one line naming what it is and the
fix: a train run folder for --from, a file for --data, a .pt that is no checkpoint, a picture for
--genotype."""
from __future__ import annotations

import pytest
import torch

from commands.errors import run
from commands.search import main as search_main
from commands.torchfile import holds, unreadable
from commands.train import main as train_main

TINY = ["--task", "lowlight", "--batch-size", "2", "--crop", "16", "--iem-stages", "1", "--nrm-cells", "1",
        "--nrm-channels", "3"]


def _line(capsys) -> str:
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: "), line
    return line


def test_from_a_train_run_folder_says_it_is_one_and_offers_init(tmp_path, capsys):
    folder = tmp_path / "train-lowlight"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"")
    assert run(train_main, [*TINY, "--from", str(folder), "--out", str(tmp_path / "T")]) == 2
    line = _line(capsys)
    assert f"--from {folder} is a train run folder (it holds model.pt), not a search run folder" in line
    assert f"--init {folder / 'model.pt'}" in line and "needs a genotype" not in line
    (folder / "model.pt").unlink()
    assert run(train_main, [*TINY, "--from", str(folder), "--out", str(tmp_path / "T")]) == 2
    assert f"--from {folder} holds neither genotype.json nor hparams.json" in _line(capsys)
    assert not (tmp_path / "T").exists()


def test_data_naming_a_file_says_it_is_a_file(tmp_path, capsys):
    image = tmp_path / "low.png"
    image.write_bytes(b"")
    assert run(search_main, [*TINY, "--data", str(image), "--max-steps", "1", "--out", str(tmp_path / "S")]) == 2
    line = _line(capsys)
    assert f"'{image}' is a file, not a folder" in line and "does not exist" not in line
    assert run(search_main, [*TINY, "--data", str(tmp_path / "nowhere"), "--max-steps", "1",
                             "--out", str(tmp_path / "S")]) == 2
    assert "nowhere' does not exist" in _line(capsys)


def test_genotype_picture_names_the_genotype_beside_it(tmp_path, capsys):
    picture = tmp_path / "genotype.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    (tmp_path / "genotype.json").write_text("{}")
    assert run(train_main, [*TINY, "--genotype", str(picture), "--out", str(tmp_path / "T")]) == 2
    line = _line(capsys)
    assert "is a PNG image" in line and f"pass {tmp_path / 'genotype.json'}" in line and "Unicode" not in line


@pytest.fixture()
def files(tmp_path):
    torch.save({"conv.weight": torch.zeros(2, 2), "conv.bias": torch.zeros(2)}, tmp_path / "state.pt")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pt")
    torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, tmp_path / "wrapped.pt")
    (tmp_path / "text.pt").write_text("hello")
    return tmp_path


def test_what_a_pt_file_holds_is_named(files):
    assert holds(torch.load(files / "state.pt", weights_only=True)) == "a plain state dict of 2 tensors (first 'conv.weight')"
    assert holds(torch.load(files / "wrapped.pt", weights_only=True)) == "a dict of keys 'model', 'epoch'"
    assert holds(torch.zeros(3, 4)) == "a tensor of shape [3, 4]"
    assert unreadable(files / "module.pt").startswith("a pickle of Python objects (first torch.nn.modules.linear.Linear")
    assert unreadable(files / "text.pt") == "a file of another format"


def test_resume_over_a_non_checkpoint_says_what_it_holds_and_keeps_it(files, capsys):
    out = files / "R"
    out.mkdir()
    (out / "checkpoint.pt").write_bytes((files / "state.pt").read_bytes())
    genotype = ["--genotype", "restoration/lowlight/ruas_reference.json"]
    assert run(train_main, [*TINY, *genotype, "--resume", "--out", str(out)]) == 2
    line = _line(capsys)
    assert "holds a plain state dict of 2 tensors (first 'conv.weight'), not a checkpoint written by " in line
    assert f"move it out of {out}" in line and "KeyError" not in line
    assert (out / "checkpoint.pt").read_bytes() == (files / "state.pt").read_bytes()
