"""RUAS's released weight files (``KarelZhang/RUAS``: ``ckpt/{lol,upe,dark}.pt``, ``model/denoise.pt``),
recognised by their names and shapes and mapped onto ``RUASNet``.

The files are state dicts of RUAS's own modules:

* ``ckpt/*.pt`` — its whole ``Network``: ``enhance_net.iems.<stage>.cell.<edge>`` (the IEM, 3 stages on
  3 channels) and ``denoise_net.{stem, nrms.<cell>.<edge>, activate.0}`` (the NRM, 3 cells of 6
  channels); 76 tensors. RUAS's ``test.py`` publishes the IEM + NRM output for ``lol`` and the IEM
  output alone (``u``) for ``upe`` (MIT-Adobe FiveK) and ``dark`` (DarkFace).
* ``model/denoise.pt`` — its ``DenoiseNetwork`` alone (the same NRM names without ``denoise_net.``),
  the NRM RUAS's ``train.py`` starts its retraining from. With no IEM it cannot enhance an image;
  it initialises the NRM of ``train.py --init``.

Inside a cell RUAS names the 7 edges ``c1_d, c1_r, c2_d, c2_r, c3_d, c3_r, c4`` (edges 0..6 of
``cell.py``, same order) and the fusing 1x1 conv ``c5``; a conv op keeps its conv in ``.op``.
Only kernels are stored, not which op each edge is (a 3x3 kernel may be ``conv_3x3``,
``dilconv_3x3`` or a residual one), so the weights are mapped onto the genotype of RUAS's
``genotypes.py`` (``ruas_reference.json``) after checking that the edges without weights are
exactly its ``skip_connect`` edges and every kernel size is its op's.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Mapping

from torch import Tensor

from restoration.lowlight.genotype import reference_genotype
from restoration.lowlight.model import RUASNet
from restoration.lowlight.reference import RUAS_IEM_OPS, RUAS_NRM_OPS
from tasks.released import ReleasedWeights
from tasks.results import SearchResult

__all__ = ["KNOWN_FILES", "RUAS_EDGE_NAMES", "map_ruas_state", "ruas_released"]

#: RUAS's attribute name of each edge of the distillation block, in ``cell.py``'s edge order.
RUAS_EDGE_NAMES: tuple[str, ...] = ("c1_d", "c1_r", "c2_d", "c2_r", "c3_d", "c3_r", "c4")
#: SHA-256 of the files RUAS released (at commit f621bb1) -> the name RUAS gives them.
KNOWN_FILES: dict[str, str] = {
    "f45a881a9b836fff4a3172481f28c9eb4d91bc4df54ec064092f39ce40abcdcd": "lol",
    "2252d3d909e346b547232c7015f034685aac75181171c6caf90ee12d87ca36c1": "upe",
    "59083ec4dd4a2b7926c182a4add1519b9646a3aca6c39cfdb7d496fe885828e4": "dark",
    "15b64a9cb813ac1fef7b741a99ca7c6a7cc003525814ab3c624b82b0b5774dea": "denoise",
}
#: The output RUAS's test.py publishes for each of its whole-network files.
OUTPUT_OF = {"lol": "out", "upe": "u", "dark": "u"}
DATASET_OF = {"lol": "LOL", "upe": "MIT-Adobe FiveK", "dark": "DarkFace"}

_EDGE = "|".join(RUAS_EDGE_NAMES)
_IEM = re.compile(rf"^enhance_net\.iems\.(\d+)\.cell\.(?:({_EDGE})\.op|(c5))\.(weight|bias)$")
_NRM_CELL = re.compile(rf"^nrms\.(\d+)\.(?:({_EDGE})\.op|(c5))\.(weight|bias)$")
_NRM_ENDS = {"stem": "stem", "activate.0": "head"}
_NRM_END = re.compile(r"^(stem|activate\.0)\.(weight|bias)$")


def _our_edge(module: str, index: str, edge: str | None, ops: tuple[str, ...], param: str) -> str:
    """Our name of RUAS's ``<edge>.op.<param>`` (or ``c5.<param>`` when ``edge`` is None)."""
    if edge is None:
        return f"{module}.cells.{index}.fuse.{param}"
    k = RUAS_EDGE_NAMES.index(edge)
    inner = "conv." if ops[k].startswith("res") else ""
    return f"{module}.cells.{index}.edges.{k}.{inner}{param}"


def map_ruas_state(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], set[str]] | None:
    """RUAS names -> ours: ``(mapped state, parts present ⊆ {"iem", "nrm"})``, or ``None`` when a name
    is not one of RUAS's (then the file is not RUAS's). Shapes are not checked here."""
    out: dict[str, Tensor] = {}
    parts: set[str] = set()
    for name, tensor in state.items():
        if not isinstance(name, str) or not isinstance(tensor, Tensor):
            return None
        m = _IEM.match(name)
        if m:
            out[_our_edge("iem", m[1], m[2], RUAS_IEM_OPS, m[4])] = tensor
            parts.add("iem")
            continue
        nrm = name[len("denoise_net."):] if name.startswith("denoise_net.") else name
        m = _NRM_CELL.match(nrm)
        e = _NRM_END.match(nrm)
        if m:
            out[_our_edge("nrm", m[1], m[2], RUAS_NRM_OPS, m[4])] = tensor
        elif e:
            out[f"nrm.{_NRM_ENDS[e[1]]}.{e[2]}"] = tensor
        else:
            return None
        parts.add("nrm")
    if not out:
        return None
    prefixed = {n.startswith("denoise_net.") for n in state if not n.startswith("enhance_net.")}
    if len(prefixed) > 1 or ("iem" in parts and prefixed == {False}):
        return None  # a mixture of the two files' naming is neither of them
    return out, parts


