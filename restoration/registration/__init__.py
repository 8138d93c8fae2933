"""Deformable registration: warping (2D/3D), scaling and squaring, the U-Net with optional AutoReg
cells, losses with learnable log-weights, metrics, and evaluation helpers.

Tensor conventions (``warp.py``): displacement fields ``[N, dims, *S]`` in pixels/voxels, channel
``i`` along spatial axis ``i``; ``warped(p) = moving(p + u(p))``. The ``Task`` that plugs these into
the commands is assembled elsewhere; importing this package stays light.
"""

from restoration.registration.evaluate import register, save_outputs
from restoration.registration.genotype import AUTOREG_REFERENCE_PATH, check_genotype, reference_genotype
from restoration.registration.jacobian import jacobian_determinant, jacobian_matrix
from restoration.registration.losses import (initial_log_weights, jacobian_penalty, local_ncc, lower_loss, mse,
                                             one_hot, readable_weights, smoothness, soft_dice, upper_loss)
from restoration.registration.metrics import (METRIC_DIRECTIONS, dice_per_label, folding_pct, jacobian_std,
                                              mean_dice, registration_metrics)
from restoration.registration.model import RegNet, RegSearchNet, RegUNet, count_macs, count_parameters
from restoration.registration.ops import AUTOREG_PRIMITIVES, autoreg_ops
from restoration.registration.warp import SpatialTransformer, VecInt, compose, identity_grid, integrate_velocity, warp

__all__ = [
    "AUTOREG_PRIMITIVES", "AUTOREG_REFERENCE_PATH", "METRIC_DIRECTIONS", "RegNet", "RegSearchNet", "RegUNet",
    "SpatialTransformer", "VecInt", "autoreg_ops", "check_genotype", "compose", "count_macs",
    "count_parameters", "dice_per_label", "folding_pct", "identity_grid", "initial_log_weights",
    "integrate_velocity", "jacobian_determinant", "jacobian_matrix", "jacobian_penalty", "jacobian_std",
    "local_ncc", "lower_loss", "mean_dice", "mse", "one_hot", "readable_weights", "reference_genotype",
    "register", "registration_metrics", "save_outputs", "smoothness", "soft_dice", "upper_loss", "warp",
]
