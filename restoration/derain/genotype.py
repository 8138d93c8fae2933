"""Deraining genotypes: one chain cell ``"cell"`` shared by every cell of the network.

Space ``"derain"``; genes ``(op, i)`` numbered as ``nas.chain``: node 0 is the cell input and
edge ``i`` reads node ``i`` (a plain chain) and produces node ``i + 1``; the concat is the last
node (the cell adds its input to it). Only the ops are searched: argmax per edge
(``nas.genotype.derive_chain``). The reference genotype (``reference.py``) ships as
``tmics_reference.json`` for ``train.py --genotype``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from nas.genotype import Genotype, GenotypeError, derive_chain
from restoration.derain.reference import TMICS_OPS
from restoration.ops import RESTORATION_OPS, RESTORATION_PRIMITIVES

__all__ = ["SPACE", "CELL_NAMES", "TMICS_REFERENCE_PATH", "chain_edges", "derive_derain",
           "genotype_ops", "ops_to_genotype", "reference_genotype"]

SPACE = "derain"
CELL_NAMES: tuple[str, ...] = ("cell",)
TMICS_REFERENCE_PATH: Path = Path(__file__).resolve().with_name("tmics_reference.json")


def chain_edges(steps: int) -> list[int]:
    """Edge ``i`` reads node ``i``: ``[0, 1, ..., steps - 1]``."""
    return list(range(steps))


def ops_to_genotype(ops: Sequence[str]) -> Genotype:
    """The ``"derain"`` genotype of a chain of op names."""
    ops = list(ops)
    unknown = sorted(set(ops) - set(RESTORATION_OPS))
    if not ops or unknown:
        raise GenotypeError(f"derain genotype needs op names from {RESTORATION_PRIMITIVES}, got {ops}")
    return Genotype(SPACE, {"cell": tuple(zip(ops, chain_edges(len(ops))))}, {"cell": (len(ops),)})


def genotype_ops(genotype: Genotype, source: str = "") -> list[str]:
    """The op names of a ``"derain"`` genotype; ``GenotypeError`` (one line, naming ``source``)
    for another space, other cells, non-chain inputs, another concat or unknown ops."""
    where = f" {source}" if source else ""
    if genotype.space != SPACE:
        raise GenotypeError(f"genotype{where} is of space {genotype.space!r}; deraining needs {SPACE!r}")
    if set(genotype.cells) != set(CELL_NAMES):
        raise GenotypeError(f"genotype{where} has cells {sorted(genotype.cells)}; deraining needs {list(CELL_NAMES)}")
    genes = genotype.cells["cell"]
    if [i for _, i in genes] != chain_edges(len(genes)):
        raise GenotypeError(f"genotype{where}: gene i must read node i (a chain), got {[i for _, i in genes]}")
    if tuple(genotype.concat["cell"]) != (len(genes),):
        raise GenotypeError(f"genotype{where}: cell_concat must be [{len(genes)}] (the last node)")
    ops = [op for op, _ in genes]
    unknown = sorted(set(ops) - set(RESTORATION_OPS))
    if unknown:
        raise GenotypeError(f"genotype{where} uses unknown ops {unknown}; known: {', '.join(RESTORATION_PRIMITIVES)}")
    return ops


def derive_derain(alphas: torch.Tensor, primitives: Sequence[str] = RESTORATION_PRIMITIVES) -> Genotype:
    """Argmax op per edge of ``alphas`` ``[steps, len(primitives)]``."""
    steps = alphas.shape[0]
    return derive_chain(SPACE, {"cell": alphas}, primitives, chain_edges(steps), (steps,))


def reference_genotype() -> Genotype:
    """The released TMICS video cell (equal to ``Genotype.load(TMICS_REFERENCE_PATH)``)."""
    return ops_to_genotype(TMICS_OPS)
