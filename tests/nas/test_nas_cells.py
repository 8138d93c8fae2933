"""Search and discrete cells (DAG and chain), drop path."""

import pytest
import torch
from torch import nn

from nas.cells import Cell, ChainCell, ChainSearchCell, SearchCell, drop_path, num_dag_edges
from nas.genotype import DARTS_V2, derive_chain
from nas.ops import DARTS_PRIMITIVES, OPS

P = len(DARTS_PRIMITIVES)


def _w(e, p=P):
    return torch.softmax(torch.randn(e, p), -1)


@pytest.mark.parametrize(
    "reduction, reduction_prev, s0_size, out_size",
    [(False, False, 8, 8), (True, False, 8, 4), (False, True, 16, 8)],
)
def test_search_cell_shapes(reduction, reduction_prev, s0_size, out_size):
    cell = SearchCell(4, 4, 6, 5, 4, reduction, reduction_prev)
    assert len(cell._ops) == num_dag_edges(4) == 14
    y = cell(torch.randn(2, 6, s0_size, s0_size), torch.randn(2, 5, 8, 8), _w(14))
    assert y.shape == (2, 16, out_size, out_size)


def test_search_cell_edge_norm_and_multiplier():
    cell = SearchCell(3, 2, 4, 4, 4, False, False, partial_k=2, edge_norm=True)
    x = torch.randn(1, 4, 8, 8)
    assert cell(x, x, _w(9), torch.randn(9)).shape == (1, 8, 8, 8)
    with pytest.raises(ValueError, match="betas"):
        cell(x, x, _w(9))
    with pytest.raises(ValueError, match="rows"):
        cell(x, x, _w(14), torch.randn(9))


def test_discrete_cell_from_darts_v2():
    normal = Cell(DARTS_V2.normal, DARTS_V2.normal_concat, 6, 6, 4, False, False)
    reduce = Cell(DARTS_V2.reduce, DARTS_V2.reduce_concat, 6, 16, 8, True, False)
    x = torch.randn(2, 6, 8, 8)
    assert normal(x, x).shape == (2, 16, 8, 8)
    assert reduce(x, torch.randn(2, 16, 8, 8)).shape == (2, 32, 4, 4)
    assert normal.multiplier == 4 and len(normal._ops) == 8


def test_discrete_cell_drop_path_only_in_training():
    torch.manual_seed(0)
    cell = Cell(DARTS_V2.normal, DARTS_V2.normal_concat, 4, 4, 4, False, False).eval()
    x = torch.randn(4, 4, 8, 8)
    assert torch.equal(cell(x, x, 0.5), cell(x, x, 0.0))
    cell.train()
    assert cell(x, x, 0.3).shape == (4, 16, 8, 8)


def test_discrete_cell_rejects_bad_genes():
    with pytest.raises(ValueError, match="not yet computed"):
        Cell((("skip_connect", 0), ("skip_connect", 2)), (2,), 4, 4, 4, False, False)
    with pytest.raises(ValueError, match="unknown"):
        Cell((("conv_9x9", 0), ("skip_connect", 1)), (2,), 4, 4, 4, False, False)


def test_drop_path_drops_whole_samples_and_rescales():
    torch.manual_seed(0)
    y = drop_path(torch.ones(2000, 1, 2, 2, dtype=torch.float64), 0.25)
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) <= {0.0, 1 / 0.75}
    assert (per_sample.std(1) == 0).all()
    assert abs(y.mean().item() - 1.0) < 0.06
    x = torch.ones(3, 2)
    assert drop_path(x, 0.0) is x


RES_OPS = {
    "zero": OPS["none"],
    "skip": OPS["skip_connect"],
    "conv": lambda ci, co, s, a: nn.Conv2d(ci, co, 3, s, 1),
}
RES_PRIMS = ["zero", "skip", "conv"]
# RUAS-like distillation block: 7 edges, three distilled branches + a last node, fused
EDGES = [0, 0, 2, 2, 4, 4, 6]
CONCAT = [1, 3, 5, 7]
EDGE_RES = [False, True, False, True, False, True, False]


def test_chain_search_cell_shapes_and_derivation():
    cell = ChainSearchCell(RES_PRIMS, RES_OPS, 4, EDGES, CONCAT, residual=True,
                           edge_residual=EDGE_RES, act=nn.LeakyReLU(0.05))
    x = torch.randn(2, 4, 8, 8)
    assert cell(x, _w(7, 3)).shape == (2, 4, 8, 8)
    alphas = torch.zeros(7, 3)
    alphas[:, 2] = 1.0
    g = derive_chain("toy", {"blk": alphas}, RES_PRIMS, EDGES, CONCAT)
    discrete = ChainCell(g.cells["blk"], RES_OPS, 4, g.concat["blk"], residual=True,
                         edge_residual=EDGE_RES, act=nn.LeakyReLU(0.05))
    assert [i for _, i in g.cells["blk"]] == EDGES
    assert discrete(x).shape == (2, 4, 8, 8)
    assert discrete.fuse is not None and cell.fuse is not None


def test_chain_cell_known_answers():
    x = torch.randn(1, 2, 4, 4)
    assert torch.equal(ChainCell((("zero", 0),), RES_OPS, 2, residual=True)(x), x)
    two_skips = ChainCell((("skip", 0), ("skip", 1)), RES_OPS, 2, edge_residual=[False, True])
    assert torch.equal(two_skips(x), 2 * x)
    search = ChainSearchCell(["zero", "skip"], RES_OPS, 2, [0, 1])
    assert torch.allclose(search(x, torch.tensor([[0.0, 1.0], [0.5, 0.5]])), 0.5 * x)


def test_chain_cell_validation():
    with pytest.raises(ValueError, match="edge i"):
        ChainSearchCell(RES_PRIMS, RES_OPS, 2, [0, 2])
    with pytest.raises(ValueError, match="concat"):
        ChainCell((("skip", 0),), RES_OPS, 2, concat=[3])
    with pytest.raises(ValueError, match="weights"):
        ChainSearchCell(RES_PRIMS, RES_OPS, 2, [0])(torch.randn(1, 2, 4, 4), torch.ones(2, 3))
