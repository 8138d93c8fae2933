"""DartsNetwork: the 3.3M-parameter check and the auxiliary head."""

import pytest
import torch

from nas.genotype import DARTS_V2, derive_chain
from nas.network import DartsNetwork, count_parameters


def test_darts_v2_counts_3_3m_parameters():
    net = DartsNetwork(C=36, num_classes=10, layers=20, genotype=DARTS_V2, auxiliary=True)
    n = count_parameters(net)
    print(f"DARTS_V2 C=36 layers=20 parameters (auxiliary excluded): {n}")
    assert round(n / 1e6, 1) == 3.3
    assert n == 3349342  # DARTS's train log: "param size = 3.349342MB"
    assert count_parameters(net, exclude_auxiliary=False) > n


def test_tiny_network_train_returns_aux_logits():
    torch.manual_seed(0)
    net = DartsNetwork(C=4, num_classes=5, layers=3, genotype=DARTS_V2, auxiliary=True, drop_path_prob=0.2)
    x = torch.randn(2, 3, 32, 32)
    logits, aux = net(x)
    assert logits.shape == aux.shape == (2, 5)
    net.eval()
    assert net(x).shape == (2, 5)
    net_noaux = DartsNetwork(C=4, num_classes=5, layers=3, auxiliary=False)
    assert net_noaux(x).shape == (2, 5)
    assert count_parameters(net_noaux) == count_parameters(net)


def test_network_rejects_genotype_of_another_space():
    g = derive_chain("ruas", {"iem": torch.zeros(1, 2)}, ["a", "b"], [0])
    with pytest.raises(ValueError, match="lacks"):
        DartsNetwork(C=4, layers=3, genotype=g)
