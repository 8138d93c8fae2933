"""The few-shot network, its adaptation and the task's meta-learning pieces, against plain autograd."""
import copy

import pytest
import torch
import torch.nn.functional as F

from fewshot.model import FewShotNet, accuracy, adapt
from fewshot.task import FewShotTask
from tasks.meta import MetaInit, episode_tasks


def _support(n: int = 6, channels: int = 1, size: int = 16, ways: int = 3, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(n, channels, size, size, generator=g), "label": torch.arange(n) % ways}


def test_shapes_and_batch_statistics():
    net = FewShotNet(3, 4, 5, 84)
    assert net.head.in_features == 4 * 5 * 5  # 84 -> 42 -> 21 -> 10 -> 5
    assert net(torch.rand(2, 3, 84, 84)).shape == (2, 5)
    assert not list(net.buffers())  # batch statistics always: no running statistics to leak between episodes
    with pytest.raises(ValueError, match="too small"):
        FewShotNet(1, 4, 5, 8)


def test_adapt_equals_sgd_steps_taken_by_hand():
    torch.manual_seed(0)
    net, sup = FewShotNet(1, 4, 3, 16), _support()
    params = adapt(net, sup, steps=2, lr=0.3, ways=3)
    ref = copy.deepcopy(net)
    opt = torch.optim.SGD(ref.parameters(), lr=0.3)
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(ref(sup["image"]), sup["label"]).backward()
        opt.step()
    for k, p in ref.named_parameters():
        torch.testing.assert_close(params[k], p.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(params["head.weight"], net.head.weight)  # the network itself is untouched


def test_adapt_replaces_a_wider_head_by_the_class_means_and_uses_learned_step_sizes():
    torch.manual_seed(0)
    wide, sup = FewShotNet(1, 4, 10, 16), _support()
    params = adapt(wide, sup, steps=0, lr=0.5, ways=3)
    assert params["head.weight"].shape == (3, wide.head.in_features)
    # before any step the head is the nearest-class-mean classifier: logits + ||f||^2 = -||f - mu_c||^2 + ...
    features = wide.body(sup["image"]).flatten(1).detach()
    mu = torch.stack([features[sup["label"] == c].mean(0) for c in range(3)])
    logits = torch.func.functional_call(wide, params, (sup["image"],))
    expected = -torch.cdist(features, mu) ** 2 + (features ** 2).sum(1, keepdim=True)
    torch.testing.assert_close(logits, expected, rtol=1e-4, atol=1e-4)
    meta = FewShotNet(1, 4, 3, 16, step_sizes=True)
    rates = meta.rates()
    for i, (name, p) in enumerate(meta.named_parameters()):
        getattr(meta, f"rate_{i}").copy_(torch.full_like(p, 0.01 * (i + 1)))
    steps = adapt(meta, sup, steps=1, lr=123.0, ways=3)  # lr unused: every parameter has a rate
    leaves = {k: p.detach().clone().requires_grad_() for k, p in meta.named_parameters()}
    loss = F.cross_entropy(torch.func.functional_call(meta, leaves, (sup["image"],)), sup["label"])
    grads = torch.autograd.grad(loss, list(leaves.values()))
    for (k, p), g in zip(leaves.items(), grads):
        torch.testing.assert_close(steps[k], p.detach() - rates[k] * g, rtol=1e-5, atol=1e-7)


def test_accuracy_counts_right_queries():
    net = FewShotNet(1, 4, 3, 16)
    params = dict(net.named_parameters())
    query = _support(9)
    pred = net(query["image"]).argmax(1)
    assert accuracy(net, params, query) == pytest.approx(100.0 * float((pred == query["label"]).float().mean()))


def test_meta_init_names_and_episode_split():
    net = FewShotNet(1, 4, 3, 16)
    init = MetaInit(net, rates=0.2)
    upper = init.upper()
    names = [k for k, _ in net.named_parameters()]
    assert set(upper) == {f"init/{k}" for k in names} | {f"lr/{k}" for k in names}
    assert all(float(upper[f"lr/{k}"].flatten()[0]) == pytest.approx(0.2) for k in names)
    batch = {"support": {"image": torch.rand(2, 6, 1, 16, 16), "label": torch.zeros(2, 6, dtype=torch.long)},
             "query": {"image": torch.rand(2, 9, 1, 16, 16), "label": torch.ones(2, 9, dtype=torch.long)},
             "name": ["a", "b"]}
    lower, upper_batches = FewShotTask().search_batches(batch, batch, FewShotTask().settings("search"))
    assert len(lower) == len(upper_batches) == 2
    assert torch.equal(lower[1]["image"], batch["support"]["image"][1])
    assert upper_batches[0]["label"].shape == (9,)
    assert episode_tasks(batch, "query")[1]["image"].shape == (9, 1, 16, 16)
