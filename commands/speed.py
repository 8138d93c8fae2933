"""``--amp``, ``--channels-last``, ``--compile``: the flags, and ``Runner``, the network as the tasks call it.

``Runner`` wraps a task's network for ``train.py`` and ``evaluate.py``: 4D (5D) floating inputs are
put in channels-last (channels-last-3d) memory format, the forward pass runs under the run's
``Precision`` (autocast) and, with ``--compile``, through ``torch.compile`` of the network (inductor;
on a CPU it compiles C++ with the system compiler). Floating outputs come back as float32, so the
task's losses and metrics are computed in float32. Attributes the tasks read (``output_key``,
``log_weights``, ...) are the network's. The network itself (its state dict, its parameters) is
unchanged: checkpoints hold the same keys with or without these flags.

``evaluate.py --compile`` on a CPU adds inductor's freezing (weights as constants, oneDNN convs
with fused element-wise ops; inference only, so not in training, whose validation runs on weights
that change): ``benchmarks/lowlight_speed.py`` measures every variant.

``search.py`` runs its networks through ``bilevel.call`` (``torch.func.functional_call``) and the
hypergradient methods differentiate twice; ``torch.compile`` does not support double backward
(``aot_autograd``), so ``--compile`` is a one-line error there. ``--channels-last`` and ``--amp``
work in search too (see ``commands.precision``).
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import torch
from torch import nn

from .errors import UserError
from .precision import AMP_CHOICES, Precision

__all__ = ["Runner", "add_speed_flags", "check_search", "speed_note", "to_channels_last"]


def add_speed_flags(parser: argparse.ArgumentParser) -> None:
    """``--amp``, ``--channels-last``, ``--compile``; flags not given stay None, so that a ``--config``
    file or a resumed run's settings hold."""
    parser.add_argument("--amp", default=None, choices=AMP_CHOICES,
                        help="mixed precision of the network's forward passes (default: float32): bf16 (CPU and "
                             "CUDA) or fp16 (CUDA, with a GradScaler); search keeps its linear solves and finite "
                             "differences in float32")
    parser.add_argument("--channels-last", action="store_true", default=None,
                        help="network weights and 4D inputs in channels-last memory format (5D: channels-last-3d)")
    parser.add_argument("--compile", action="store_true", default=None,
                        help="torch.compile the network (evaluate.py on a CPU: with inductor freezing; not for "
                             "search.py: the hypergradients differentiate twice through functional calls, which "
                             "torch.compile does not support)")


def check_search(compile_: bool) -> None:
    """``--compile`` is refused for search (one line)."""
    if compile_:
        raise UserError("--compile is not supported for search.py: the hypergradient methods run the network "
                        "through torch.func.functional_call (bilevel.call) and differentiate it twice, which "
                        "torch.compile does not support; drop --compile (use it with train.py and evaluate.py)")


def _memory_format(t: torch.Tensor) -> torch.memory_format | None:
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(t.dim())


def to_channels_last(net: nn.Module) -> nn.Module:
    """``net`` with every 4D (5D) parameter and buffer in channels-last (-3d) format, in place: the
    parameters stay the same objects (optimizers built before keep them)."""
    with torch.no_grad():
        for t in [*net.parameters(), *net.buffers()]:
            fmt = _memory_format(t)
            if fmt is not None:
                t.data = t.data.contiguous(memory_format=fmt)
    return net


def _map(fn: Callable[[torch.Tensor], torch.Tensor], obj: Any) -> Any:
    """``fn`` applied to every tensor in nested dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map(fn, v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map(fn, v) for v in obj)
    return obj


def channels_last_inputs(obj: Any) -> Any:
    """Floating 4D (5D) tensors of ``obj`` (a batch, an argument tuple) in channels-last (-3d) format."""
    def convert(t: torch.Tensor) -> torch.Tensor:
        fmt = _memory_format(t)
        return t.contiguous(memory_format=fmt) if fmt is not None and t.is_floating_point() else t
    return _map(convert, obj)


def _float32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class Runner(nn.Module):
    """``net`` as the tasks call it: channels-last inputs, autocast, compiled forward; float32 outputs.

    Args:
        net: the task's network (already on its device; converted to channels-last here when asked).
        precision: the run's ``Precision`` (autocast dtype).
        channels_last: inputs (and ``net``) in channels-last memory format.
        compile: run ``torch.compile(net, **compile_options)`` instead of ``net`` (options such as
            ``mode="reduce-overhead"`` or ``options={"freezing": True}``: ``benchmarks/lowlight_speed.py``).
    """

    def __init__(self, net: nn.Module, precision: Precision, channels_last: bool = False, compile: bool = False,
                 compile_options: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.net = to_channels_last(net) if channels_last else net
        self.precision, self.channels_last, self.compile = precision, channels_last, compile
        self.compile_options = dict(compile_options or {})
        # not a registered submodule: the compiled wrapper would repeat net's parameters under _orig_mod
        object.__setattr__(self, "_compiled", None)

    def _forward(self) -> nn.Module:
        """The network, or its ``torch.compile`` wrapper (made at the first call: dynamo's import alone
        takes seconds)."""
        if not self.compile:
            return self.net
        if self._compiled is None:
            object.__setattr__(self, "_compiled", torch.compile(self.net, **self.compile_options))
        return self._compiled

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.channels_last:
            args, kwargs = channels_last_inputs((args, kwargs))
        with self.precision.autocast():
            out = self._forward()(*args, **kwargs)
        return _map(_float32, out) if self.precision.enabled else out

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "net":
                raise
            return getattr(self.net, name)


def speed_note(precision: Precision, channels_last: bool = False, compile: bool = False) -> str:
    """``float32`` / ``bf16 autocast, channels-last, compiled``: for a run's first line."""
    return ", ".join([precision.describe()] + (["channels-last"] if channels_last else [])
                     + (["compiled"] if compile else []))
