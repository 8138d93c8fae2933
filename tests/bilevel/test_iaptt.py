"""IAPTT-GM: memory follows the pessimistic step k*, the initial point's own optimizer, one
initial point for problems sharing lower variables, checkpointed state."""
import pytest
import torch

import bilevel
from tests.toys import quadratic, ridge


def peak(method, **options):
    r = ridge(n=100, d=40, solved=False)
    with bilevel.saved_tensor_bytes() as meter:
        g = bilevel.hypergradient(r.problem(), method, *r.batches, **options)
    return meter.peak, g.diagnostics


def test_saved_memory_follows_k_star_not_T():
    peaks = {}
    for T in (5, 40, 200):
        peaks[T], d = peak("iaptt", steps=T, lr=0.1)
        assert d["pessimistic_step"] == 1
    assert peaks[5] == peaks[40] == peaks[200]
    assert peaks[5] == peak("rad", steps=1, lr=0.1)[0]  # the graph of k* = 1 step, nothing more


@pytest.mark.parametrize("seed", [4, 32])  # seeds whose k* lies inside the trajectory
def test_saved_memory_equals_an_unroll_of_k_star_steps(seed):
    q = quadratic(seed=seed)
    with bilevel.saved_tensor_bytes() as meter:
        g = bilevel.hypergradient(q.problem(), "iaptt", None, None, steps=8, lr=0.3, auxiliary_init=False)
    k = g.diagnostics["pessimistic_step"]
    assert 1 < k < 8
    with bilevel.saved_tensor_bytes() as ref:
        bilevel.hypergradient(quadratic(seed=seed).problem(), "rad", None, None, steps=k, lr=0.3)
    assert meter.peak == ref.peak


def test_initial_point_has_its_own_optimizer():
    m = bilevel.make_method("iaptt", dict(init_lr=0.05, init_momentum=0.9))
    q = quadratic()
    p = q.problem()
    m.setup(p)
    opt = m.auxiliary_optimizer(list(p.auxiliary.values()))
    assert type(opt) is torch.optim.SGD
    assert opt.param_groups[0]["lr"] == 0.05 and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["weight_decay"] == 0
    adam = bilevel.make_method("iaptt", dict(init_optimizer="adam", init_lr=0.002))
    assert type(adam.auxiliary_optimizer([torch.zeros(2, requires_grad=True)])) is torch.optim.Adam
    assert bilevel.make_method("cg").auxiliary_optimizer([torch.zeros(1)]) is None
    with pytest.raises(bilevel.OptionError, match="init_optimizer"):
        bilevel.make_method("iaptt", dict(init_optimizer="rmsprop"))


def test_one_initial_point_for_groups_sharing_lower_variables():
    q = quadratic()
    p1 = q.problem()
    p2 = q.problem()  # a second group on the same lower tensor
    m = bilevel.make_method("iaptt", dict(steps=3))
    bilevel.hypergradient(p1, m, None, None)
    bilevel.hypergradient(p2, m, None, None)
    assert p1.auxiliary["iaptt_init/y"] is p2.auxiliary["iaptt_init/y"]
    other = bilevel.make_method("iaptt", dict(steps=3))
    p3 = quadratic(seed=9).problem()
    bilevel.hypergradient(p3, other, None, None)
    assert p3.auxiliary["iaptt_init/y"] is not p1.auxiliary["iaptt_init/y"]


def test_state_dict_restores_the_initial_point_before_the_first_call():
    q = quadratic()
    p = q.problem()
    m = bilevel.make_method("iaptt", dict(steps=3))
    m.setup(p)
    with torch.no_grad():
        p.auxiliary["iaptt_init/y"].add_(1.0)
    state = m.state_dict()
    fresh = bilevel.make_method("iaptt", dict(steps=3))
    fresh.load_state_dict(state)
    p2 = quadratic().problem()
    a = bilevel.hypergradient(p2, fresh, None, None)
    assert torch.equal(p2.auxiliary["iaptt_init/y"].detach(), p.auxiliary["iaptt_init/y"].detach())
    b = bilevel.hypergradient(p, m, None, None)
    assert torch.equal(a["x"], b["x"])
