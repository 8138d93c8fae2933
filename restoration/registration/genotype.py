"""AutoReg genotypes in this suite's ``Genotype`` form and the shipped reference.

Space ``"autoreg"``, cells ``"coarse"`` (bottleneck) and ``"fine"`` (full resolution), 3 genes each
``(op, node read)`` with nodes numbered as ``nas.chain`` (edge ``i`` reads node ``i``), concat
``[3]`` (the last node). The reference ``autoreg_reference.json`` holds AutoReg's published
``Search_ABIDE`` ops (``src_archi/genotypes.py``: ``normal_op`` = 6 ops; AutoReg applies ops 0-2
at the finer and 3-5 at the coarser level of its cell, so ``fine`` = ops 0-2, ``coarse`` = 3-5).
"""

from __future__ import annotations

from pathlib import Path

from nas.genotype import Genotype, GenotypeError
from restoration.registration.ops import AUTOREG_PRIMITIVES

__all__ = ["AUTOREG_REFERENCE_PATH", "CELL_NAMES", "CONCAT", "EDGE_INPUTS", "SEARCH_ABIDE_OPS", "SPACE",
           "check_genotype", "reference_genotype"]

SPACE = "autoreg"
CELL_NAMES: tuple[str, str] = ("coarse", "fine")
#: Node read by each of the 3 edges of a cell (node 0 = cell input), and the output node.
EDGE_INPUTS: tuple[int, ...] = (0, 1, 2)
CONCAT: tuple[int, ...] = (3,)

AUTOREG_REFERENCE_PATH: Path = Path(__file__).resolve().with_name("autoreg_reference.json")
#: AutoReg's ``Search_ABIDE.normal_op``.
SEARCH_ABIDE_OPS: tuple[str, ...] = ("sep_conv_3x3", "dil_conv_3x3", "sep_conv_5x5",
                                     "sep_conv_3x3", "dil_conv_3x3", "sep_conv_3x3")


def check_genotype(genotype: Genotype, source: str = "") -> None:
    """Raise ``GenotypeError`` (one line naming ``source``) unless it fits the AutoReg cells."""
    where = f" {source}" if source else ""
    if genotype.space != SPACE:
        raise GenotypeError(f"genotype{where} is of space {genotype.space!r}; registration needs {SPACE!r}")
    if set(genotype.cells) != set(CELL_NAMES):
        raise GenotypeError(f"genotype{where} has cells {sorted(genotype.cells)}; needs {list(CELL_NAMES)}")
    for name in CELL_NAMES:
        genes = genotype.cells[name]
        if tuple(i for _, i in genes) != EDGE_INPUTS or tuple(genotype.concat[name]) != CONCAT:
            raise GenotypeError(f"genotype{where} cell {name!r} must read nodes {list(EDGE_INPUTS)} and "
                                f"concat {list(CONCAT)}")
        unknown = sorted({op for op, _ in genes} - set(AUTOREG_PRIMITIVES))
        if unknown:
            raise GenotypeError(f"genotype{where} cell {name!r} uses unknown ops {unknown}; known: "
                                f"{', '.join(AUTOREG_PRIMITIVES)}")


def reference_genotype() -> Genotype:
    """AutoReg's ``Search_ABIDE`` as a ``Genotype`` (equal to the shipped JSON)."""
    fine, coarse = SEARCH_ABIDE_OPS[:3], SEARCH_ABIDE_OPS[3:]
    cells = {"coarse": tuple(zip(coarse, EDGE_INPUTS)), "fine": tuple(zip(fine, EDGE_INPUTS))}
    return Genotype(SPACE, cells, {name: CONCAT for name in CELL_NAMES})
