"""The video deraining architecture the TMICS code releases (public test script: genotype
``video``, cell ``normal_2``), as plain data.

Facts from that code: ops are named ``<op>_<kernel>_<dilation>`` (``Residualblocks_5_1``,
``SPAattention_3``, ``ECAattention_3``, ``Residualblocks_3_1``); the cell (``Cell_Fusion``)
applies its ops one after the other, each on the previous output (the gene indices ``0, 1, 3, 4``
are not read), and adds the cell input to the last output; the network uses 96 channels, 8 cells
sharing that one genotype and 5-frame windows. Here, in the ``restoration.ops`` names, with a
chain where gene ``i`` reads node ``i``.
"""

from __future__ import annotations

__all__ = ["TMICS_OPS", "TMICS_CHANNELS", "TMICS_CELLS", "TMICS_FRAMES"]

TMICS_OPS: tuple[str, ...] = ("res_block_5x5", "spatial_attention", "eca_attention", "res_block_3x3")
TMICS_CHANNELS = 96
TMICS_CELLS = 8
TMICS_FRAMES = 5
