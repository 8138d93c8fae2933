"""The shared restoration op family: shapes, errors, and each block against a functional
re-computation written with ``torch.nn.functional`` in float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nas.mixed_op import MixedOp
from restoration.ops import RESTORATION_OPS, RESTORATION_PRIMITIVES

C = 4


def _x() -> torch.Tensor:
    return torch.randn(2, C, 12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _conv(x, m):  # a size-preserving conv from a module's weights
    return F.conv2d(x, m.weight, m.bias, padding=m.padding, dilation=m.dilation, groups=m.groups)


def _prelu(x, m):
    return torch.where(x >= 0, x, m.weight * x)


@pytest.mark.parametrize("name", RESTORATION_PRIMITIVES)
def test_every_op_keeps_shape_and_has_gradients(name):
    op = RESTORATION_OPS[name](C, C, 1, True).double()
    x = _x().requires_grad_()
    y = op(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", RESTORATION_PRIMITIVES)
def test_errors_for_stride_and_channel_change(name):
    with pytest.raises(ValueError, match="stride 1"):
        RESTORATION_OPS[name](C, C, 2, True)
    with pytest.raises(ValueError, match="C_in == C_out"):
        RESTORATION_OPS[name](C, C + 1, 1, True)


def test_res_block_and_dilation_by_hand():
    for name, k, d in (("res_block_3x3", 3, 1), ("res_block_5x5_d2", 5, 2)):
        op = RESTORATION_OPS[name](C, C).double()
        assert op.conv1.kernel_size == (k, k) and op.conv1.dilation == (d, d)
        x = _x()
        ref = x + _conv(_prelu(_conv(x, op.conv1), op.act), op.conv2)
        assert torch.allclose(op(x), ref, atol=1e-12)


def test_dense_block_by_hand():
    op = RESTORATION_OPS["dense_block_3x3"](C, C).double()
    x = _x()
    x1 = _prelu(_conv(x, op.convs[0]), op.acts[0])
    x2 = _prelu(_conv(torch.cat([x, x1], 1), op.convs[1]), op.acts[1])
    x3 = _prelu(_conv(torch.cat([x, x1, x2], 1), op.convs[2]), op.acts[2])
    assert torch.allclose(op(x), x + x3 / 3, atol=1e-12)


def test_separable_conv_by_hand():
    op = RESTORATION_OPS["sep_conv_5x5"](C, C).double()
    dw, pw, act = op[0], op[1], op[2]
    assert dw.groups == C and dw.kernel_size == (5, 5)
    x = _x()
    assert torch.allclose(op(x), _prelu(_conv(_conv(x, dw), pw), act), atol=1e-12)


def test_eca_attention_by_hand():
    op = RESTORATION_OPS["eca_attention"](C, C).double()
    x = _x()
    h = _conv(_prelu(_conv(x, op.conv1), op.act1), op.conv2)
    desc = h.mean(dim=(2, 3))  # [N, C]
    w = op.attn.conv.weight[0, 0]  # [3]
    padded = F.pad(desc, (1, 1))
    gate = torch.sigmoid(sum(w[j] * padded[:, j : j + C] for j in range(3)))
    ref = _prelu(x + h * gate[:, :, None, None], op.act2)
    assert torch.allclose(op(x), ref, atol=1e-12)


def test_spatial_attention_by_hand():
    op = RESTORATION_OPS["spatial_attention"](C, C).double()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in op.modules())
    x = _x()
    h = _conv(_prelu(_conv(x, op.conv1), op.act1), op.conv2)
    pooled = torch.cat([h.mean(1, keepdim=True), h.amax(1, keepdim=True)], 1)
    cv = op.attn.conv.conv
    gate = torch.sigmoid(F.conv2d(pooled, cv.weight, cv.bias, padding=1))
    assert torch.allclose(op(x), _prelu(x + h * gate, op.act2), atol=1e-12)


def test_mixed_op_over_the_family():
    mixed = MixedOp(RESTORATION_PRIMITIVES, C, 1, RESTORATION_OPS).double()
    x = _x()
    w = torch.softmax(torch.randn(len(RESTORATION_PRIMITIVES), dtype=torch.float64), 0)
    singles = []
    for name, built in zip(RESTORATION_PRIMITIVES, mixed._ops):
        op = RESTORATION_OPS[name](C, C).double()
        op.load_state_dict(built.state_dict())
        singles.append(op(x))
    ref = sum(wi * y for wi, y in zip(w, singles))
    assert torch.allclose(mixed(x, w), ref, atol=1e-10)
