"""Run the tests single-threaded: tiny tensors gain nothing from intra-op threads, and on
a shared 2-core machine oversubscribed OpenMP threads make them 10x slower. Restored after
each test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
