"""``export.py``: the network of a model.pt as an ONNX file, checked against PyTorch with onnxruntime.

The exporter is torch's ``torch.export``-based one (``dynamo=True``, torch's default since 2.9; it
needs ``onnxscript``). Measured on the five tasks (torch 2.14, CPU, onnxruntime 1.32): both it and
the legacy TorchScript exporter (``dynamo=False``) match PyTorch to ~2e-6 at the traced size, but
the legacy tracer bakes Python arithmetic on tensor sizes into constants, so a registration network
(its identity grid, its padding to the U-Net's multiple) exported with dynamic axes differed from
PyTorch by 0.92 at another size, silently; ``torch.export`` keeps those sizes symbolic and matched
every task at every size tried (<= 2e-6). It is slower (3-12 s per network on a busy 2-core CPU,
against 0.3-1.5 s), and the legacy exporter is deprecated, so only it is used.
"""
from __future__ import annotations

import argparse
import importlib
import time
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from runtime.threads import add_threads_flag, apply_threads
from tasks import Settings, Task
from tasks.settings import int_at_least, positive_int

from .config import device_of
from .errors import UserError
from .models import build_model, read_model
from .runs import atomic_write_bytes

#: The ONNX opset written by default: the exporter's own default in torch 2.14, and what 3D
#: registration needs (GridSample on volumes); onnxruntime 1.19 and later run it.
DEFAULT_OPSET = 20
#: The exporter translates to opset 18 and converts up; the converter has no way down for Pad (< 18).
MIN_OPSET = 18
#: Largest accepted max abs difference between onnxruntime and PyTorch outputs.
TOLERANCE = 1e-4
#: What ``import`` needs for the export (``onnxscript``, ``onnx``) and the check (``onnxruntime``).
EXTRA = ("onnx", "onnxscript", "onnxruntime")
MISSING_EXTRA = 'ONNX export needs the export extra: pip install -e ".[export]"'
#: Names of the dynamic spatial axes, by number of spatial axes.
AXIS_NAMES = {2: ("height", "width"), 3: ("depth", "height", "width")}
TRACE_BATCH = 2  # a batch of 1 would be specialised: torch.export treats sizes 0 and 1 as constants

