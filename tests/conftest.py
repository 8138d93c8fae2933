"""Run the tests single-threaded: tiny tensors gain nothing from intra-op threads, and on a shared
2-core machine oversubscribed OpenMP threads make them 10x slower. Set once for the session, so
module-scoped fixtures (which run before function fixtures) get it too."""

import os

import torch


def pytest_configure(config):
    os.environ["OMP_NUM_THREADS"] = "1"  # the commands' --threads auto follows it, and so do subprocesses
    torch.set_num_threads(1)
