"""benchmarks/meta_vmap.py computes the same meta-gradient on both sides: its torch.func vmap (and
torch.func loop) against our ``maml`` and ``fomaml`` on a ``Tasks`` meta-batch, on a tiny Conv4
(float64), so that the timings it prints compare the same computation."""
import pytest
import torch

from benchmarks import meta_vmap

DT = torch.float64


def _setup(tasks: int = 3):
    model = meta_vmap.conv4(filters=3, ways=3, size=8, blocks=2, dtype=DT)
    eps = meta_vmap.episodes(tasks, ways=3, shots=2, queries=2, size=8, dtype=DT, seed=5)
    return model, eps


@pytest.mark.parametrize("method", ["maml", "fomaml"])
def test_vmap_meta_gradient_is_ours(method):
    model, eps = _setup()
    steps, lr = 2, 0.4
    ref = meta_vmap.ours(meta_vmap.problem(model), method, eps, steps, lr)
    theta = meta_vmap.theta_of(model)
    first_order = method == "fomaml"
    assert set(ref) == set(theta)
    assert meta_vmap.rel_diff(meta_vmap.vmapped(model, steps, lr, first_order)(theta, eps), ref) < 1e-12
    assert meta_vmap.rel_diff(meta_vmap.func_loop(model, steps, lr, first_order)(theta, eps), ref) < 1e-12
    # the mean over the tasks, not one task's gradient
    one = meta_vmap.ours(meta_vmap.problem(model), method, tuple(t[:1] for t in eps), steps, lr)
    assert meta_vmap.rel_diff(one, ref) > 1e-3


def test_maml_and_fomaml_differ():
    """The two methods are distinct computations here (the check above would not confuse them)."""
    model, eps = _setup()
    theta = meta_vmap.theta_of(model)
    full = meta_vmap.vmapped(model, 2, 0.4, first_order=False)(theta, eps)
    first = meta_vmap.vmapped(model, 2, 0.4, first_order=True)(theta, eps)
    assert meta_vmap.rel_diff(first, full) > 1e-3


def test_rel_diff_is_over_all_tensors():
    b = {"w": torch.tensor([3.0, 4.0], dtype=DT), "bias": torch.tensor([1e-16], dtype=DT)}
    a = {"w": b["w"], "bias": torch.tensor([-1e-16], dtype=DT)}
    assert meta_vmap.rel_diff(a, b) < 1e-16  # a per-tensor ratio would be 2 on the bias