DESCRIPTION = f"""Export the network of a model.pt written by train.py to ONNX (opset {DEFAULT_OPSET} by default) with
dynamic batch and spatial axes, then run the file with onnxruntime on new random inputs, one of the traced
size and one of another batch and spatial size, and compare every output with PyTorch: the largest absolute
difference must be <= {TOLERANCE:g} (else an error, and no file is written). The network is rebuilt from
model.pt alone, as evaluate.py does. Needs the export extra: pip install -e ".[export]"."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="export.py", description=DESCRIPTION)
    parser.add_argument("--checkpoint", required=True, metavar="MODEL.pt", help="model.pt written by train.py (required)")
    parser.add_argument("--out", default=None, metavar="FILE.onnx",
                        help="the ONNX file (default: the checkpoint's name with .onnx, beside it)")
    parser.add_argument("--size", type=_side, nargs="+", default=None, metavar="N",
                        help="spatial size of the traced input: one side for all axes, or one per axis (H W; D H "
                             "W for 3D registration); default: the task's (64 x 64; classification 32 x 32; "
                             "registration its training size)")
    parser.add_argument("--height", type=_side, default=None, help="height of the traced input (2D; not with --size; default: as --size)")
    parser.add_argument("--width", type=_side, default=None, help="width of the traced input (2D; not with --size; default: as --size)")
    parser.add_argument("--opset", type=positive_int, default=DEFAULT_OPSET,
                        help=f"ONNX opset, {MIN_OPSET} or later (default {DEFAULT_OPSET}; 3D registration needs 20)")
    parser.add_argument("--no-check", action="store_true",
                        help="write the file without running it with onnxruntime against PyTorch")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda"),
                        help="where PyTorch traces the network and computes the reference outputs (default cpu; "
                             "onnxruntime runs on the cpu)")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")
    add_threads_flag(parser)
    return parser


_side = int_at_least(2, "2 or more", "side")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.size is not None and (args.height is not None or args.width is not None):
        raise UserError("--size and --height/--width exclude each other; pass --size, or --height and --width")
    apply_threads(args.threads)
    modules = _require_extra(EXTRA[:2] if args.no_check else EXTRA)
    ckpt, task, s = read_model(args.checkpoint)
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix(".onnx")
    if out.exists() and not args.force:
        raise UserError(f"{out} exists; pass --force to replace it, or another --out")
    _check_opset(args.opset, modules["onnx"], task, s)
    size = _trace_size(task, s, args)
    device = device_of(args.device)
    net = build_model(task, s, ckpt, args.checkpoint).to(device).eval()
    print(f"{task.name} network of {args.checkpoint}: {task.count_parameters(net):,} parameters")

    example = task.example_inputs(s, size, TRACE_BATCH, torch.Generator().manual_seed(0))
    trace = {k: v.to(device) for k, v in example.items()}
    model, names, seconds = export(net, trace, len(size), args.opset, task.output_name)
    shapes = _input_shapes(model)
    print(f"exported in {seconds:.1f} s (torch.export, opset {args.opset}): inputs "
          + ", ".join(f"{k} [{', '.join(map(str, v))}]" for k, v in shapes.items()) + f"; outputs {', '.join(names)}")
    if not args.no_check:
        check(modules["onnxruntime"], model, net, task, s, size, shapes)
    atomic_write_bytes(out, model.SerializeToString())
    print(f"wrote {out}" + (" (not checked: --no-check)" if args.no_check else ""))
    return 0


def _require_extra(names: Sequence[str]) -> dict[str, ModuleType]:
    """The modules of the export extra that this run needs, by name; one-line error when one is missing."""
    try:
        return {name: importlib.import_module(name) for name in names}
    except ImportError:
        raise UserError(MISSING_EXTRA) from None


def _check_opset(opset: int, onnx: ModuleType, task: Task, s: Settings) -> None:
    """One-line ``UserError`` unless ``opset`` is known to ``onnx``, and new enough for the exporter and
    for ``task``'s network."""
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise UserError(f"--opset {opset} is newer than onnx {onnx.__version__} knows (up to {newest}); pass "
                        f"--opset {MIN_OPSET} to {newest}")
    need, why = task.min_opset(s)
    if opset < max(MIN_OPSET, need):
        reason = why if need > MIN_OPSET else f"the exporter writes opset {MIN_OPSET} and converts only upwards"
        raise UserError(f"--opset {opset} is too old for the {task.name} network ({reason}); pass --opset "
                        f"{max(MIN_OPSET, need)} or later (default {DEFAULT_OPSET})")


def _trace_size(task: Task, s: Settings, args: argparse.Namespace) -> tuple[int, ...]:
    """The spatial size to trace at: the task's default changed by --size or --height/--width."""
    size = list(task.example_size(s))
    if args.size is not None:
        if len(args.size) not in (1, len(size)):
            raise UserError(f"--size takes 1 or {len(size)} sides for the {task.name} network ({len(size)} spatial "
                            f"axes), got {len(args.size)}")
        return tuple(args.size * len(size) if len(args.size) == 1 else args.size)
    if (args.height is not None or args.width is not None) and len(size) != 2:
        raise UserError(f"--height/--width are for 2D inputs; the {task.name} network has {len(size)} spatial "
                        f"axes: pass --size with {len(size)} sides")
    if args.height is not None:
        size[0] = args.height
    if args.width is not None:
        size[1] = args.width
    return tuple(size)


class NamedOutputs(nn.Module):
    """``network`` returning a tuple of tensors in ``names`` order (dict outputs by key, a single
    tensor as is): ONNX outputs are positional and named from ``names``."""

    def __init__(self, network: nn.Module, names: Sequence[str]) -> None:
        super().__init__()
        self.network, self.names = network, tuple(names)

    def forward(self, *inputs: Tensor) -> Tensor | tuple[Tensor, ...]:
        out = self.network(*inputs)
        return tuple(out[k] for k in self.names) if isinstance(out, dict) else out


