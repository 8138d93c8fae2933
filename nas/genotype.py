"""Genotypes: the discrete result of a search, its JSON form and the derivation rules.

A ``Genotype`` names its search space and holds, per cell, a tuple of genes ``(op, input)``
and the states concatenated at the output. Inputs are numbered as in DARTS: for DAG cells 0
and 1 are the cell inputs and 2.. the intermediate nodes; for chain cells 0 is the cell
input and ``i + 1`` the output of edge ``i``.

JSON form (never ``eval``)::

    {"space": "darts", "normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5],
     "reduce": [...], "reduce_concat": [...]}

Other spaces use their own cell names with the same pattern (``"iem"``, ``"iem_concat"``...).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F

from datasets.atomic import atomic_write_text
from nas.mixed_op import edge_softmax
from nas.ops import DARTS_PRIMITIVES

__all__ = [
    "Genotype",
    "GenotypeError",
    "DARTS_PRIMITIVES",
    "DARTS_V2",
    "derive_darts",
    "derive_chain",
]

_CONCAT = "_concat"


class GenotypeError(ValueError):
    """A genotype that cannot be read or does not fit; the message is one line."""


def _fail(source: str, what: str) -> GenotypeError:
    return GenotypeError(f"genotype {source}: {' '.join(str(what).split())}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class Genotype:
    """The discrete architecture: ``cells[name]`` genes ``((op, input), ...)``, ``concat[name]``.

    Cell genes are also reachable as attributes, DARTS style: ``g.normal``, ``g.normal_concat``.
    """

    space: str
    cells: Mapping[str, tuple[tuple[str, int], ...]]
    concat: Mapping[str, tuple[int, ...]]

    def __post_init__(self) -> None:
        cells = {str(k): tuple((str(op), int(i)) for op, i in v) for k, v in self.cells.items()}
        concat = {str(k): tuple(int(j) for j in v) for k, v in self.concat.items()}
        if set(cells) != set(concat):
            raise GenotypeError(
                f"genotype: cells {sorted(cells)} and concat {sorted(concat)} name different cells"
            )
        for name in cells:
            if name == "space" or name.endswith(_CONCAT):
                raise GenotypeError(f"genotype: {name!r} is not allowed as a cell name")
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "concat", {k: concat[k] for k in cells})

    def __hash__(self) -> int:
        return hash((self.space, tuple(sorted(self.cells.items())), tuple(sorted(self.concat.items()))))

    def __getattr__(self, name: str) -> Any:
        cells = self.__dict__.get("cells")
        concat = self.__dict__.get("concat")
        if cells is not None and concat is not None:
            if name in cells:
                return cells[name]
            if name.endswith(_CONCAT) and name[: -len(_CONCAT)] in concat:
                return concat[name[: -len(_CONCAT)]]
        raise AttributeError(name)

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict: ``space``, then per cell ``name`` and ``name_concat``."""
        out: dict[str, Any] = {"space": self.space}
        for name, genes in self.cells.items():
            out[name] = [[op, i] for op, i in genes]
            out[name + _CONCAT] = list(self.concat[name])
        return out

    def to_json(self) -> str:
        """JSON text, one key per line."""
        items = [f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in self.to_dict().items()]
        return "{\n" + ",\n".join(items) + "\n}\n"

    @classmethod
    def from_dict(cls, data: Any, primitives: Sequence[str] | None = None, cell_names: Sequence[str] | None = None,
                  source: str = "<string>") -> Genotype:
        """Strictly parse the dict form; ``GenotypeError`` naming ``source`` on any fault.

        ``primitives``: if given, every op must be one of them. ``cell_names``: if given, the
        genotype must hold exactly these cells.
        """
        if not isinstance(data, dict):
            raise _fail(source, f"expected a JSON object, got {type(data).__name__}")
        space = data.get("space")
        if "space" not in data:
            raise _fail(source, "missing key 'space'")
        if not isinstance(space, str) or not space:
            raise _fail(source, "'space' must be a non-empty string")
        names = [k for k in data if k != "space" and not k.endswith(_CONCAT)]
        if not names:
            raise _fail(source, "no cells (expected keys like 'normal' and 'normal_concat')")
        for key in data:
            if key.endswith(_CONCAT) and key[: -len(_CONCAT)] not in data:
                raise _fail(source, f"key {key!r} has no cell {key[: -len(_CONCAT)]!r}")
        for name in names:
            if name + _CONCAT not in data:
                raise _fail(source, f"missing key {name + _CONCAT!r}")
        if cell_names is not None and set(names) != set(cell_names):
            raise _fail(source, f"cells {sorted(names)} do not fit the expected {sorted(cell_names)}")
        known = None if primitives is None else set(primitives)
        cells: dict[str, tuple[tuple[str, int], ...]] = {}
        concat: dict[str, tuple[int, ...]] = {}
        for name in names:
            genes = data[name]
            if not isinstance(genes, list) or not genes:
                raise _fail(source, f"cell {name!r} must be a non-empty list of [op, input] pairs")
            parsed = []
            for k, gene in enumerate(genes):
                ok = isinstance(gene, list) and len(gene) == 2 and isinstance(gene[0], str)
                if not ok or not _is_int(gene[1]) or gene[1] < 0:
                    raise _fail(source, f"cell {name!r} gene {k} must be [op, input >= 0], got {gene!r}")
                if known is not None and gene[0] not in known:
                    raise _fail(
                        source, f"unknown op {gene[0]!r} in cell {name!r} (known: {', '.join(primitives)})"
                    )
                parsed.append((gene[0], gene[1]))
            idx = data[name + _CONCAT]
            if not isinstance(idx, list) or not idx or not all(_is_int(j) and j >= 0 for j in idx):
                raise _fail(source, f"{name + _CONCAT!r} must be a non-empty list of node indices")
            cells[name], concat[name] = tuple(parsed), tuple(idx)
        return cls(space, cells, concat)

    @classmethod
    def from_json(cls, text: str, primitives: Sequence[str] | None = None, cell_names: Sequence[str] | None = None,
                  source: str = "<string>") -> Genotype:
        """Parse JSON text strictly (duplicate keys rejected); see ``from_dict``."""

        def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
            keys = [k for k, _ in pairs]
            dup = sorted({k for k in keys if keys.count(k) > 1})
            if dup:
                raise _fail(source, f"duplicate key(s) {dup}")
            return dict(pairs)

        try:
            data = json.loads(text, object_pairs_hook=no_duplicates)
        except json.JSONDecodeError as exc:
            raise _fail(source, f"malformed JSON ({exc})") from None
        return cls.from_dict(data, primitives, cell_names, source)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``to_json()`` atomically (temp file in the same folder, then ``os.replace``)."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        primitives: Sequence[str] | None = None,
        cell_names: Sequence[str] | None = None,
    ) -> Genotype:
        """Read a genotype file; any fault is a ``GenotypeError`` naming the file."""
        source = f"file {os.fspath(path)!r}"
        wanted = "pass the genotype.json written by search.py (or a shipped reference genotype)"
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            raise GenotypeError(f"genotype {source} does not exist; {wanted}") from None
        except IsADirectoryError:
            raise GenotypeError(f"genotype {source} is a folder; {wanted}, or --from FOLDER for a run folder") from None
        except UnicodeDecodeError:
            beside = os.path.join(os.path.dirname(os.fspath(path)), "genotype.json")
            if os.path.isfile(beside):
                wanted = f"pass {beside}, the genotype beside it"
            raise GenotypeError(f"genotype {source} is {_binary_kind(path)}, not a genotype JSON text; {wanted}"
                                ) from None
        except OSError as exc:
            raise _fail(source, f"cannot read ({exc.__class__.__name__}: {exc})") from None
        return cls.from_json(text, primitives, cell_names, source)


