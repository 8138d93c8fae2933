"""``--amp``, ``--channels-last``, ``--compile``: the flags, and ``Runner``, the network as the tasks call it.

``Runner`` wraps a task's network for ``train.py`` and ``evaluate.py``: 4D (5D) floating inputs are
put in channels-last (channels-last-3d) memory format, the forward pass runs under the run's
``Precision`` (autocast) and, with ``--compile``, through ``torch.compile`` of the network (inductor;
on a CPU it compiles C++ with the system compiler). Floating outputs come back as float32, so the
task's losses and metrics are computed in float32. Attributes the tasks read (``output_key``,
``log_weights``, ...) are the network's. The network itself (its state dict, its parameters) is
unchanged: checkpoints hold the same keys with or without these flags.

``evaluate.py --cuda-graph`` (CUDA only) captures the forward pass, autocast and all, in one CUDA graph per
input signature (``CudaGraphs``) and replays it: the launch overhead of a small network at a fixed
size goes away (a folder of mixed sizes captures one graph per size, up to ``CudaGraphs.limit``).

``evaluate.py --compile`` on a CPU adds inductor's freezing (weights as constants, oneDNN convs
with fused element-wise ops; inference only, so not in training, whose validation runs on weights
that change): ``benchmarks/lowlight_speed.py`` measures every variant.

``search.py`` runs its networks through ``bilevel.call`` (``torch.func.functional_call``) and the
hypergradient methods differentiate twice; ``torch.compile`` does not support double backward
(``aot_autograd``), so ``--compile`` is a one-line error there. ``--channels-last`` and ``--amp``
work in search too (see ``runtime.precision``).
"""
from __future__ import annotations

import argparse
from collections import OrderedDict
from typing import Any, Callable, Hashable

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from .errors import UserError
from .precision import AMP_CHOICES, Precision

__all__ = ["CudaGraphs", "Runner", "add_speed_flags", "check_cuda_graph", "check_search", "speed_note",
           "to_channels_last"]


#: ``--amp`` / ``--compile`` help of each command: what the flag does to that command's network.
SPEED_HELP: dict[str, dict[str, str]] = {
    "search": {
        "amp": "mixed precision of the supernet's forward passes during the search (default: float32): bf16 (CPU "
               "and CUDA) for every forward pass of a step, the methods' linear solves and finite differences "
               "kept in float32; fp16 (CUDA) for the lower training steps only, with a GradScaler",
        "compile": "not available for search.py (default: off; given, it is refused): the hypergradients "
                   "differentiate twice through functional calls, which torch.compile does not support",
    },
    "train": {
        "amp": "mixed precision of the network's forward passes while training and validating (default: "
               "float32): bf16 (CPU and CUDA) or fp16 (CUDA, with a GradScaler); losses and metrics are computed "
               "in float32",
        "compile": "torch.compile the network for training and validation (default: off); the first steps are "
                   "slower while it compiles",
    },
    "evaluate": {
        "amp": "mixed precision of the network's forward pass (default: float32): bf16 (CPU and CUDA) or fp16 "
               "(CUDA); metrics are computed in float32 from the outputs (--checkpoint only)",
        "compile": "torch.compile the network before running it (default: off; on a CPU with inductor freezing, "
                   "the weights compiled in as constants); pays off over many images of one size (--checkpoint "
                   "only)",
    },
}


def add_speed_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """``--amp``, ``--channels-last``, ``--compile`` worded for ``command`` (``search``, ``train`` or
    ``evaluate``); flags not given stay None, so that a ``--config`` file or a resumed run's settings hold."""
    words = SPEED_HELP[command]
    parser.add_argument("--amp", default=None, choices=AMP_CHOICES, help=words["amp"])
    parser.add_argument("--channels-last", action="store_true", default=None,
                        help="network weights and 4D inputs in channels-last memory format (5D: channels-last-3d; "
                             "default: off)")
    parser.add_argument("--compile", action="store_true", default=None, help=words["compile"])


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
        cuda_graph: replay the whole forward pass (autocast, compiled or not) from ``CudaGraphs``:
            inference on CUDA only (``check_cuda_graph``).
    """

    def __init__(self, net: nn.Module, precision: Precision, channels_last: bool = False, compile: bool = False,
                 compile_options: dict[str, Any] | None = None, cuda_graph: bool = False) -> None:
        super().__init__()
        self.net = to_channels_last(net) if channels_last else net
        self.precision, self.channels_last, self.compile = precision, channels_last, compile
        self.compile_options = dict(compile_options or {})
        # not a registered submodule: the compiled wrapper would repeat net's parameters under _orig_mod
        object.__setattr__(self, "_compiled", None)
        object.__setattr__(self, "_graphs", CudaGraphs(self._run) if cuda_graph else None)

    def _forward(self) -> nn.Module:
        """The network, or its ``torch.compile`` wrapper (made at the first call: dynamo's import alone
        takes seconds)."""
        if not self.compile:
            return self.net
        if self._compiled is None:
            object.__setattr__(self, "_compiled", torch.compile(self.net, **self.compile_options))
        return self._compiled

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self._graphs is not None:
            return self._graphs(*args, **kwargs)
        return self._run(*args, **kwargs)

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        if self.channels_last:
            args, kwargs = channels_last_inputs((args, kwargs))
        with self.precision.autocast(cache=self._graphs is None):
            out = self._forward()(*args, **kwargs)
        return _map(_float32, out) if self.precision.enabled else out


def _signature(leaf: Any) -> Hashable:
    """What a captured graph is specific to: a tensor's device, dtype, shape and strides; any other
    argument's value."""
    if isinstance(leaf, torch.Tensor):
        return ("tensor", leaf.device, leaf.dtype, tuple(leaf.shape), leaf.stride())
    return ("value", leaf if isinstance(leaf, Hashable) else repr(leaf))


