"""``BilevelLoop(reduce=...)`` over 2 spawned gloo processes, each on half the rows of the ridge toy:
every method keeps the processes' variables (and a joint method's state) identical; darts1, linear
in the batch loss, equals one process on all the rows."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from bilevel import BilevelLoop
from commands.distributed import World
from tests.toys import ridge

METHODS = ("darts1", "darts2", "cg", "iaptt", "f2sa")
STEPS = 3


def _run(method: str, rank: int, world: int, reduce) -> dict[str, torch.Tensor]:
    """``STEPS`` loop steps on process ``rank``'s rows; the variables (and f2sa's state) at the end."""
    toy = ridge(n=40, m=30, d=5, seed=0, solved=False)
    lower = (toy.Xt[rank::world], toy.yt[rank::world])
    upper = (toy.Xv[rank::world], toy.yv[rank::world])
    loop = BilevelLoop(toy.problem(), method, torch.optim.Adam([toy.lam], lr=0.05),
                       torch.optim.SGD([toy.w], lr=0.1, momentum=0.9), reduce=reduce)
    for _ in range(STEPS):
        loop.step(lower, upper)
    out = {"lam": toy.lam.detach().clone(), "w": toy.w.detach().clone()}
    out.update({f"aux/{k}": v.clone() for k, v in (getattr(loop.method, "aux", None) or {}).items()})
    return out


def _worker(rank: int, world: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        average = World(rank=rank, size=world, backend="gloo").average
        results = {m: _run(m, rank, world, average) for m in METHODS}
        results["darts1 without reduce"] = _run("darts1", rank, world, None)
        torch.save(results, Path(folder) / f"{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_reduce_keeps_processes_identical_and_darts1_equals_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"{r}.pt", weights_only=True) for r in (0, 1))
    for method in METHODS:
        assert r0[method].keys() == r1[method].keys()
        for k in r0[method]:
            assert torch.equal(r0[method][k], r1[method][k]), (method, k)
    assert "aux/w" in r0["f2sa"]  # the joint method's auxiliary state is averaged too
    assert not torch.equal(r0["darts1 without reduce"]["w"], r1["darts1 without reduce"]["w"])  # shards differ
    assert not torch.equal(r0["cg"]["lam"], _run("cg", 0, 1, None)["lam"])  # cg: not the whole batch's
    whole = _run("darts1", 0, 1, None)  # one process, all rows (darts1 is d_x F: zero for the ridge's lam)
    for k in ("lam", "w"):
        torch.testing.assert_close(r0["darts1"][k], whole[k], rtol=0, atol=1e-12)
