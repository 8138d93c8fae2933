"""What a ``.pt`` file holds, in a few words, for the messages that refuse it.

``unreadable(path)`` names a file ``torch.load(weights_only=True)`` refused: a TorchScript archive, a
pickle of Python objects (the first class it names, e.g. a whole model saved with
``torch.save(model)``), an archive or file of another kind. ``holds(obj)`` names an object that loaded
but is no checkpoint of the commands: a plain state dict of N tensors, a dict of other keys, a tensor.
Nothing in the file is executed: the pickle is read with ``pickletools``, never unpickled.
"""
from __future__ import annotations

import io
import os
import pickletools
import zipfile
from typing import Any

import torch

__all__ = ["holds", "unreadable"]

#: modules of the classes ``torch.load(weights_only=True)`` accepts (with ``torch.X``: storages, dtypes,
#: ``Size``): naming them says nothing about the refusal
_PLAIN = ("torch._utils.", "collections.", "builtins.", "_codecs.")


def _plain(name: str) -> bool:
    return name.startswith(_PLAIN) or (name.startswith("torch.") and name.count(".") == 1)


def holds(obj: Any) -> str:
    """``obj`` (what a file loaded to) in a few words: ``"a plain state dict of 12 tensors (first
    'conv.weight')"``, ``"a dict of keys 'model', 'epoch'"``, ``"a tensor of shape [3, 4]"``."""
    if isinstance(obj, torch.Tensor):
        return f"a tensor of shape {list(obj.shape)}"
    if isinstance(obj, dict):
        if not obj:
            return "an empty dict"
        keys = list(obj)
        tensors = sum(isinstance(v, torch.Tensor) for v in obj.values())
        if tensors == len(obj):
            return f"a plain state dict of {_count(tensors, 'tensor')} (first {keys[0]!r})"
        shown = ", ".join(repr(k) for k in keys[:4]) + (", ..." if len(keys) > 4 else "")
        return f"a dict of keys {shown}"
    if isinstance(obj, (list, tuple)):
        return f"a {type(obj).__name__} of {_count(len(obj), 'item')}"
    return f"a {type(obj).__name__}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def unreadable(path: str | os.PathLike[str]) -> str:
    """What the file at ``path``, which ``torch.load(weights_only=True)`` refused, is."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
                if any(n.endswith("constants.pkl") or "/code/" in n for n in names):
                    return "a TorchScript archive (torch.jit.save)"
                pickles = [n for n in names if n.endswith("data.pkl")]
                if not pickles:
                    return f"a zip archive of {_count(len(names), 'file')} without PyTorch data (an .npz?)"
                data = z.read(pickles[0])
        else:
            with open(path, "rb") as fh:
                data = fh.read(1 << 20)
            if not data.startswith(b"\x80"):
                return "a file of another format"
    except (OSError, zipfile.BadZipFile):
        return "a file that cannot be opened"
    cls = _first_class(data)
    if cls is None:
        return "a pickle that torch.load cannot read"
    return f"a pickle of Python objects (first {cls}; e.g. a whole model saved with torch.save(model))"


def _first_class(data: bytes) -> str | None:
    """The first class the pickle ``data`` names beyond those of tensors and plain containers."""
    strings: list[str] = []
    try:
        for op, arg, _ in pickletools.genops(io.BytesIO(data)):
            if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
                strings.append(str(arg))
            name = None
            if op.name == "GLOBAL":
                name = str(arg).replace(" ", ".")
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                name = f"{strings[-2]}.{strings[-1]}"
            if name and not _plain(name):
                return name
    except Exception:  # noqa: BLE001 - a damaged pickle: nothing to name
        return None
    return None
