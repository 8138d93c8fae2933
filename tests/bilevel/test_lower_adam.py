"""Adam and AdamW lower optimizers: the differentiable rule against ``torch.optim`` and the
hypergradients of the unrolled and one-step methods against a hand-written Adam unroll."""
import pytest
import torch

import bilevel
from bilevel.lower_step import rule_for
from tests.toys import DT, TinyNet, rel_err, tiny_net

OPTIMIZERS = {
    "adam": (torch.optim.Adam, {"lr": 0.05}),
    "adam_wd_amsgrad": (torch.optim.Adam, {"lr": 0.05, "weight_decay": 0.05, "amsgrad": True, "betas": (0.8, 0.9)}),
    "adamw": (torch.optim.AdamW, {"lr": 0.05, "weight_decay": 0.1, "eps": 1e-3}),
}


def warmed(net: TinyNet, kind: str, steps: int = 2) -> torch.optim.Optimizer:
    """The lower optimizer after ``steps`` steps on ``f`` (non-zero moments, step count ``steps``)."""
    cls, kwargs = OPTIMIZERS[kind]
    opt = cls([net.w, net.b], **kwargs)
    for _ in range(steps):
        opt.zero_grad()
        net.f(net.w, net.b, net.lam.detach(), net.lower_batch).backward()
        opt.step()
    return opt


def adam_by_hand(opt: torch.optim.Optimizer, ys: list, direction, steps: int, detach_after: int = 0) -> list:
    """The trajectory ``[y_0, ..., y_steps]`` of Adam/AdamW written from the algorithm, from ``opt``'s
    state. ``direction(t, ys) -> grads`` (with graph); state and ``y`` are cut from the graph after
    ``detach_after`` steps."""
    grp = opt.param_groups[0]
    (b1, b2), lr, eps, wd = grp["betas"], grp["lr"], grp["eps"], grp["weight_decay"]
    decoupled = isinstance(opt, torch.optim.AdamW)
    st = []
    for p in (opt.param_groups[0]["params"]):
        s = opt.state[p]
        st.append([s["exp_avg"].clone(), s["exp_avg_sq"].clone(), s.get("max_exp_avg_sq"), float(s["step"])])
    path = [ys]
    for t in range(steps):
        if t == detach_after and t > 0:
            ys = [y.detach().requires_grad_(True) for y in ys]
            st = [[m.detach(), v.detach(), None if u is None else u.detach(), n] for m, v, u, n in st]
        gs = direction(t, ys)
        new = []
        for i, (y, g) in enumerate(zip(ys, gs)):
            m, v, vmax, n = st[i]
            n += 1
            if wd and not decoupled:
                g = g + wd * y
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            if vmax is not None:
                vmax = torch.maximum(vmax, v)
            m_hat, v_hat = m / (1 - b1 ** n), (v if vmax is None else vmax) / (1 - b2 ** n)
            update = lr * m_hat / (v_hat.sqrt() + eps)
            new.append(y - lr * wd * y - update if decoupled else y - update)
            st[i] = [m, v, vmax, n]
        ys = new
        path.append(ys)
    return path


def lower_grad(net: TinyNet, lam: torch.Tensor):
    return lambda t, ys: list(torch.autograd.grad(net.f(*ys, lam, net.lower_batch), ys, create_graph=True))


