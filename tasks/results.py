"""What a search yields: a genotype, learned hyper-parameters (named tensors), or both.

Hyper-parameters are saved as readable JSON, ``{"name": number or nested list}`` (the tensor's
values; its shape is the nesting), beside ``genotype.json`` in the search run folder.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nas.genotype import Genotype

__all__ = ["SearchResult", "save_hparams", "load_hparams", "HparamsError"]

GENOTYPE_FILE = "genotype.json"
HPARAMS_FILE = "hparams.json"


class HparamsError(ValueError):
    """An hparams.json that is missing, malformed or of the wrong names; the message says which."""


def hparams_to_json(hparams: dict[str, Tensor], learned: bool = True) -> str:
    """The JSON text of ``hparams``; with ``learned=False`` it records ``"_learned": false`` (the values
    are the start values: the search's upper level never stepped). Keys starting with ``_`` are notes,
    skipped by ``load_hparams``."""
    values: dict[str, Any] = {k: v.detach().cpu().double().tolist() for k, v in hparams.items()}
    if not learned:
        values["_learned"] = False
    return json.dumps(values, indent=2, sort_keys=True) + "\n"


def save_hparams(path: str | os.PathLike[str], hparams: dict[str, Tensor]) -> None:
    """Write ``hparams`` (name -> tensor) as JSON (not atomically: see ``commands.runs``)."""
    Path(path).write_text(hparams_to_json(hparams))


def read_json_object(path: str | os.PathLike[str], error: type[Exception], what: str, missing: str = "",
                     invalid: str = "", holds: str = "") -> dict[str, Any]:
    """The JSON object in the file ``path``, or a one-line ``error`` naming it as ``what``: that it does not
    exist (then ``missing``), is not JSON (then ``invalid``) or holds something else than an object ``holds``."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise error(f"{what} {p} does not exist{missing}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{what} {p} is not valid JSON ({e}){invalid}") from None
    if not isinstance(data, dict):
        raise error(f"{what} {p} must hold a JSON object{holds}")
    return data


def load_hparams(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read an hparams.json into float32 tensors (one-line ``HparamsError`` naming the file)."""
    p = Path(path)
    data = read_json_object(p, HparamsError, "hyper-parameter file", missing="; pass the hparams.json of a search run",
                            holds=" name -> number or list")
    out: dict[str, Tensor] = {}
    for k, v in data.items():
        if k.startswith("_"):  # a note such as "_learned", not a hyper-parameter
            continue
        try:
            out[k] = torch.tensor(v, dtype=torch.float32)
        except (TypeError, ValueError):
            raise HparamsError(f"hyper-parameter file {p}: {k!r} is not a number or a rectangular list of numbers")
    return out


@dataclass
class SearchResult:
    """A genotype (or None) and learned hyper-parameters (possibly empty)."""

    genotype: Genotype | None = None
    hparams: dict[str, Tensor] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain form stored in checkpoints."""
        return {"genotype": None if self.genotype is None else self.genotype.to_dict(),
                "hparams": {k: v.detach().cpu() for k, v in self.hparams.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchResult":
        g = d.get("genotype")
        return cls(None if g is None else Genotype.from_dict(g), dict(d.get("hparams") or {}))

    def describe(self) -> str:
        parts = []
        if self.genotype is not None:
            parts.append(f"genotype: {self.genotype.to_json()}")
        if self.hparams:
            parts.append("hparams: " + ", ".join(
                f"{k}={v.item():.4g}" if v.numel() == 1 else f"{k}{list(v.shape)}" for k, v in self.hparams.items()))
        return "; ".join(parts) or "(empty)"
