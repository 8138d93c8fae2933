"""Memory follows the theory; modules with BatchNorm; the loop's guards."""
import pytest
import torch
from torch import nn

import bilevel
from tests.toys import quadratic, ridge


def saved(method, **options):
    r = ridge(n=100, d=40, solved=False)
    with bilevel.saved_tensor_bytes() as meter:
        bilevel.hypergradient(r.problem(), method, *r.batches, **options)
    return meter.peak


def test_rad_keeps_the_trajectory_trad_only_its_tail():
    r10, r20 = saved("rad", steps=10, lr=0.1), saved("rad", steps=20, lr=0.1)
    assert r20 == pytest.approx(2 * r10, rel=0.05)
    assert saved("trad", steps=20, truncate=5, lr=0.1) == pytest.approx(saved("rad", steps=5, lr=0.1), rel=0.05)


def test_implicit_and_one_step_memory_does_not_grow_with_iterations():
    assert saved("cg", iters=3, tol=0.0) == saved("cg", iters=30, tol=0.0)
    assert saved("neumann", iters=3) == saved("neumann", iters=30)
    assert saved("darts2", hvp="exact") < saved("rad", steps=2, lr=0.1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.head = nn.Linear(3, 1)

    def forward(self, x):
        return self.head(self.bn(self.conv(x)).relu().mean((2, 3))).squeeze(1)


def bn_problem():
    torch.manual_seed(0)
    net = Net().double()
    log_wd = torch.zeros((), dtype=torch.float64, requires_grad=True)

    def lower_loss(lo, up, batch):
        x, y = batch
        return ((bilevel.call(net, lo, x) - y) ** 2).mean() + torch.exp(up["log_wd"]) * sum(
            (lo[k] ** 2).sum() for k in ("conv.weight", "head.weight"))

    def upper_loss(lo, up, batch):
        x, y = batch
        return ((bilevel.call(net, lo, x) - y) ** 2).mean()

    batch = (torch.randn(4, 2, 8, 8, dtype=torch.float64), torch.randn(4, dtype=torch.float64))
    return net, bilevel.BilevelProblem(lower=net, upper={"log_wd": log_wd}, lower_loss=lower_loss,
                                       upper_loss=upper_loss), batch


@pytest.mark.parametrize("method", ["darts2", "rad", "cg", "bda", "iaptt"])
def test_batchnorm_running_stats_untouched_by_hypergradient(method):
    net, problem, batch = bn_problem()
    assert set(problem.buffers) == {"bn.running_mean", "bn.running_var", "bn.num_batches_tracked"}
    before = {k: v.clone() for k, v in net.state_dict().items()}
    options = {} if method in ("darts2", "cg") else {"steps": 3}
    g = bilevel.hypergradient(problem, method, batch, batch, **options)
    assert torch.isfinite(g["log_wd"]).all()
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_batchnorm_exact_and_finite_difference_darts2_agree():
    _, problem, batch = bn_problem()
    a = bilevel.hypergradient(problem, "darts2", batch, batch, xi=0.05, hvp="exact")
    b = bilevel.hypergradient(problem, "darts2", batch, batch, xi=0.05)
    assert float((a["log_wd"] - b["log_wd"]).abs()) < 1e-6 * max(1.0, float(a["log_wd"].abs()))


def test_loop_lower_step_updates_running_stats_and_weights():
    net, problem, batch = bn_problem()
    loop = bilevel.BilevelLoop(problem, "darts2", torch.optim.Adam(problem.upper.values(), lr=0.01),
                               torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9), grad_clip=5.0)
    w0, m0 = net.conv.weight.detach().clone(), net.bn.running_mean.clone()
    stats = loop.step(batch, batch)
    assert not torch.equal(net.conv.weight.detach(), w0) and not torch.equal(net.bn.running_mean, m0)
    assert set(stats) >= {"step", "lower_loss", "upper_loss", "hypergrad_norm", "hypergrad_time_s"}


def test_loop_solves_the_quadratic_with_implicit_hypergradients():
    q = quadratic(seed=3)
    p = q.problem()
    loop = bilevel.BilevelLoop(p, "cg", torch.optim.SGD([q.x], lr=0.2), torch.optim.SGD([q.y], lr=0.3),
                               lower_steps=10)
    for _ in range(250):
        loop.step(None, None)
    assert q.exact().norm() < 1e-6  # stationary point of F(x, y*(x))


def test_loop_optimises_iaptt_initial_point():
    q = quadratic(seed=4)
    p = q.problem()
    upper = torch.optim.SGD([q.x], lr=0.05)
    loop = bilevel.BilevelLoop(p, "iaptt", upper, torch.optim.SGD([q.y], lr=0.1), method_options=dict(steps=4))
    loop.step(None, None)
    z = p.auxiliary["iaptt_init/y"]
    own = loop.auxiliary_optimizer  # the method's own optimizer, not the alphas'
    assert own is not upper and any(z is t for g in own.param_groups for t in g["params"])
    assert not any(z is t for g in upper.param_groups for t in g["params"])
    z0 = z.detach().clone()
    loop.step(None, None)
    assert not torch.equal(z.detach(), z0)


def test_nan_guard_names_step_and_loss():
    q = quadratic()
    p = q.problem()
    loop = bilevel.BilevelLoop(p, "darts1", torch.optim.SGD([q.x], lr=0.1), torch.optim.SGD([q.y], lr=0.1))
    loop.step(None, None)
    with torch.no_grad():
        q.y[0] = float("nan")
    with pytest.raises(bilevel.NonFiniteError, match="step 1: upper_loss is not finite"):
        loop.step(None, None)
