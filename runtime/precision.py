"""``--amp bf16|fp16``: the precision a command runs its network's forward passes in.

``Precision`` turns the flag into an ``autocast`` context (``torch.autocast(device_type, dtype)``;
off: a null context) and, for fp16 on CUDA, a ``torch.amp.GradScaler`` for training steps. bf16
has float32's exponent range and needs no loss scaling. fp16 on a CPU is refused (one line
suggesting bf16): CPU autocast in fp16 is slow on CPUs without fp16 arithmetic and this suite has
no CPU loss scaling.

Where the commands apply it:

* ``train.py`` / ``evaluate.py``: the network's forward pass only (``runtime.speed.Runner``); its
  outputs are cast back to float32, so losses and metrics are computed in float32.
* ``search.py``, bf16: every forward pass of a search step (lower steps and the hypergradient's),
  while ``bilevel`` keeps the implicit methods' linear systems (``cg``, ``neumann``: right-hand
  side, Hessian graph and solve) and the finite differences (``darts2``, ``fdhg``: the perturbed
  gradients) in float32 (``bilevel.tensors.full_precision``). fp16: only the lower training steps
  (the loop's own autocast and GradScaler, CUDA): a hypergradient's second-order terms in fp16
  would need their own loss scaling, which no method has.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from .errors import UserError

__all__ = ["AMP_CHOICES", "Precision"]

#: ``--amp`` values and their dtypes.
AMP_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
AMP_CHOICES = tuple(AMP_DTYPES)


class Precision:
    """Autocast (and, for fp16 on CUDA, a GradScaler) for ``amp`` on ``device``.

    Args:
        amp: ``None`` (float32), ``"bf16"`` or ``"fp16"``.
        device: where the network runs; fp16 on a CPU is a ``UserError``.
        scaler: make a GradScaler for fp16 (training); the search loop brings its own.
    """

    def __init__(self, amp: str | None, device: torch.device, scaler: bool = True) -> None:
        if amp is not None and amp not in AMP_DTYPES:
            raise UserError(f"--amp {amp!r}: choose one of {', '.join(AMP_CHOICES)} (or leave it out for float32)")
        if amp == "fp16" and device.type != "cuda":
            raise UserError(f"--amp fp16 needs a CUDA device (on {device.type}, fp16 autocast is slow and has no "
                            "loss scaling here); use --amp bf16")
        self.amp, self.device_type = amp, device.type
        self.dtype = AMP_DTYPES.get(amp or "", torch.float32)
        self.scaler = torch.amp.GradScaler(device.type) if amp == "fp16" and scaler else None

    @property
    def enabled(self) -> bool:
        return self.amp is not None

    def autocast(self, cache: bool = True) -> ContextManager[Any]:
        """``torch.autocast(device_type, dtype)``, or a null context in float32. ``cache=False`` for a
        forward pass captured in a CUDA graph (the cast weights must be made inside the graph, as
        ``torch.cuda.graph``'s documentation asks)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype, cache_enabled=cache)

    def describe(self) -> str:
        """A phrase for the run's first line: ``float32``, ``bf16 autocast``, ``fp16 autocast + GradScaler``."""
        if not self.enabled:
            return "float32"
        return f"{self.amp} autocast" + (" + GradScaler" if self.scaler is not None else "")

    # -- search steps ----------------------------------------------------------------------
    def search_step(self) -> ContextManager[Any]:
        """Around a whole search step: bf16 autocast; nothing for float32 and for fp16, which the loop
        applies to its lower steps only (``GroupedLoop(amp=True)``, with its own GradScaler)."""
        return self.autocast() if self.amp == "bf16" else contextlib.nullcontext()

    def describe_search(self) -> str:
        """What ``search_step`` and the loop do, for the search's first line."""
        if self.amp == "bf16":
            return "bf16 autocast, solves and finite differences in float32"
        if self.amp == "fp16":
            return "fp16 autocast + GradScaler in the lower steps, hypergradients in float32"
        return "float32"

    # -- training steps (GradScaler for fp16; plain float32 / bf16 steps otherwise) ----------
    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss to back-propagate (multiplied by the scale under fp16)."""
        return loss if self.scaler is None else self.scaler.scale(loss)

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients of ``optimizer``'s parameters by the scale (before clipping)."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """``optimizer.step()`` (skipped by the scaler when a gradient overflowed in fp16)."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)

    def update(self) -> None:
        """Adjust the scale once per training step, after every optimizer stepped."""
        if self.scaler is not None:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
