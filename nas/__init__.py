"""Differentiable architecture search: ops, MixedOp, cells, genotypes, DARTS networks.

Nothing runs at import time beyond defining classes; matplotlib is imported only when a
genotype is drawn.
"""

from nas.cells import Cell, SearchCell, drop_path, num_dag_edges
from nas.chain import ChainCell, ChainSearchCell
from nas.genotype import DARTS_V2, Genotype, GenotypeError, derive_chain, derive_darts
from nas.mixed_op import MixedOp, channel_shuffle, edge_softmax
from nas.network import AuxiliaryHeadCIFAR, DartsNetwork, count_parameters
from nas.ops import DARTS_PRIMITIVES, OPS, FactorizedReduce, OpFactory, ReLUConvBN
from nas.plot import plot_genotype
from nas.supernet import DartsSupernet

__all__ = [
    "OPS",
    "OpFactory",
    "DARTS_PRIMITIVES",
    "ReLUConvBN",
    "FactorizedReduce",
    "MixedOp",
    "channel_shuffle",
    "edge_softmax",
    "SearchCell",
    "Cell",
    "ChainSearchCell",
    "ChainCell",
    "drop_path",
    "num_dag_edges",
    "Genotype",
    "GenotypeError",
    "DARTS_V2",
    "derive_darts",
    "derive_chain",
    "plot_genotype",
    "DartsSupernet",
    "DartsNetwork",
    "AuxiliaryHeadCIFAR",
    "count_parameters",
]
