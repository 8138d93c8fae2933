"""Low-light enhancement with RUAS (Liu et al., CVPR 2021): ops, cells, networks, losses.

The ``Task`` that plugs these into the search loop lives beside them (added separately).
"""

from restoration.lowlight.cell import RUASCell, RUASSearchCell
from restoration.lowlight.losses import iem_loss, nrm_loss, ruas_losses
from restoration.lowlight.model import IEM, NRM, RUASNet, RUASSearch, local_max_2x2
from restoration.lowlight.ops import RUAS_OPS, RUAS_PRIMITIVES
from restoration.lowlight.reference import RUAS_GENOTYPE, RUAS_IEM_OPS, RUAS_NRM_OPS, RUAS_PARAM_COUNT

__all__ = [
    "IEM",
    "NRM",
    "RUASCell",
    "RUASNet",
    "RUASSearch",
    "RUASSearchCell",
    "RUAS_GENOTYPE",
    "RUAS_IEM_OPS",
    "RUAS_NRM_OPS",
    "RUAS_OPS",
    "RUAS_PARAM_COUNT",
    "RUAS_PRIMITIVES",
    "iem_loss",
    "local_max_2x2",
    "nrm_loss",
    "ruas_losses",
]
