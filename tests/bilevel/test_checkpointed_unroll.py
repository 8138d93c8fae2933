"""``checkpoint_every``: the unrolled methods recompute trajectory segments in the backward pass,
with the same hypergradient and less memory kept for backward."""
import pytest
import torch

import bilevel
from bilevel.base import OptionError
from bilevel.memory import saved_tensor_bytes
from tests.toys import TinyNet, rel_err, tiny_net

STEPS = 7
METHODS = {
    "rad": {},
    "trad": {"truncate": 5},
    "bda": {"upper_lr": 0.05, "mu": 0.4},
    "iaptt": {"auxiliary_init": True},
}


def lower_optimizer(net: TinyNet, kind: str) -> torch.optim.Optimizer | None:
    """None (plain steps), SGD with momentum or Adam, each after two steps on ``f``."""
    if kind == "plain":
        return None
    opt = (torch.optim.SGD([net.w, net.b], lr=0.1, momentum=0.9, weight_decay=0.01) if kind == "sgd"
           else torch.optim.Adam([net.w, net.b], lr=0.05, weight_decay=0.01))
    for _ in range(2):
        opt.zero_grad()
        net.f(net.w, net.b, net.lam.detach(), net.lower_batch).backward()
        opt.step()
    return opt


def run(method: str, kind: str, every: int | None, steps: int = STEPS) -> bilevel.Hypergradient:
    net = tiny_net()
    problem = net.problem()
    m = bilevel.make_method(method, {"steps": steps, "lr": 0.1, "checkpoint_every": every, **METHODS[method]})
    opt = lower_optimizer(net, kind)
    return bilevel.hypergradient(problem, m, net.lower_batch, net.upper_batch, lower_optimizer=opt)


@pytest.mark.parametrize("kind", ["plain", "sgd", "adam"])
@pytest.mark.parametrize("method", list(METHODS))
def test_checkpointed_hypergradient_equals_the_whole_graph(method, kind):
    whole = run(method, kind, None)
    for every in (1, 3):
        cut = run(method, kind, every)
        assert set(cut) == set(whole)
        for k in whole:
            assert rel_err(cut[k], whole[k]) < 1e-12, (k, every)
        assert cut.diagnostics["upper_loss"] == whole.diagnostics["upper_loss"]
    assert torch.equal(run(method, kind, STEPS)["lam"], whole["lam"])  # one segment: today's computation


def test_iaptt_initial_point_gets_its_gradient_through_the_checkpoints():
    whole, cut = run("iaptt", "adam", None), run("iaptt", "adam", 2)
    assert whole.diagnostics["pessimistic_step"] > 2  # several segments are differentiated
    key = "iaptt_init/w"
    assert whole[key].abs().max() > 0
    assert rel_err(cut[key], whole[key]) < 1e-12


def test_checkpoints_bound_the_memory_kept_for_backward():
    peaks = {}
    for every in (None, 4):
        with saved_tensor_bytes() as meter:
            run("rad", "adam", every, steps=16)
        peaks[every] = meter.peak
    assert peaks[4] < 0.45 * peaks[None]  # 4 steps of graph (+ one step's gradient) instead of 16


def test_checkpoint_every_is_validated():
    with pytest.raises(OptionError, match="checkpoint_every"):
        bilevel.make_method("rad", {"checkpoint_every": 0})
    with pytest.raises(OptionError, match="checkpoint_every"):
        bilevel.make_method("bda", {"checkpoint_every": 2.5})
    with pytest.raises(OptionError, match="no option 'checkpoint_every'"):
        bilevel.make_method("fad", {"checkpoint_every": 2})
