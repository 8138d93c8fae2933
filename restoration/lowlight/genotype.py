"""RUAS genotypes: the ``Genotype`` form of the two searched cells and the conversion to and from
the op lists of ``RUASNet`` / ``RUASSearch.genotype_lists()``.

Space ``"ruas"``, cells ``"iem"`` and ``"nrm"``, 7 genes each, numbered as ``nas.chain``: node 0
is the cell input and edge ``k`` produces node ``k + 1``. The distillation block of ``cell.py``
fixes which node each edge reads::

    edge:   e0  e1  e2  e3  e4  e5  e6          nodes: 1 = d1, 2 = r1, 3 = d2, 4 = r2,
    reads:  0   0   2   2   4   4   6                  5 = d3, 6 = r3, 7 = d4
    concat: (1, 3, 5, 7)   (the distilled features d1..d4 fused by the 1x1 conv)

so a gene is ``(op, node the edge reads)``; only the ops are searched (argmax per edge, RUAS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import torch

from nas.genotype import Genotype, GenotypeError, derive_chain
from restoration.lowlight.cell import NUM_EDGES, check_op_names
from restoration.lowlight.ops import RUAS_PRIMITIVES
from restoration.lowlight.reference import RUAS_IEM_OPS, RUAS_NRM_OPS

__all__ = [
    "CELL_NAMES",
    "EDGE_INPUTS",
    "CONCAT",
    "SPACE",
    "RUAS_REFERENCE_PATH",
    "derive_ruas",
    "genotype_to_ops",
    "ops_to_genotype",
    "reference_genotype",
]

SPACE = "ruas"
CELL_NAMES: tuple[str, str] = ("iem", "nrm")
#: Node read by each of the 7 edges of the distillation block (node 0 = cell input).
EDGE_INPUTS: tuple[int, ...] = (0, 0, 2, 2, 4, 4, 6)
#: Nodes fused at the cell output (d1, d2, d3, d4).
CONCAT: tuple[int, ...] = (1, 3, 5, 7)
#: The genotype RUAS reports (``reference.py``), as a JSON file for ``train.py --genotype``.
RUAS_REFERENCE_PATH: Path = Path(__file__).resolve().with_name("ruas_reference.json")

assert len(EDGE_INPUTS) == NUM_EDGES


def ops_to_genotype(iem_ops: Sequence[str], nrm_ops: Sequence[str]) -> Genotype:
    """``Genotype`` of space ``"ruas"`` from the 7 op names of each module."""
    cells = {}
    for name, ops in (("iem", iem_ops), ("nrm", nrm_ops)):
        ops = check_op_names(ops, name.upper())
        cells[name] = tuple(zip(ops, EDGE_INPUTS))
    return Genotype(SPACE, cells, {name: CONCAT for name in CELL_NAMES})


def genotype_to_ops(genotype: Genotype, source: str = "") -> dict[str, list[str]]:
    """The keyword arguments of ``RUASNet``: ``{"iem_ops": [7 names], "nrm_ops": [7 names]}``.

    Raises ``GenotypeError`` (naming ``source``) for another space, missing cells, unknown ops
    or genes/concat that do not describe the RUAS distillation block.
    """
    where = f" {source}" if source else ""
    if genotype.space != SPACE:
        raise GenotypeError(f"genotype{where} is of space {genotype.space!r}, the RUAS networks need {SPACE!r}")
    out: dict[str, list[str]] = {}
    for name in CELL_NAMES:
        if name not in genotype.cells:
            raise GenotypeError(f"genotype{where} lacks cell {name!r} (needs cells {list(CELL_NAMES)})")
        genes = genotype.cells[name]
        inputs = tuple(i for _, i in genes)
        if inputs != EDGE_INPUTS:
            raise GenotypeError(
                f"genotype{where} cell {name!r} reads nodes {list(inputs)}; the RUAS block has "
                f"{NUM_EDGES} edges reading {list(EDGE_INPUTS)}")
        if tuple(genotype.concat[name]) != CONCAT:
            raise GenotypeError(
                f"genotype{where} cell {name!r} concatenates {list(genotype.concat[name])}; "
                f"the RUAS block fuses {list(CONCAT)}")
        ops = [op for op, _ in genes]
        unknown = sorted(set(ops) - set(RUAS_PRIMITIVES))
        if unknown:
            raise GenotypeError(f"genotype{where} cell {name!r} uses unknown ops {unknown}; known: "
                                f"{', '.join(RUAS_PRIMITIVES)}")
        out[f"{name}_ops"] = ops
    return out


def derive_ruas(alphas: Mapping[str, torch.Tensor], primitives: Sequence[str] = RUAS_PRIMITIVES) -> Genotype:
    """Argmax op per edge of ``alphas = {"iem": [7, n_ops], "nrm": [7, n_ops]}`` (RUAS's rule)."""
    return derive_chain(SPACE, {k: alphas[k] for k in CELL_NAMES}, primitives, EDGE_INPUTS, CONCAT)


def reference_genotype() -> Genotype:
    """The RUAS paper's genotype (equal to ``Genotype.load(RUAS_REFERENCE_PATH)``)."""
    return ops_to_genotype(RUAS_IEM_OPS, RUAS_NRM_OPS)
