"""Low-light enhancement with RUAS (Liu et al., CVPR 2021): ops, cells, networks, losses.

The ``Task`` that plugs these into the commands is ``restoration.lowlight.task.LowLightTask``
(imported from there, not here, so that importing the model pieces stays light); genotype
conversion and the shipped reference genotype file (``RUAS_REFERENCE_PATH``) are in ``genotype``.
"""

from restoration.lowlight.cell import RUASCell, RUASSearchCell
from restoration.lowlight.genotype import RUAS_REFERENCE_PATH, genotype_to_ops, ops_to_genotype, reference_genotype
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
    "RUAS_REFERENCE_PATH",
    "genotype_to_ops",
    "iem_loss",
    "local_max_2x2",
    "nrm_loss",
    "ops_to_genotype",
    "reference_genotype",
    "ruas_losses",
]