def _count(state: Mapping[str, Tensor], pattern: str) -> int:
    found = {int(m[1]) for n in state for m in [re.match(pattern, n)] if m}
    return max(found) + 1 if found else 0


def _sizes(mapped: Mapping[str, Tensor], parts: set[str]) -> dict[str, int]:
    """``iem_stages``, ``nrm_cells``, ``nrm_channels`` read off the mapped names and shapes."""
    sizes: dict[str, int] = {}
    if "iem" in parts:
        sizes["iem_stages"] = _count(mapped, r"^iem\.cells\.(\d+)\.")
    if "nrm" in parts:
        sizes["nrm_cells"] = _count(mapped, r"^nrm\.cells\.(\d+)\.")
        stem = mapped.get("nrm.stem.weight")
        if stem is not None and stem.ndim == 4:
            sizes["nrm_channels"] = int(stem.shape[0])
    return sizes


def _misfit(mapped: Mapping[str, Tensor], net: RUASNet, parts: set[str]) -> str | None:
    """Why ``mapped`` does not fill the ``parts`` of ``net`` name for name and shape, or None."""
    ours = {k: v for k, v in net.state_dict().items() if k.split(".")[0] in parts}
    missing = sorted(set(ours) - set(mapped))
    extra = sorted(set(mapped) - set(ours))
    if missing:
        return f"no weights for {missing[0]} (its op is not skip_connect in the genotype) and {len(missing) - 1} more"
    if extra:
        return f"weights for {extra[0]}, an edge the genotype has as skip_connect (no weights)"
    for k, v in mapped.items():
        if tuple(v.shape) != tuple(ours[k].shape):
            return f"{k} is {tuple(v.shape)}, the network's is {tuple(ours[k].shape)}"
    return None


def _file_name(source: str) -> str:
    """RUAS's name of the file at ``source``: by content when it is one of the released files, else
    the file's stem."""
    path = Path(source)
    if path.is_file():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest in KNOWN_FILES:
            return KNOWN_FILES[digest]
    return path.stem


def ruas_released(state: Mapping[str, Tensor], source: str = "") -> ReleasedWeights | None:
    """``state`` (a RUAS released file read from ``source``) mapped onto ``RUASNet`` of the reference
    genotype, ``None`` when its names are not RUAS's, ``ValueError`` (one line) when they are but the
    weights do not fit that genotype."""
    found = map_ruas_state(state)
    if found is None:
        return None
    mapped, parts = found
    sizes = _sizes(mapped, parts)
    net = RUASNet(RUAS_IEM_OPS, RUAS_NRM_OPS, **sizes)
    why = _misfit(mapped, net, parts)
    if why is not None:
        raise ValueError(f"{source} holds RUAS-named weights that do not fit the ruas_reference genotype ({why}); "
                         "they come from another RUAS genotype, which the file does not record")
    name = _file_name(source)
    mapped = {k: v.detach().float().cpu().clone() for k, v in mapped.items()}
    result = SearchResult(genotype=reference_genotype())
    onto = "mapped onto the ruas_reference genotype"
    if parts == {"nrm"}:
        return ReleasedWeights(
            description=(f"RUAS released denoising weights (NRM only: {sizes['nrm_cells']} cells of "
                         f"{sizes['nrm_channels']} channels, no IEM), {onto}; the IEM starts from scratch"),
            result=result, settings=sizes, state_dict=mapped, complete=False,
            not_evaluable=(f"{source} holds RUAS's NRM (its denoising module) only, no IEM: it cannot enhance a "
                           "low-light image; it is the NRM RUAS's train.py starts from: pass it to train.py --init"))
    if parts == {"iem"}:
        return ReleasedWeights(
            description=f"RUAS released weights (IEM {sizes['iem_stages']} stages only, no NRM), {onto}",
            result=result, settings=sizes, state_dict=mapped, complete=False,
            not_evaluable=(f"{source} holds RUAS's IEM only, no NRM: evaluate the IEM output with a whole "
                           "RUAS file (ckpt/*.pt), or pass it to train.py --init"))
    output = OUTPUT_OF.get(name, "out")
    used = ("output u (IEM only), as RUAS's test.py publishes for it" if output == "u"
            else "output out (IEM + NRM)" + (", as RUAS's test.py publishes for it" if name in OUTPUT_OF else ""))
    trained = f" {name}.pt ({DATASET_OF[name]})" if name in DATASET_OF else ""
    return ReleasedWeights(
        description=(f"RUAS released weights{trained} (IEM {sizes['iem_stages']} stages + NRM {sizes['nrm_cells']} "
                     f"cells of {sizes['nrm_channels']} channels), {onto}; {used}"),
        result=result, settings={**sizes, "output": output}, state_dict=mapped)
