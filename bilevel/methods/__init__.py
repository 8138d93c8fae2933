"""The hypergradient methods, by name (a plain dict; add a method with one line)."""
from __future__ import annotations

from ..base import Method
from .aggregation import BDA, IAPTT
from .approximate import FDHG, IAS
from .barrier import BVFIM
from .envelope import MEHA
from .implicit import CG, Neumann
from .joint import BOME, F2SA, PBGD
from .meta import FOMAML, IMAML, MAML, MetaSGD, Reptile
from .one_step import Darts1, Darts2
from .stochastic import MASOBA, SABA, SOBA
from .stochastic_implicit import AmIGO, StocBiO
from .unrolled import FAD, RAD, TRAD

METHODS: dict[str, type[Method]] = {
    "darts1": Darts1,
    "darts2": Darts2,
    "rad": RAD,
    "trad": TRAD,
    "fad": FAD,
    "cg": CG,
    "neumann": Neumann,
    "bda": BDA,
    "iaptt": IAPTT,
    "ias": IAS,
    "fdhg": FDHG,
    "bvfim": BVFIM,
    "bome": BOME,
    "pbgd": PBGD,
    "meha": MEHA,
    "f2sa": F2SA,
    "soba": SOBA,
    "saba": SABA,
    "ma_soba": MASOBA,
    "stocbio": StocBiO,
    "amigo": AmIGO,
    "maml": MAML,
    "fomaml": FOMAML,
    "metasgd": MetaSGD,
    "reptile": Reptile,
    "imaml": IMAML,
}
