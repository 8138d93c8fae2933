"""Genotype: derivation rules (known answers), JSON round trip, strict parsing."""

import json
import os
import pickle

import pytest
import torch

from nas.genotype import DARTS_PRIMITIVES, DARTS_V2, Genotype, GenotypeError, derive_chain, derive_darts

IDX = {p: i for i, p in enumerate(DARTS_PRIMITIVES)}


def _set(a, edge, op, value):
    a[edge, IDX[op]] = value


def test_derive_darts_known_answer():
    normal = torch.zeros(14, 8)
    # node 0 (edges 0, 1 <- inputs 0, 1)
    _set(normal, 1, "sep_conv_3x3", 5.0)
    _set(normal, 0, "skip_connect", 3.0)
    # node 1 (edges 2, 3, 4 <- inputs 0, 1, 2): 'none' dominates edge 2, so edge 2 is weakest
    _set(normal, 2, "none", 9.0)
    _set(normal, 2, "sep_conv_5x5", 1.0)
    _set(normal, 3, "dil_conv_3x3", 4.0)
    _set(normal, 4, "max_pool_3x3", 2.0)
    # node 2 (edges 5..8 <- inputs 0..3)
    _set(normal, 8, "sep_conv_5x5", 3.0)
    _set(normal, 6, "avg_pool_3x3", 2.5)
    # node 3 (edges 9..13 <- inputs 0..4)
    _set(normal, 13, "dil_conv_5x5", 1.0)
    _set(normal, 9, "skip_connect", 6.0)
    g = derive_darts(normal, torch.zeros(14, 8))
    assert g.space == "darts"
    assert g.normal == (
        ("sep_conv_3x3", 1), ("skip_connect", 0),
        ("dil_conv_3x3", 1), ("max_pool_3x3", 2),
        ("sep_conv_5x5", 3), ("avg_pool_3x3", 1),
        ("skip_connect", 0), ("dil_conv_5x5", 4),
    )
    # all ties: first non-'none' op, lowest inputs first (stable sort, as DARTS)
    assert g.reduce == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)


def _reference_parse(alphas, steps):
    """Independent vectorised restatement of DARTS's rule."""
    w = torch.softmax(alphas.double(), -1)
    w[:, 0] = -1.0  # 'none' never wins
    genes, start = [], 0
    for i in range(steps):
        rows = w[start : start + 2 + i]
        strength, op = rows.max(-1)
        for j in torch.argsort(-strength, stable=True)[:2].tolist():
            genes.append((DARTS_PRIMITIVES[op[j]], j))
        start += 2 + i
    return tuple(genes)


def test_derive_darts_matches_reference_on_random_alphas():
    torch.manual_seed(0)
    for _ in range(5):
        a, b = torch.randn(14, 8), torch.randn(14, 8)
        g = derive_darts(a, b)
        assert g.normal == _reference_parse(a, 4) and g.reduce == _reference_parse(b, 4)


def test_derive_darts_with_edge_betas_and_multiplier():
    betas = torch.zeros(14)
    betas[1] = 5.0  # node 0 prefers input 1
    g = derive_darts(torch.zeros(14, 8), torch.zeros(14, 8), betas_normal=betas,
                     betas_reduce=torch.zeros(14), multiplier=2)
    assert g.normal[:2] == (("max_pool_3x3", 1), ("max_pool_3x3", 0))
    assert g.normal_concat == (4, 5)
    with pytest.raises(ValueError, match="shape"):
        derive_darts(torch.zeros(10, 8), torch.zeros(14, 8))


