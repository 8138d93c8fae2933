"""Op latency table, its JSON cache, the differentiable expected latency, measured latency."""

from __future__ import annotations

import json
import time

import torch
from torch import nn

from restoration.fusion.latency import (CELL_SCALES, LATENCY_FILE, expected_latency, load_or_measure,
                                        measure_latency, measure_op_latencies, reuse_or_measure)
from restoration.fusion.model import CELL_NAMES, FusionSearchNet


class Sleep(nn.Module):
    def __init__(self, ms: float):
        super().__init__()
        self.ms = ms

    def forward(self, x):
        time.sleep(self.ms / 1e3)
        return x


OPS = {"fast": lambda C_in, C_out, s, a=True: nn.Identity(),
       "slow": lambda C_in, C_out, s, a=True: Sleep(4.0),
       "conv": lambda C_in, C_out, s, a=True: nn.Conv2d(C_in, C_out, 3, padding=1)}
PRIMS = ("fast", "slow", "conv")


def test_measured_table_orders_ops():
    table = measure_op_latencies(OPS, PRIMS, C=2, size=8, device="cpu", repeats=3, warmup=1)
    assert set(table) == set(CELL_SCALES)
    for row in table.values():
        assert row["slow"] >= 3.5 and row["fast"] < 1.0


def test_cache_reused_when_settings_match(tmp_path):
    calls = []

    def fake(ops, prims, C, size, device, repeats):
        calls.append(C)
        return {cell: {p: float(i + 1) for i, p in enumerate(prims)} for cell in CELL_NAMES}

    t1 = load_or_measure(tmp_path, OPS, PRIMS, 2, 8, "cpu", measure=fake)
    t2 = load_or_measure(tmp_path, OPS, PRIMS, 2, 8, "cpu", measure=fake)
    assert t1 == t2 and len(calls) == 1
    saved = json.loads((tmp_path / LATENCY_FILE).read_text())
    assert saved["settings"]["channels"] == 2 and saved["latency_ms"] == t1
    load_or_measure(tmp_path, OPS, PRIMS, 3, 8, "cpu", measure=fake)  # other channels: measured again
    assert calls == [2, 3]
    (tmp_path / LATENCY_FILE).write_text("{not json")
    load_or_measure(tmp_path, OPS, PRIMS, 3, 8, "cpu", measure=fake)
    assert len(calls) == 3


def test_record_reused_only_when_settings_match():
    calls = []

    def fake(ops, prims, C, size, device, repeats):
        calls.append(C)
        return {cell: {p: float(i + 1) for i, p in enumerate(prims)} for cell in CELL_NAMES}

    rec, measured = reuse_or_measure(None, OPS, PRIMS, 2, 8, "cpu", measure=fake)
    assert measured and rec["settings"]["channels"] == 2 and rec["latency_ms"]["scale1"]["slow"] == 2.0
    again, measured = reuse_or_measure(json.loads(json.dumps(rec)), OPS, PRIMS, 2, 8, "cpu", measure=fake)
    assert not measured and again == rec and calls == [2]
    _, measured = reuse_or_measure(rec, OPS, PRIMS, 2, 16, "cpu", measure=fake)  # other size
    assert measured
    broken = {"settings": rec["settings"], "latency_ms": {"scale1": {"fast": 1.0}}}
    assert reuse_or_measure(broken, OPS, PRIMS, 2, 8, "cpu", measure=fake)[1]
    assert calls == [2, 2, 2]


def test_expected_latency_value_and_gradient():
    net = FusionSearchNet(OPS, PRIMS, C=2).double()
    table = {cell: {"fast": 0.1 * (k + 1), "slow": 4.0 * (k + 1), "conv": 1.5} for k, cell in enumerate(CELL_NAMES)}
    lat = expected_latency(net.edge_weights(), table, PRIMS)
    manual = 0.0
    for cell in CELL_NAMES:
        w = torch.softmax(net.alphas[cell].detach(), -1)
        for e in range(w.shape[0]):
            for j, p in enumerate(PRIMS):
                manual += float(w[e, j]) * table[cell][p]
    assert abs(float(lat.detach()) - manual) < 1e-12
    lat.backward()
    a = net.alphas[CELL_NAMES[0]]
    # d/d alpha_j of sum_k softmax_k l_k = softmax_j (l_j - E[l])
    w = torch.softmax(a.detach(), -1)
    l = torch.tensor([table[CELL_NAMES[0]][p] for p in PRIMS], dtype=torch.float64)
    closed = w * (l - (w * l).sum(-1, keepdim=True))
    assert torch.allclose(a.grad, closed, atol=1e-12)


def test_measure_latency_of_a_network():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(()))
            self.s = Sleep(2.0)

        def forward(self, ir, vi):
            return self.s(ir + vi + self.p)

    assert measure_latency(Net(), 8, 8, repeats=3, warmup=1) >= 1.5