def export(net: nn.Module, inputs: dict[str, Tensor], spatial: int, opset: int,
           single_name: str = "output") -> tuple[Any, list[str], float]:
    """``(onnx.ModelProto, output names, seconds)`` of ``net`` (eval mode) traced on ``inputs`` (by name,
    in call order), their batch axis and last ``spatial`` axes dynamic; dict outputs named by their keys."""
    with torch.no_grad():
        out = net(*inputs.values())
    names = list(out) if isinstance(out, dict) else [single_name]
    dims = [{0: "batch", **{x.dim() - spatial + i: n for i, n in enumerate(AXIS_NAMES[spatial])}}
            for x in inputs.values()]
    start = time.perf_counter()
    with warnings.catch_warnings():  # inputs of one size share the axis names, which the exporter notes
        warnings.filterwarnings("ignore", message="# The axis name", category=UserWarning)
        program = torch.onnx.export(NamedOutputs(net, names).eval(), tuple(inputs.values()), None, dynamo=True,
                                    input_names=list(inputs), output_names=names, opset_version=opset,
                                    dynamic_shapes=(tuple(dims),), verbose=False)
    model = program.model_proto
    seconds = time.perf_counter() - start
    written = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)
    if written != opset:
        raise UserError(f"the exporter could not write opset {opset} (it wrote {written}); pass --opset {written}")
    return model, names, seconds


def _input_shapes(model: Any) -> dict[str, list[int | str]]:
    """Input name -> its ONNX shape, a dynamic axis by its name."""
    return {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}


def check(ort: ModuleType, model: Any, net: nn.Module, task: Task, s: Settings, size: Sequence[int],
          shapes: dict[str, list[int | str]]) -> list[float]:
    """Run ``model`` with onnxruntime and ``net`` with PyTorch on new random inputs, at the traced size
    and at another size on every axis the file declares dynamic (batch 1 when the batch is dynamic);
    the max abs difference over the outputs per input (printed), a one-line ``UserError`` above
    ``TOLERANCE`` (or on a shape mismatch or a non-finite difference)."""
    first = next(iter(shapes.values()))
    dynamic = [isinstance(d, str) for d in first[len(first) - len(size):]]
    other = tuple(_other_side(n) if on else n for n, on in zip(size, dynamic))
    batch = 1 if isinstance(first[0], str) else TRACE_BATCH
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    try:
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - typically an opset newer than this onnxruntime runs
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"onnxruntime {ort.__version__} cannot load the exported file ({first}); pass an older "
                        f"--opset (default {DEFAULT_OPSET}) or upgrade onnxruntime")
    worst = []
    for seed, side in enumerate(dict.fromkeys([tuple(size), other]), start=1):  # the other size once, if any
        inputs = task.example_inputs(s, side, batch, torch.Generator().manual_seed(seed))
        diffs = compare(session, model, net, inputs)
        name, x = next(iter(inputs.items()))
        top = max(diffs, key=lambda k: diffs[k] if np.isfinite(diffs[k]) else np.inf)
        if not diffs[top] <= TOLERANCE:
            raise UserError(f"onnxruntime and PyTorch differ by {diffs[top]:.3g} (> {TOLERANCE:g}) on output {top} "
                            f"for random {name} {list(x.shape)}; the file is not written (--no-check "
                            "writes it unchecked)")
        each = ", ".join(f"{k} {v:.2g}" for k, v in diffs.items())
        print(f"onnxruntime {ort.__version__} vs PyTorch, random {name} {list(x.shape)}: max abs difference "
              f"{diffs[top]:.2g} <= {TOLERANCE:g} ({each})")
        worst.append(diffs[top])
    return worst


def _other_side(n: int) -> int:
    """A side unlike ``n`` for the second check: about 3/4 of it, odd for even ``n`` (so that
    networks that pad to a multiple run their padding)."""
    m = n * 3 // 4 + 1
    return m if m != n else n + 1


def compare(session: Any, model: Any, net: nn.Module, inputs: dict[str, Tensor]) -> dict[str, float]:
    """Max abs difference per output between ``session`` (onnxruntime, of ``model``) and ``net`` on
    ``inputs``; one-line ``UserError`` when an output's shape differs."""
    got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
    device = next(net.parameters()).device
    with torch.no_grad():
        ref = NamedOutputs(net, [o.name for o in model.graph.output])(*(v.to(device) for v in inputs.values()))
    ref = ref if isinstance(ref, tuple) else (ref,)
    diffs: dict[str, float] = {}
    for output, g, r in zip(model.graph.output, got, ref):
        r = r.detach().float().cpu().numpy()
        if g.shape != r.shape:
            raise UserError(f"ONNX output {output.name} has shape {list(g.shape)}, PyTorch {list(r.shape)}; the file "
                            "is not written (--no-check writes it unchecked)")
        diffs[output.name] = float(np.abs(g.astype(np.float64) - r).max())
    return diffs
