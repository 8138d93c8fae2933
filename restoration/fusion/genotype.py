"""Genotypes of the fusion space: the primitive names, the shipped reference genotype, derivation.

``FUSION_PRIMITIVES`` are the candidate ops of the fusion space, by their names in the shared
restoration op family (``restoration.ops.RESTORATION_OPS``, the op dict the task passes to the
networks): a dense block, a residual block, channel attention (ECA, TIMFusion's ``ECAattention``),
spatial attention, dilated and separable 3x3 convs and skip, after the op lists of HAF / TIMFusion.

The reference genotype (``FUSION_REFERENCE_PATH``, space ``"fusion"``, cells ``scale1``,
``scale2``, ``scale4`` for full, 1/2 and 1/4 resolution) is a hand-set default in the spirit of
those papers' searched cells (dense/residual blocks and dilation at full scale, attention at the
coarse scales); it is NOT a transcription of a released genotype of either paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from nas.genotype import Genotype
from nas.ops import OpFactory
from restoration.fusion.model import check_fusion_genotype

__all__ = ["FUSION_PRIMITIVES", "FUSION_REFERENCE_PATH", "reference_genotype", "load_fusion_genotype"]

FUSION_PRIMITIVES: tuple[str, ...] = (
    "dense_block_3x3", "res_block_3x3", "eca_attention", "spatial_attention",
    "dil_conv_3x3", "sep_conv_3x3", "skip_connect",
)
FUSION_REFERENCE_PATH: Path = Path(__file__).resolve().with_name("fusion_reference.json")


def load_fusion_genotype(path: str | Path, ops: Mapping[str, OpFactory] | None = None) -> Genotype:
    """Read a genotype JSON and check it fits the fusion space (and ``ops`` when given)."""
    genotype = Genotype.load(path)
    if ops is not None:
        check_fusion_genotype(genotype, ops, source=f"'{path}'")
    return genotype


def reference_genotype() -> Genotype:
    """The shipped reference genotype (see the module docstring)."""
    return Genotype.load(FUSION_REFERENCE_PATH)
