"""MixedOp: weighted sum, partial channels, any ops dict; edge_softmax."""

import pytest
import torch
from torch import nn

from nas.mixed_op import MixedOp, channel_shuffle, edge_softmax
from nas.ops import DARTS_PRIMITIVES


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_mixed_op_shapes(stride, k):
    op = MixedOp(DARTS_PRIMITIVES, 8, stride, partial_k=k)
    w = torch.softmax(torch.randn(len(DARTS_PRIMITIVES)), 0)
    for size in (8, 7):
        y = op(torch.randn(2, 8, size, size), w)
        assert y.shape == (2, 8, -(-size // stride), -(-size // stride))


def test_pools_get_affine_free_batchnorm():
    op = MixedOp(DARTS_PRIMITIVES, 4, 1)
    for name, m in zip(DARTS_PRIMITIVES, op._ops):
        wrapped = isinstance(m, nn.Sequential) and isinstance(m[0], (nn.MaxPool2d, nn.AvgPool2d))
        assert wrapped == ("pool" in name)
        if wrapped:
            assert isinstance(m[1], nn.BatchNorm2d) and not m[1].affine


def test_one_hot_weights_select_one_op():
    torch.manual_seed(0)
    op = MixedOp(DARTS_PRIMITIVES, 4, 1).eval()
    x = torch.randn(2, 4, 8, 8)
    for k in range(len(DARTS_PRIMITIVES)):
        w = torch.zeros(len(DARTS_PRIMITIVES))
        w[k] = 1.0
        assert torch.allclose(op(x, w), op._ops[k](x))


def test_partial_channels_bypass_and_shuffle():
    prims = ["none", "skip_connect"]
    op = MixedOp(prims, 8, 1, partial_k=4)
    x = torch.randn(1, 8, 4, 4)
    assert torch.equal(op(x, torch.tensor([0.0, 1.0])), channel_shuffle(x, 4))
    # with the 'none' op the processed quarter is zero, the bypass survives
    y = op(x, torch.tensor([1.0, 0.0]))
    assert torch.count_nonzero(y.abs().sum((0, 2, 3))) == 6


def test_stride2_partial_bypass_is_max_pooled():
    op = MixedOp(["none"], 4, 2, partial_k=2)
    x = torch.randn(1, 4, 4, 4)
    y = op(x, torch.ones(1))
    pooled = torch.nn.functional.max_pool2d(x[:, 2:], 2)
    assert torch.equal(y[:, 1::2], pooled)


def test_custom_ops_dict():
    ops = {
        "conv": lambda ci, co, s, a: nn.Conv2d(ci, co, 3, s, 1),
        "id": lambda ci, co, s, a: nn.Identity(),
    }
    op = MixedOp(["conv", "id"], 3, 1, ops)
    assert op(torch.randn(1, 3, 5, 5), torch.tensor([0.5, 0.5])).shape == (1, 3, 5, 5)


def test_errors():
    with pytest.raises(ValueError, match="divide"):
        MixedOp(DARTS_PRIMITIVES, 6, 1, partial_k=4)
    with pytest.raises(ValueError, match="unknown"):
        MixedOp(["nope"], 4, 1)
    with pytest.raises(ValueError, match="weights"):
        MixedOp(DARTS_PRIMITIVES, 4, 1)(torch.randn(1, 4, 4, 4), torch.ones(3))


def test_edge_softmax_normalises_each_node():
    b = torch.randn(14)
    w = edge_softmax(b, 4)
    sums = [w[s : s + n].sum().item() for s, n in ((0, 2), (2, 3), (5, 4), (9, 5))]
    assert sums == pytest.approx([1.0] * 4)
    with pytest.raises(ValueError):
        edge_softmax(torch.randn(13), 4)