#: leading bytes of binary files a genotype may be confused with -> what they are
_MAGIC = ((b"\x89PNG", "a PNG image (genotype.png is the picture of genotype.json)"), (b"\xff\xd8", "a JPEG image"),
          (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a zip archive (a .pt checkpoint or weights file?)"),
          (b"\x80", "a pickle (a .pt checkpoint or weights file?)"))


def _binary_kind(path: str | os.PathLike[str]) -> str:
    """What the binary file at ``path`` is, in a few words, from its first bytes."""
    with open(path, "rb") as fh:
        head = fh.read(8)
    return next((kind for magic, kind in _MAGIC if head.startswith(magic)), "a binary file")


DARTS_V2 = Genotype(
    space="darts",
    cells={
        "normal": (
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 0), ("dil_conv_3x3", 2),
        ),
        "reduce": (
            ("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2), ("skip_connect", 2), ("max_pool_3x3", 1),
        ),
    },
    concat={"normal": (2, 3, 4, 5), "reduce": (2, 3, 4, 5)},
)
"""The genotype DARTS published (second-order search, CIFAR-10: 2.76% error, 3.3M params)."""


def _parse_darts(W: list[list[float]], primitives: Sequence[str], steps: int) -> tuple:
    """DARTS's ``_parse``: per node the two inputs whose best non-``none`` op weight is largest."""
    skip = primitives.index("none") if "none" in primitives else -1
    genes, start = [], 0
    for i in range(steps):
        rows = W[start : start + 2 + i]
        best = []
        for row in rows:
            k_best = None
            for k, w in enumerate(row):
                if k != skip and (k_best is None or w > row[k_best]):
                    k_best = k
            best.append(k_best)
        # sorted() is stable: ties keep the lower input first, as in DARTS.
        chosen = sorted(range(2 + i), key=lambda j: -rows[j][best[j]])[:2]
        genes.extend((primitives[best[j]], j) for j in chosen)
        start += 2 + i
    return tuple(genes)


def derive_darts(
    alphas_normal: torch.Tensor,
    alphas_reduce: torch.Tensor,
    primitives: Sequence[str] = DARTS_PRIMITIVES,
    steps: int = 4,
    multiplier: int = 4,
    betas_normal: torch.Tensor | None = None,
    betas_reduce: torch.Tensor | None = None,
    space: str = "darts",
) -> Genotype:
    """DARTS derivation from raw alphas ``[E, len(primitives)]`` (``E = 14`` for 4 steps).

    Rows are softmaxed; with PC-DARTS edge logits ``betas_*`` ``[E]`` each row is scaled by
    its per-node edge weight. Per node: keep the two incoming edges whose strongest
    non-``none`` op weight is largest, with that op. Concat: the last ``multiplier`` states.
    """
    primitives = list(primitives)
    genes = {}
    for name, alphas, betas in (
        ("normal", alphas_normal, betas_normal),
        ("reduce", alphas_reduce, betas_reduce),
    ):
        expected = (sum(2 + i for i in range(steps)), len(primitives))
        if tuple(alphas.shape) != expected:
            raise ValueError(f"alphas_{name} must have shape {expected}, got {tuple(alphas.shape)}")
        with torch.no_grad():
            W = F.softmax(alphas.detach().double(), dim=-1)
            if betas is not None:
                W = W * edge_softmax(betas.detach().double(), steps)[:, None]
        genes[name] = _parse_darts(W.cpu().tolist(), primitives, steps)
    concat = tuple(range(2 + steps - multiplier, 2 + steps))
    return Genotype(space, genes, {"normal": concat, "reduce": concat})


def derive_chain(
    space: str,
    alphas: Mapping[str, torch.Tensor],
    primitives: Sequence[str],
    edges: Sequence[int] | Mapping[str, Sequence[int]],
    concat: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
) -> Genotype:
    """Chain derivation: per edge the argmax op (``none`` excluded when present).

    ``alphas[cell]`` ``[len(edges), len(primitives)]``; ``edges`` (input node of each edge)
    and ``concat`` (default: the last node) are one list for every cell or a dict per cell.
    """
    primitives = list(primitives)
    skip = primitives.index("none") if "none" in primitives else -1
    cells, concats = {}, {}
    for name, a in alphas.items():
        cell_edges = list(edges[name] if isinstance(edges, Mapping) else edges)
        if tuple(a.shape) != (len(cell_edges), len(primitives)):
            raise ValueError(
                f"alphas[{name!r}] must have shape {(len(cell_edges), len(primitives))}, got {tuple(a.shape)}"
            )
        scores = a.detach().double().clone()
        if skip >= 0:
            scores[:, skip] = float("-inf")
        best = scores.argmax(dim=-1).tolist()
        cells[name] = tuple((primitives[k], src) for k, src in zip(best, cell_edges))
        if concat is None:
            concats[name] = (len(cell_edges),)
        else:
            concats[name] = tuple(concat[name] if isinstance(concat, Mapping) else concat)
    return Genotype(space, cells, concats)
