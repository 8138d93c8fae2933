"""Every DARTS primitive: output shapes at stride 1 and 2, DARTS definitions."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nas.ops import DARTS_PRIMITIVES, OPS, FactorizedReduce, ReLUConvBN


def test_primitive_list_matches_ops_in_darts_order():
    assert DARTS_PRIMITIVES == (
        "none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
        "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5",
    )
    assert list(OPS) == list(DARTS_PRIMITIVES)
    for name in DARTS_PRIMITIVES:  # affine defaults to True: (C_in, C_out, stride) also works
        assert OPS[name](4, 4, 1) is not None


@pytest.mark.parametrize("name", DARTS_PRIMITIVES)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("size", [8, 7])
def test_primitive_shapes(name, stride, size):
    op = OPS[name](4, 4, stride, True)
    y = op(torch.randn(2, 4, size, size))
    out = -(-size // stride)
    assert y.shape == (2, 4, out, out)


@pytest.mark.parametrize("name", ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5"])
def test_conv_primitives_change_channels(name):
    y = OPS[name](4, 6, 2, False)(torch.randn(1, 4, 8, 8))
    assert y.shape == (1, 6, 4, 4)


def test_skip_connect_stride2_changes_channels_and_identity_at_stride1():
    assert isinstance(OPS["skip_connect"](4, 4, 1, True), nn.Identity)
    assert OPS["skip_connect"](4, 8, 2, True)(torch.randn(1, 4, 8, 8)).shape == (1, 8, 4, 4)


@pytest.mark.parametrize("name", ["none", "max_pool_3x3", "avg_pool_3x3"])
def test_channel_preserving_ops_reject_channel_change(name):
    with pytest.raises(ValueError, match=name):
        OPS[name](4, 8, 1, True)


def test_none_is_zero_and_avg_pool_excludes_padding():
    x = torch.randn(1, 2, 6, 6)
    assert torch.count_nonzero(OPS["none"](2, 2, 2, True)(x)) == 0
    ones = torch.ones(1, 1, 4, 4)
    assert torch.allclose(OPS["avg_pool_3x3"](1, 1, 1, True)(ones), ones)


def test_parameter_counts_follow_darts():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    C = 4
    # sep_conv_3x3: two units of depthwise 3x3 + pointwise + affine BN
    assert count(OPS["sep_conv_3x3"](C, C, 1, True)) == 2 * (C * 9 + C * C + 2 * C)
    assert count(OPS["dil_conv_5x5"](C, C, 1, True)) == C * 25 + C * C + 2 * C
    assert count(OPS["sep_conv_5x5"](C, C, 1, False)) == 2 * (C * 25 + C * C)
    assert count(ReLUConvBN(3, C, 1, 1, 0)) == 3 * C + 2 * C


def test_dil_conv_is_dilated_and_depthwise():
    conv = OPS["dil_conv_3x3"](4, 4, 1, True)[1]
    assert conv.dilation == (2, 2) and conv.groups == 4 and conv.padding == (2, 2)


def test_factorized_reduce_matches_darts_definition_on_even_sizes():
    torch.manual_seed(0)
    fr = FactorizedReduce(3, 6).eval()
    x = torch.randn(2, 3, 8, 8)
    r = F.relu(x)
    ref = fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1))
    assert torch.allclose(fr(x), ref)
    assert FactorizedReduce(3, 5)(torch.randn(1, 3, 7, 7)).shape == (1, 5, 4, 4)
