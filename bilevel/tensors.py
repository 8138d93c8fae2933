"""Arithmetic on dicts of tensors (name -> tensor), the vectors of the hypergradient methods."""
from __future__ import annotations

from typing import Any, ContextManager, Mapping, Sequence, overload

import torch
from torch import Tensor

TensorDict = dict[str, Tensor]


# The solvers call these once or twice per Hessian-vector product; on small problems their
# per-op overhead is a visible share of a hypergradient, so each is the fewest ops (one
# ``torch._foreach_*`` call over the dict, or one fused op for a single tensor).


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> Tensor:
    """Sum over names of ``<a[k], b[k]>`` (a 0-d tensor; differentiable)."""
    keys = list(a)
    if len(keys) == 1:
        return (a[keys[0]] * b[keys[0]]).sum()
    if not keys:
        return torch.zeros(())
    products = torch._foreach_mul([a[k] for k in keys], [b[k] for k in keys])
    return torch.stack([p.sum() for p in products]).sum()


def norm(a: Mapping[str, Tensor]) -> Tensor:
    """Euclidean norm of all values together (a 0-d tensor, detached)."""
    values = [v.detach() for v in a.values()]
    if len(values) == 1:
        return torch.linalg.vector_norm(values[0])
    if not values:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(values)))


def axpy(alpha: float | Tensor, x: Mapping[str, Tensor], y: Mapping[str, Tensor]) -> TensorDict:
    """``y + alpha * x`` name by name (a 0-d tensor ``alpha`` stays on its device: no sync)."""
    keys = list(y)
    if isinstance(alpha, Tensor):
        return {k: torch.addcmul(y[k], alpha, x[k]) for k in keys}
    if len(keys) == 1:
        return {keys[0]: torch.add(y[keys[0]], x[keys[0]], alpha=alpha)}
    if not keys:
        return {}
    return dict(zip(keys, torch._foreach_add([y[k] for k in keys], [x[k] for k in keys], alpha=alpha)))


def scale(alpha: float | Tensor, x: Mapping[str, Tensor]) -> TensorDict:
    """``alpha * x`` name by name."""
    return {k: alpha * v for k, v in x.items()}


def detached(x: Mapping[str, Tensor], requires_grad: bool = False) -> TensorDict:
    """Fresh leaves sharing storage with ``x`` (no copy), optionally requiring grad."""
    return {k: v.detach().requires_grad_(requires_grad) for k, v in x.items()}


@overload
def cloned(x: Mapping[str, Tensor]) -> TensorDict: ...


@overload
def cloned(x: None) -> None: ...


def cloned(x: Mapping[str, Tensor] | None) -> TensorDict | None:
    """Detached copies of ``x``'s tensors (state kept or checkpointed); ``None`` stays ``None``."""
    return None if x is None else {k: v.detach().clone() for k, v in x.items()}


def same_layout(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> bool:
    """Whether ``a`` and ``b`` hold the same names with tensors of the same shapes (state kept for
    one problem's variables checked against the variables of a call)."""
    return set(a) == set(b) and all(a[k].shape == b[k].shape for k in b)


def grad(output: Tensor | Sequence[Tensor], inputs: Mapping[str, Tensor], create_graph: bool = False,
         retain_graph: bool | None = None, grad_outputs: Tensor | Sequence[Tensor] | None = None
         ) -> TensorDict:
    """``d output / d inputs`` as a dict; inputs the output does not depend on get zeros.

    ``output`` may be a scalar or a sequence of tensors matched by ``grad_outputs``."""
    names = list(inputs)
    tensors = [inputs[k] for k in names]
    if isinstance(output, Tensor) and not output.requires_grad:
        return {k: torch.zeros_like(t) for k, t in zip(names, tensors)}
    gs = torch.autograd.grad(output, tensors, grad_outputs=grad_outputs, create_graph=create_graph,
                             retain_graph=retain_graph, allow_unused=True)
    return {k: torch.zeros_like(t) if g is None else g for k, t, g in zip(names, tensors, gs)}


def vjp(outputs: Mapping[str, Tensor], inputs: Mapping[str, Tensor], vector: Mapping[str, Tensor],
        create_graph: bool = False, retain_graph: bool | None = None) -> TensorDict:
    """``(d outputs / d inputs)^T vector``: a vector-Jacobian product over dicts."""
    keys = [k for k in outputs if outputs[k].requires_grad]
    if not keys:
        return {k: torch.zeros_like(t) for k, t in inputs.items()}
    names = list(inputs)
    gs = torch.autograd.grad([outputs[k] for k in keys], [inputs[k] for k in names],
                             grad_outputs=[vector[k] for k in keys], create_graph=create_graph,
                             retain_graph=retain_graph, allow_unused=True)
    return {k: torch.zeros_like(inputs[k]) if g is None else g for k, g in zip(names, gs)}


def full_precision(x: Mapping[str, Tensor]) -> ContextManager[Any]:
    """Autocast off on the device of ``x``'s tensors: float32 arithmetic inside a caller's
    ``torch.autocast`` (mixed precision). The linear solves and the finite differences run in it:
    a difference of two gradients at ``y +/- eps v`` cancels to noise in bf16/fp16."""
    device_type = next(iter(x.values())).device.type if x else "cpu"
    return torch.autocast(device_type, enabled=False)
