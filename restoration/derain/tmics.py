"""TMICS's video deraining networks (Mu et al., TIP 2021): the supernet ``TMICSSearch`` and the
discrete ``TMICSNet`` of a ``"tmics"`` genotype.

Macro structure (the paper's Fig. 2 and the released ``TMICS_Heavy.py`` / ``TMICS_Light.py``)::

    frames [B, T, 3, H, W], middle frame x = frames[:, T // 2]
    f      = interframe(frames)                    OFM / TGM (searched: softmax(beta)) -> [B, C, H, W]
    s      = streaks(f)                            auxiliary rain streaks M(K; .): convs, then learned
                                                   9x9 rain kernels K -> [B, 3, H, W] (rain_model only)
    dna    = x - head_d(cells_d(f + stem(s)))      Dominant Network Architecture (alphas_dna)
    cna    = x - head_c(cells_c(f))                Companionate Network Architecture (alphas_cna)
    a      = sigmoid(aas(dna, cna))                Attention-based Averaging Scheme, [B, 1, H, W]
    out    = a * dna + (1 - a) * cna               (= x - rain, rain = a*rain_d + (1 - a)*rain_c)

Each branch is ``cells`` chain cells of ``steps`` edges over ``restoration.ops`` (the derain cell:
``nas.chain`` with the cell input added, ``DerainSearch``'s machinery); the cells of a branch share
its alphas. Each branch predicts a rain layer subtracted from the middle frame (``DerainNet``'s
convention; the released code adds ``tanh(...)`` to it instead). ``forward`` returns ``{"out",
"rain", "dna", "cna", "weight", "streaks"}`` (``"streaks"`` only with ``rain_model``), all
``[B, 3, H, W]`` but ``weight`` ``[B, 1, H, W]``; the branch outputs are there for the paper's
per-branch losses L_D, L_C. The AAS weights are ``aas.*`` (``aas_parameters()``): the paper finds
lambda on its own level (``argmin_lambda L_D``).

Genotype space ``"tmics"``: chain cells ``"dna"`` and ``"cna"`` (argmax op per edge, as ``"derain"``)
and ``"interframe"`` ``[[name, 0]]`` with ``interframe_concat`` ``[1]``, name ``"ofm"`` or ``"tgm"``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from nas.chain import ChainCell, ChainSearchCell
from nas.genotype import Genotype, GenotypeError, derive_chain
from restoration.derain.genotype import TMICS_REFERENCE_PATH, chain_edges, genotype_ops, ops_to_genotype
from restoration.derain.interframe import (INTERFRAME_PRIMITIVES, InterframeMixture, check_window,
                                           make_interframe)
from restoration.ops import RESTORATION_OPS, RESTORATION_PRIMITIVES, conv

__all__ = ["SPACE", "CELL_NAMES", "ARCH_NAMES", "RELEASED_LIGHT_OPS", "AttentionAveraging", "RainStreaks",
           "TMICSNet", "TMICSParts", "TMICSSearch", "derive_tmics", "released_genotype", "tmics_genotype",
           "tmics_parts"]

SPACE = "tmics"
CELL_NAMES: tuple[str, ...] = ("dna", "cna", "interframe")
ARCH_NAMES: tuple[str, ...] = ("alphas_dna", "alphas_cna", "beta")
#: The released light model's cell (``video_light.normal_2``: Residualblocks_5_1, SPAattention_3,
#: DilConv_3_2, ECAattention_3) in ``restoration.ops`` names.
RELEASED_LIGHT_OPS: tuple[str, ...] = ("res_block_5x5", "spatial_attention", "dil_conv_3x3", "eca_attention")


# -- genotypes -------------------------------------------------------------------------------------
class TMICSParts(NamedTuple):
    """What a ``"tmics"`` genotype holds: the op names of both cells and the inter-frame module."""

    dna: list[str]
    cna: list[str]
    interframe: str


def tmics_genotype(dna: Sequence[str], cna: Sequence[str], interframe: str) -> Genotype:
    """The ``"tmics"`` genotype of two chains of op names and an inter-frame module name."""
    if interframe not in INTERFRAME_PRIMITIVES:
        raise GenotypeError(f"tmics genotype: interframe must be one of {list(INTERFRAME_PRIMITIVES)}, got {interframe!r}")
    d, c = ops_to_genotype(dna), ops_to_genotype(cna)
    return Genotype(SPACE, {"dna": d.cells["cell"], "cna": c.cells["cell"], "interframe": ((interframe, 0),)},
                    {"dna": d.concat["cell"], "cna": c.concat["cell"], "interframe": (1,)})


def tmics_parts(genotype: Genotype, source: str = "") -> TMICSParts:
    """Check a ``"tmics"`` genotype and return its parts; ``GenotypeError`` (one line, naming ``source``)
    for another space, other cells, a non-chain cell, unknown ops or an unknown inter-frame module."""
    where = f" {source}" if source else ""
    if genotype.space != SPACE:
        raise GenotypeError(f"genotype{where} is of space {genotype.space!r}; TMICS needs {SPACE!r}")
    if set(genotype.cells) != set(CELL_NAMES):
        raise GenotypeError(f"genotype{where} has cells {sorted(genotype.cells)}; TMICS needs {sorted(CELL_NAMES)}")
    ops = {}
    for name in ("dna", "cna"):  # each cell checked as a derain chain cell
        cell = Genotype("derain", {"cell": genotype.cells[name]}, {"cell": genotype.concat[name]})
        ops[name] = genotype_ops(cell, f"{source} cell {name!r}".strip())
    genes = genotype.cells["interframe"]
    if len(genes) != 1 or genes[0][1] != 0 or tuple(genotype.concat["interframe"]) != (1,):
        raise GenotypeError(f"genotype{where}: interframe must be [[name, 0]] with interframe_concat [1]")
    if genes[0][0] not in INTERFRAME_PRIMITIVES:
        raise GenotypeError(f"genotype{where}: unknown inter-frame module {genes[0][0]!r}; "
                            f"known: {', '.join(INTERFRAME_PRIMITIVES)}")
    return TMICSParts(ops["dna"], ops["cna"], genes[0][0])


def derive_tmics(alphas_dna: torch.Tensor, alphas_cna: torch.Tensor, beta: torch.Tensor,
                 primitives: Sequence[str] = RESTORATION_PRIMITIVES) -> Genotype:
    """Argmax op per edge of ``alphas_dna`` / ``alphas_cna`` ``[steps, len(primitives)]``, argmax module
    of ``beta`` ``[2]`` (order ``INTERFRAME_PRIMITIVES``)."""
    chains = derive_chain(SPACE, {"dna": alphas_dna, "cna": alphas_cna}, primitives,
                          {"dna": chain_edges(alphas_dna.shape[0]), "cna": chain_edges(alphas_cna.shape[0])})
    chosen = INTERFRAME_PRIMITIVES[int(beta.detach().argmax())]
    return tmics_genotype([op for op, _ in chains.cells["dna"]], [op for op, _ in chains.cells["cna"]], chosen)


def released_genotype(variant: str = "heavy") -> Genotype:
    """The released TMICS models as ``"tmics"`` genotypes.

    ``"heavy"`` (``TMICS_Heavy.py``, genotype ``video``): the shipped cell ``tmics_reference.json``
    (``res_block_5x5, spatial_attention, eca_attention, res_block_3x3``) in both branches and the
    temporal grouping module (``normal_1 = 'aligned modules'``: ``NNalignedModule``). ``"light"``
    (``TMICS_Light.py``, ``video_light``): ``RELEASED_LIGHT_OPS`` in both branches and optical flow
    (``normal_1 = 'optical flow'``: RAFT, warping). Both released networks use ONE cell genotype for
    all 8 cells (4 per branch), so DNA and CNA share it here too.
    """
    if variant == "heavy":
        ops = genotype_ops(Genotype.load(TMICS_REFERENCE_PATH), str(TMICS_REFERENCE_PATH))
        return tmics_genotype(ops, ops, "tgm")
    if variant == "light":
        return tmics_genotype(RELEASED_LIGHT_OPS, RELEASED_LIGHT_OPS, "ofm")
    raise ValueError(f"variant must be 'heavy' or 'light', got {variant!r}")


# -- modules ---------------------------------------------------------------------------------------
class RainStreaks(nn.Module):
    """Auxiliary rain streaks ``M(K; .)``: ``[B, C, H, W] -> [B, 3, H, W]``: conv 3x3 (C -> C/2),
    PReLU, conv 3x3 (-> ``maps``), then the learned rain kernels ``K`` (a 9x9 conv ``maps -> 3``, no
    bias; the released code: 32 maps, kernels initialised from RCDNet's ``init_kernel.mat``, here
    PyTorch's default initialisation)."""

    def __init__(self, C: int, maps: int = 8, kernel: int = 9) -> None:
        super().__init__()
        self.maps = nn.Sequential(conv(C, max(C // 2, 1), 3), nn.PReLU(), conv(max(C // 2, 1), maps, 3))
        self.kernels = nn.Conv2d(maps, 3, kernel, padding=kernel // 2, bias=False)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.kernels(self.maps(f))


class AttentionAveraging(nn.Module):
    """AAS weight: ``(dna, cna)`` ``[B, 3, H, W]`` each -> ``a = sigmoid(conv(PReLU(conv([dna, cna]))))``
    ``[B, 1, H, W]`` in ``[0, 1]``, a per-pixel weight of the DNA output. (The released ``SoftAttention``
    gives a per-channel weight ``[B, 3, 1, 1]`` from the pooled DNA output only, scaled by 0.1 (heavy)
    or 1e-5 (light).)"""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(6, hidden, 3), nn.PReLU(), conv(hidden, 1, 3))

    def forward(self, dna: torch.Tensor, cna: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.body(torch.cat([dna, cna], dim=1)))


class _TMICS(nn.Module):
    """The structure of the module docstring around an inter-frame module and two lists of cells."""

    def __init__(self, channels: int, frames: int, interframe: nn.Module, dna_cells: Sequence[nn.Module],
                 cna_cells: Sequence[nn.Module], rain_model: bool, aas_hidden: int) -> None:
        super().__init__()
        self.frames = frames
        self.interframe = interframe
        self.streaks = RainStreaks(channels) if rain_model else None
        self.streak_stem = conv(3, channels, 3) if rain_model else None
        self.dna_cells, self.cna_cells = nn.ModuleList(dna_cells), nn.ModuleList(cna_cells)
        self.dna_head, self.cna_head = conv(channels, 3, 3), conv(channels, 3, 3)
        self.aas = AttentionAveraging(aas_hidden)

    def _run(self, frames: torch.Tensor, mix: Optional[torch.Tensor], w_dna: Optional[torch.Tensor],
             w_cna: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
        check_window(frames, self.frames)
        x = frames[:, self.frames // 2]
        f = self.interframe(frames) if mix is None else self.interframe(frames, mix)
        out: dict[str, torch.Tensor] = {}
        g = f
        if self.streaks is not None:
            out["streaks"] = self.streaks(f)
            g = f + self.streak_stem(out["streaks"])
        for cell in self.dna_cells:
            g = cell(g) if w_dna is None else cell(g, w_dna)
        h = f
        for cell in self.cna_cells:
            h = cell(h) if w_cna is None else cell(h, w_cna)
        dna, cna = x - self.dna_head(g), x - self.cna_head(h)
        a = self.aas(dna, cna)
        merged = a * dna + (1 - a) * cna
        out.update(out=merged, rain=x - merged, dna=dna, cna=cna, weight=a)
        return out

    def aas_parameters(self) -> dict[str, nn.Parameter]:
        """The AAS weights (``aas.*``), part of ``weight_parameters()`` for a search; the paper's third level."""
        return {n: p for n, p in self.named_parameters() if n.startswith("aas.")}


class TMICSSearch(_TMICS):
    """Supernet: ``[B, T, 3, H, W] -> dict`` (module docstring), every cell edge a ``MixedOp``.

    Args:
        channels: feature width C. cells: cells per branch (released: 4). steps: edges per cell.
        frames: odd window T >= 3. primitives: cell op names from ``restoration.ops.RESTORATION_OPS``.
        rain_model: the auxiliary rain streaks into DNA. aas_hidden: width of the AAS head.
        alpha_std: ``alphas_dna``, ``alphas_cna``, ``beta`` start as ``alpha_std * randn``.
    """

    def __init__(self, channels: int = 16, cells: int = 1, steps: int = 4, frames: int = 5,
                 primitives: Sequence[str] = RESTORATION_PRIMITIVES, rain_model: bool = True,
                 aas_hidden: int = 8, alpha_std: float = 1e-3) -> None:
        self.primitives = list(primitives)

        def branch() -> list[nn.Module]:
            return [ChainSearchCell(self.primitives, RESTORATION_OPS, channels, chain_edges(steps), residual=True)
                    for _ in range(cells)]

        super().__init__(channels, frames, InterframeMixture(channels, frames), branch(), branch(),
                         rain_model, aas_hidden)
        self.alphas_dna = nn.Parameter(alpha_std * torch.randn(steps, len(self.primitives)))
        self.alphas_cna = nn.Parameter(alpha_std * torch.randn(steps, len(self.primitives)))
        self.beta = nn.Parameter(alpha_std * torch.randn(len(INTERFRAME_PRIMITIVES)))

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._run(frames, F.softmax(self.beta, dim=-1), F.softmax(self.alphas_dna, dim=-1),
                         F.softmax(self.alphas_cna, dim=-1))

    def arch_parameters(self) -> dict[str, nn.Parameter]:
        """``{"alphas_dna": [steps, n_ops], "alphas_cna": [steps, n_ops], "beta": [2]}``."""
        return {n: getattr(self, n) for n in ARCH_NAMES}

    def weight_parameters(self) -> dict[str, nn.Parameter]:
        """Every other parameter by its ``named_parameters()`` name (``aas.*`` included)."""
        return {n: p for n, p in self.named_parameters() if n not in ARCH_NAMES}

    def genotype(self) -> Genotype:
        """Argmax op per edge of each branch, argmax inter-frame module."""
        return derive_tmics(self.alphas_dna, self.alphas_cna, self.beta, self.primitives)


class TMICSNet(_TMICS):
    """Discrete network of a ``"tmics"`` genotype (e.g. ``released_genotype()``): the chosen inter-frame
    module alone, ``cells`` fixed cells per branch. ``[B, T, 3, H, W] -> dict`` (module docstring).

    Args: as ``TMICSSearch`` (released: channels 96, cells 4, frames 5).
    """

    def __init__(self, genotype: Genotype, channels: int = 16, cells: int = 1, frames: int = 5,
                 rain_model: bool = True, aas_hidden: int = 8) -> None:
        self.parts = tmics_parts(genotype)
        self.genotype_ = genotype

        def branch(name: str) -> list[nn.Module]:
            return [ChainCell(list(genotype.cells[name]), RESTORATION_OPS, channels, residual=True)
                    for _ in range(cells)]

        super().__init__(channels, frames, make_interframe(self.parts.interframe, channels, frames),
                         branch("dna"), branch("cna"), rain_model, aas_hidden)

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._run(frames, None, None, None)

    def genotype(self) -> Genotype:
        return self.genotype_