def start(net: TinyNet) -> list:
    return [net.w.detach().clone().requires_grad_(True), net.b.detach().clone().requires_grad_(True)]


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_rule_step_is_the_optimizers_step(kind):
    net = tiny_net()
    opt = warmed(net, kind, steps=3)
    lower = {"w": net.w, "b": net.b}
    for _ in range(3):  # from the warmed state, three steps side by side
        y = {k: v.detach().clone().requires_grad_(True) for k, v in lower.items()}
        loss = net.f(y["w"], y["b"], net.lam.detach(), net.lower_batch)
        g = dict(zip(y, torch.autograd.grad(loss, list(y.values()))))
        rule = rule_for(opt, lower, None, "test")
        y_next, state = rule.step(y, g, rule.initial_state())
        opt.zero_grad()
        net.f(net.w, net.b, net.lam.detach(), net.lower_batch).backward()
        opt.step()
        for k, p in lower.items():
            assert torch.equal(y_next[k], p.detach())
            assert torch.equal(state["exp_avg_sq/" + k], opt.state[p]["exp_avg_sq"])
            assert state["step/" + k] == int(opt.state[p]["step"])


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
@pytest.mark.parametrize("method", ["rad", "trad", "fad", "bda", "iaptt"])
def test_unrolled_hypergradient_with_adam_is_the_hand_written_unroll(method, kind):
    net = tiny_net()
    opt = warmed(net, kind)
    saved = {id(p): {k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for p, s in opt.state.items()}
    steps, lam = 5, net.lam.detach().clone().requires_grad_(True)
    options = {"steps": steps, "lr": None}
    direction, detach_after = lower_grad(net, lam), 0
    if method == "trad":
        options["truncate"], detach_after = 2, 3
    if method == "iaptt":
        options["auxiliary_init"] = False
    if method == "bda":
        options.update(upper_lr=0.02, mu=0.5)
        s_l = opt.param_groups[0]["lr"]

        def direction(t, ys):  # (mu_t s_u / s_l) grad F + (1 - mu_t) grad f
            mu = 0.5 / (t + 1)
            total = mu * 0.02 / s_l * net.F(*ys, lam, net.upper_batch) + (1 - mu) * net.f(*ys, lam, net.lower_batch)
            return list(torch.autograd.grad(total, ys, create_graph=True))
    path = adam_by_hand(opt, start(net), direction, steps, detach_after)
    uppers = [net.F(*ys, lam, net.upper_batch) for ys in path[1:]]
    upper = uppers[int(torch.argmax(torch.stack(uppers).detach()))] if method == "iaptt" else uppers[-1]
    expected = torch.autograd.grad(upper, lam)[0]
    g = bilevel.hypergradient(net.problem(), method, net.lower_batch, net.upper_batch, lower_optimizer=opt, **options)
    assert rel_err(g["lam"], expected) < 1e-11
    for p, s in opt.state.items():  # the optimizer's state is left as it was
        for k, v in s.items():
            assert torch.equal(v, saved[id(p)][k]) if torch.is_tensor(v) else v == saved[id(p)][k]


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
def test_darts2_with_adam_is_the_derivative_through_the_virtual_step(kind):
    net = tiny_net()
    opt = warmed(net, kind)
    lam = net.lam.detach().clone().requires_grad_(True)
    y_virtual = adam_by_hand(opt, start(net), lower_grad(net, lam), 1)[1]
    expected = torch.autograd.grad(net.F(*y_virtual, lam, net.upper_batch), lam)[0]
    exact = bilevel.hypergradient(net.problem(), "darts2", net.lower_batch, net.upper_batch, lower_optimizer=opt,
                                  hvp="exact")
    assert rel_err(exact["lam"], expected) < 1e-12
    fd = bilevel.hypergradient(net.problem(), "darts2", net.lower_batch, net.upper_batch, lower_optimizer=opt)
    assert rel_err(fd["lam"], expected) < 1e-10  # grad_x f is quadratic in y here: the difference is exact
    first_order = bilevel.hypergradient(net.problem(), "darts2", net.lower_batch, net.upper_batch,
                                        lower_optimizer=opt, xi=0.0)
    assert rel_err(first_order["lam"], expected) > 1e-3  # the second-order term matters here


def test_zero_second_moment_keeps_the_hypergradient_finite_and_exact():
    """A feature that is zero in every sample leaves its weight's gradient exactly 0 (Adam's
    ``v = 0``): its decay gets gradient 0, the others that of the problem without that feature."""
    g = torch.Generator().manual_seed(3)
    X, Xv = torch.randn(12, 3, generator=g, dtype=DT), torch.randn(10, 3, generator=g, dtype=DT)
    X[:, 2] = 0.0
    t, tv = torch.randn(12, generator=g, dtype=DT), torch.randn(10, generator=g, dtype=DT)

    def f(w, lam, batch):
        A, y = batch
        return ((A @ w - y) ** 2).mean() / 2 + 0.5 * (lam.exp() * w * w).sum()

    def F(w, lam, batch):
        A, y = batch
        return ((A @ w - y) ** 2).mean() / 2

    w = torch.tensor([0.3, -0.2, 0.0], dtype=DT, requires_grad=True)
    lam = torch.full((3,), -1.0, dtype=DT, requires_grad=True)
    problem = bilevel.BilevelProblem(lower={"w": w}, upper={"lam": lam},
                                     lower_loss=lambda lo, up, b: f(lo["w"], up["lam"], b),
                                     upper_loss=lambda lo, up, b: F(lo["w"], up["lam"], b))
    opt = torch.optim.Adam([w], lr=0.1)
    got = bilevel.hypergradient(problem, "rad", (X, t), (Xv, tv), lower_optimizer=opt, steps=6, lr=None)["lam"]
    assert torch.isfinite(got).all()
    # the reduced problem (features 0, 1 only), by hand: no zero moment there
    lam2 = lam.detach()[:2].clone().requires_grad_(True)
    y = w.detach()[:2].clone().requires_grad_(True)
    m = v = torch.zeros(2, dtype=DT)
    for n in range(1, 7):
        gy = torch.autograd.grad(f(y, lam2, (X[:, :2], t)), y, create_graph=True)[0]
        m, v = 0.9 * m + 0.1 * gy, 0.999 * v + 0.001 * gy * gy
        y = y - 0.1 * (m / (1 - 0.9 ** n)) / ((v / (1 - 0.999 ** n)).sqrt() + 1e-8)
    expected = torch.autograd.grad(F(y, lam2, (Xv[:, :2], tv)), lam2)[0]
    assert rel_err(got[:2], expected) < 1e-12
    assert got[2] == 0.0


def test_unsupported_adam_settings_are_clear_errors():
    net = tiny_net()
    opt = torch.optim.Adam([net.w, net.b], lr=0.1, maximize=True)
    with pytest.raises(NotImplementedError, match="maximize"):
        bilevel.hypergradient(net.problem(), "rad", net.lower_batch, net.upper_batch, lower_optimizer=opt)
    opt = torch.optim.Adam([{"params": [net.w]}, {"params": [net.b], "betas": (0.5, 0.9)}], lr=0.1)
    with pytest.raises(NotImplementedError, match="different settings"):
        bilevel.hypergradient(net.problem(), "rad", net.lower_batch, net.upper_batch, lower_optimizer=opt)