def test_derive_chain_argmax_excludes_none():
    prims = ["none", "conv_3x3", "skip_connect"]
    a = torch.tensor([[5.0, 1.0, 2.0], [0.0, 3.0, 1.0], [9.0, 0.0, 0.0]])
    g = derive_chain("ruas", {"iem": a, "nrm": a.flip(0)}, prims, [0, 1, 1], concat={"iem": [3], "nrm": [2, 3]})
    assert g.cells["iem"] == (("skip_connect", 0), ("conv_3x3", 1), ("conv_3x3", 1))
    assert g.cells["nrm"] == (("conv_3x3", 0), ("conv_3x3", 1), ("skip_connect", 1))
    assert g.concat == {"iem": (3,), "nrm": (2, 3)}
    assert derive_chain("x", {"c": a}, prims, [0, 1, 2]).concat["c"] == (3,)
    assert json.loads(g.to_json())["iem_concat"] == [3]


def test_darts_v2_json_round_trip(tmp_path):
    text = DARTS_V2.to_json()
    data = json.loads(text)
    assert list(data) == ["space", "normal", "normal_concat", "reduce", "reduce_concat"]
    assert data["normal"][7] == ["dil_conv_3x3", 2]
    back = Genotype.from_json(text, primitives=DARTS_PRIMITIVES, cell_names=["normal", "reduce"])
    assert back == DARTS_V2 and hash(back) == hash(DARTS_V2)
    path = tmp_path / "genotype.json"
    DARTS_V2.save(path)
    assert Genotype.load(path, DARTS_PRIMITIVES) == DARTS_V2
    assert os.listdir(tmp_path) == ["genotype.json"]  # no temp file left
    assert pickle.loads(pickle.dumps(DARTS_V2)) == DARTS_V2


def test_genotype_is_frozen_and_attribute_access():
    with pytest.raises(AttributeError):
        DARTS_V2.space = "x"
    with pytest.raises(AttributeError):
        DARTS_V2.nope
    assert DARTS_V2.reduce_concat == (2, 3, 4, 5)
    swapped = Genotype("darts", dict(reversed(list(DARTS_V2.cells.items()))), DARTS_V2.concat)
    assert swapped == DARTS_V2 and hash(swapped) == hash(DARTS_V2)
    with pytest.raises(GenotypeError):
        Genotype("s", {"a": (("x", 0),)}, {"b": (1,)})


def _write(tmp_path, text, name="bad.json"):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('{"space": "darts", "normal": [["sep_conv_3x3", 0]', "malformed JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"normal": [["sep_conv_3x3", 0]], "normal_concat": [2]}', "missing key 'space'"),
        ('{"space": "darts", "normal": [["sep_conv_3x3", 0]]}', "missing key 'normal_concat'"),
        ('{"space": "darts", "normal": [["sep_conv_3x3", 0]], "normal_concat": [2], "x_concat": [1]}', "'x_concat'"),
        ('{"space": "darts", "normal": [["conv_9x9", 0]], "normal_concat": [2]}', "unknown op 'conv_9x9'"),
        ('{"space": "darts", "normal": [["sep_conv_3x3", true]], "normal_concat": [2]}', "gene 0"),
        ('{"space": "darts", "normal": [["sep_conv_3x3", -1]], "normal_concat": [2]}', "gene 0"),
        ('{"space": "darts", "normal": [["sep_conv_3x3", 0]], "normal_concat": []}', "normal_concat"),
        ('{"space": "darts", "space": "x", "normal": [], "normal_concat": [2]}', "duplicate"),
        ('{"space": "darts"}', "no cells"),
    ],
)
def test_malformed_genotype_files_name_the_file(tmp_path, text, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(GenotypeError) as info:
        Genotype.load(path, primitives=DARTS_PRIMITIVES)
    msg = str(info.value)
    assert str(path) in msg and fragment in msg and "\n" not in msg
    assert isinstance(info.value, ValueError)


def test_wrong_cells_and_missing_file(tmp_path):
    chain = derive_chain("ruas", {"iem": torch.zeros(2, 2)}, ["a", "b"], [0, 1])
    path = tmp_path / "g.json"
    chain.save(path)
    with pytest.raises(GenotypeError, match="do not fit"):
        Genotype.load(path, cell_names=["normal", "reduce"])
    with pytest.raises(GenotypeError, match="missing.json"):
        Genotype.load(tmp_path / "missing.json")
