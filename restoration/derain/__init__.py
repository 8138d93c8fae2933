"""Single-image and video deraining with searched chain cells (TMIC / TMICS line of work):
networks, genotypes, losses, data, a classical baseline and evaluation helpers; TMICS's collaborative
video network (``tmics``: DNA and CNA cells merged by attention averaging, ``interframe``: OFM and TGM)
and its three-level search (``triple``).

The ``Task`` that plugs these into the commands is built elsewhere; importing this package
loads only the model pieces.
"""

from restoration.derain.genotype import (TMICS_REFERENCE_PATH, derive_derain, genotype_ops, ops_to_genotype,
                                         reference_genotype)
from restoration.derain.losses import charbonnier, derain_loss, l1, ssim_loss
from restoration.derain.model import DerainNet, DerainSearch, network_input
from restoration.derain.tmics import TMICSNet, TMICSSearch, released_genotype

__all__ = [
    "DerainNet",
    "DerainSearch",
    "TMICSNet",
    "TMICSSearch",
    "TMICS_REFERENCE_PATH",
    "charbonnier",
    "derain_loss",
    "derive_derain",
    "genotype_ops",
    "l1",
    "network_input",
    "ops_to_genotype",
    "reference_genotype",
    "released_genotype",
    "ssim_loss",
]
