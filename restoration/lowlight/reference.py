"""The architectures RUAS reports (public code ``KarelZhang/RUAS``, ``genotypes.py``: ``IEM`` and
``NRM``; edge ``k`` of the list is edge ``k`` of ``cell.py``), as plain data.

Built with ``RUASNet(**RUAS_GENOTYPE)`` and RUAS's sizes (3 IEM stages on 3 channels, 3 NRM cells
of 6 channels) the network has ``RUAS_PARAM_COUNT`` parameters: 1,161 in the IEM (387 per stage)
and 2,277 in the NRM, matching the paper's "about 3.4K".
"""

from __future__ import annotations

__all__ = ["RUAS_IEM_OPS", "RUAS_NRM_OPS", "RUAS_GENOTYPE", "RUAS_PARAM_COUNT"]

RUAS_IEM_OPS: tuple[str, ...] = (
    "skip_connect",
    "resconv_1x1",
    "resdilconv_3x3",
    "conv_3x3",
    "conv_3x3",
    "skip_connect",
    "conv_3x3",
)
RUAS_NRM_OPS: tuple[str, ...] = (
    "resconv_1x1",
    "resconv_1x1",
    "resdilconv_3x3",
    "skip_connect",
    "resconv_1x1",
    "resconv_1x1",
    "skip_connect",
)
#: Keyword arguments of ``RUASNet`` (and the shape of ``genotype_lists()``'s result).
RUAS_GENOTYPE: dict[str, list[str]] = {"iem_ops": list(RUAS_IEM_OPS), "nrm_ops": list(RUAS_NRM_OPS)}
RUAS_PARAM_COUNT = 3438