class CudaGraphs:
    """``fn`` captured in one CUDA graph per input signature and replayed (inference only).

    The first call at a signature (tensor shapes, dtypes, strides; other arguments' values) warms
    ``fn`` up on a side stream, captures it with ``torch.cuda.graph`` on static copies of the inputs
    and keeps the graph; every call copies its tensors into the static inputs, replays the graph and
    returns clones of the outputs (so a caller may keep them across calls). At most ``limit`` graphs
    are kept (the oldest is dropped, with its memory pool).

    Args:
        fn: the forward pass, ``fn(*args, **kwargs)`` -> tensors in nested dicts/lists/tuples; every
            tensor argument on the same CUDA device.
        limit: graphs kept at once.
    """

    limit_default = 16

    def __init__(self, fn: Callable[..., Any], limit: int = limit_default, warmup: int = 3) -> None:
        self.fn, self.limit, self.warmup = fn, limit, warmup
        self.graphs: OrderedDict[Hashable, tuple[torch.cuda.CUDAGraph, list[Any], Any]] = OrderedDict()

    @staticmethod
    def key(leaves: list[Any], spec: Any) -> Hashable:
        """The signature of a call (``tree_flatten((args, kwargs))``): its argument structure and
        ``_signature`` of every leaf."""
        return (str(spec), tuple(_signature(leaf) for leaf in leaves))

    def _capture(self, leaves: list[Any], spec: Any) -> tuple[torch.cuda.CUDAGraph, list[Any], Any]:
        static = [leaf.clone() if isinstance(leaf, torch.Tensor) else leaf for leaf in leaves]
        args, kwargs = tree_unflatten(static, spec)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up off the capture stream, as torch.cuda.graph asks
            for _ in range(self.warmup):
                self.fn(*args, **kwargs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = self.fn(*args, **kwargs)
        except RuntimeError as e:  # a host synchronisation or a CPU tensor inside the forward pass
            first = (str(e).strip().splitlines() or [""])[0]
            raise UserError(f"the network cannot be captured in a CUDA graph ({first}); drop --cuda-graph") from e
        return graph, static, out

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        leaves, spec = tree_flatten((args, kwargs))
        key = self.key(leaves, spec)
        if key not in self.graphs:
            if len(self.graphs) >= self.limit:
                self.graphs.popitem(last=False)
            self.graphs[key] = self._capture(leaves, spec)
        graph, static, out = self.graphs[key]
        for dst, src in zip(static, leaves):
            if isinstance(dst, torch.Tensor):
                dst.copy_(src)
        graph.replay()
        return _map(torch.Tensor.clone, out)


def check_cuda_graph(cuda_graph: bool, device: torch.device) -> None:
    """``--cuda-graph`` needs a CUDA device (one line otherwise)."""
    if cuda_graph and device.type != "cuda":
        raise UserError(f"--cuda-graph captures CUDA kernels and the network runs on {device.type}; drop "
                        "--cuda-graph, or pass --device cuda on a machine with a GPU (on a CPU, --compile is "
                        "the fast path)")


def speed_note(precision: Precision, channels_last: bool = False, compile: bool = False,
               cuda_graph: bool = False) -> str:
    """``float32`` / ``bf16 autocast, channels-last, compiled, CUDA graphs``: for a run's first line."""
    return ", ".join([precision.describe()] + (["channels-last"] if channels_last else [])
                     + (["compiled"] if compile else []) + (["CUDA graphs"] if cuda_graph else []))
