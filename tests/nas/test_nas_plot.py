"""plot_genotype writes a PNG, or returns False without raising or writing."""

import os

import torch

from nas.genotype import DARTS_V2, derive_chain
from nas.plot import plot_genotype

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_darts_v2_and_chain(tmp_path):
    path = tmp_path / "genotype.png"
    assert plot_genotype(DARTS_V2, path) is True
    assert path.read_bytes()[:8] == PNG_MAGIC
    chain = derive_chain("ruas", {"iem": torch.randn(3, 2), "nrm": torch.randn(7, 2)},
                         ["conv_3x3", "skip_connect"], {"iem": [0, 1, 2], "nrm": [0, 0, 2, 2, 4, 4, 6]},
                         concat={"iem": [3], "nrm": [1, 3, 5, 7]})
    chain_path = tmp_path / "chain.png"
    assert plot_genotype(chain, chain_path) is True
    assert chain_path.read_bytes()[:8] == PNG_MAGIC
    assert sorted(os.listdir(tmp_path)) == ["chain.png", "genotype.png"]


def test_plot_failure_returns_false_and_writes_nothing(tmp_path):
    assert plot_genotype(DARTS_V2, tmp_path / "missing_dir" / "g.png") is False
    assert plot_genotype(None, tmp_path / "g.png") is False  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []
