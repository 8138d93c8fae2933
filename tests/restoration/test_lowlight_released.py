"""RUAS's released weight files: recognised by names and shapes, mapped onto RUASNet, checked against a
forward pass written here from RUAS's published structure (its own tensor names, no code of ours)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from commands.errors import UserError, run
from commands.evaluate import main as evaluate_main
from commands.models import build_model, load_init, read_init, read_model
from tasks.registry import get_task
from datasets.io import read_image
from restoration.lowlight.released import ruas_released
from restoration.metrics import psnr, ssim

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT / ".." / "shared" / "data" / "real"
RUAS_DIR = REAL / "released" / "ruas"
#: The LOL eval15 pair 778 (wyf0912/LLFlow @ acabea1: img/778_input.png, img/778.png) as low/ and high/.
LOL778 = REAL / "lowlight" / "LOL778"

# RUAS's genotypes.py: the op of each edge c1_d, c1_r, c2_d, c2_r, c3_d, c3_r, c4.
IEM = ["skip_connect", "resconv_1x1", "resdilconv_3x3", "conv_3x3", "conv_3x3", "skip_connect", "conv_3x3"]
NRM = ["resconv_1x1", "resconv_1x1", "resdilconv_3x3", "skip_connect", "resconv_1x1", "resconv_1x1", "skip_connect"]
EDGES = ["c1_d", "c1_r", "c2_d", "c2_r", "c3_d", "c3_r", "c4"]


def _ruas_state(stages: int = 3, cells: int = 3, channels: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random state dict under RUAS's names (``Network`` of its model.py)."""
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, c_out: int, c_in: int, k: int) -> None:
        state[f"{name}.weight"] = 0.2 * torch.randn(c_out, c_in, k, k, generator=g)
        state[f"{name}.bias"] = 0.1 * torch.randn(c_out, generator=g)

    def block(prefix: str, ops: list[str], c: int) -> None:
        for edge, op in zip(EDGES, ops):
            if op != "skip_connect":
                conv(f"{prefix}.{edge}.op", c, c, 1 if op.endswith("1x1") else 3)
        conv(f"{prefix}.c5", c, 4 * c, 1)

    for k in range(stages):
        block(f"enhance_net.iems.{k}.cell", IEM, 3)
    conv("denoise_net.stem", channels, 3, 3)
    for k in range(cells):
        block(f"denoise_net.nrms.{k}", NRM, channels)
    conv("denoise_net.activate.0", 3, channels, 3)
    return state


def _block(x: torch.Tensor, s: dict[str, torch.Tensor], prefix: str, ops: list[str]) -> torch.Tensor:
    """RUAS's SearchBlock: distilled/refined chains fused by c5 (LeakyReLU 0.05)."""
    def edge(i: int, h: torch.Tensor) -> torch.Tensor:
        op = ops[i]
        if op == "skip_connect":
            return h
        w, b = s[f"{prefix}.{EDGES[i]}.op.weight"], s[f"{prefix}.{EDGES[i]}.op.bias"]
        dil = 2 if "dil" in op else 1
        out = F.conv2d(h, w, b, padding=dil * (w.shape[-1] // 2), dilation=dil)
        return out + h if op.startswith("res") else out

    act = lambda t: F.leaky_relu(t, 0.05)  # noqa: E731
    d1, r1 = act(edge(0, x)), act(edge(1, x) + x)
    d2, r2 = act(edge(2, r1)), act(edge(3, r1) + r1)
    d3, r3 = act(edge(4, r2)), act(edge(5, r2) + r2)
    d4 = act(edge(6, r3))
    return F.conv2d(torch.cat([d1, d2, d3, d4], 1), s[f"{prefix}.c5.weight"], s[f"{prefix}.c5.bias"])


def _ruas_forward(s: dict[str, torch.Tensor], y: torch.Tensor, stages: int = 3, cells: int = 3) -> dict:
    """RUAS's Network.forward from its raw tensors: ``{"u": IEM output, "out": u - n}``."""
    def localmax(x: torch.Tensor) -> torch.Tensor:
        p = F.pad(x, (0, 1, 0, 1))
        return torch.stack([p[..., :-1, :-1], p[..., 1:, :-1], p[..., :-1, 1:], p[..., 1:, 1:]]).amax(0)

    u = y
    for k in range(stages):
        t_hat = localmax(y) if k == 0 else localmax(u) - 0.5 * (u - y)
        t = torch.sigmoid(_block(t_hat, s, f"enhance_net.iems.{k}.cell", IEM)).clamp(0.001, 1.0)
        u = (y / t).clamp(0.0, 1.0)
    feat = F.conv2d(u, s["denoise_net.stem.weight"], s["denoise_net.stem.bias"], padding=1)
    for k in range(cells):
        feat = _block(feat, s, f"denoise_net.nrms.{k}", NRM)
    n = F.conv2d(feat, s["denoise_net.activate.0.weight"], s["denoise_net.activate.0.bias"], padding=1)
    return {"u": u, "out": u - n}


def _save(tmp_path: Path, name: str, obj: object) -> Path:
    path = tmp_path / name
    torch.save(obj, path)
    return path


def test_ruas_named_weights_map_onto_the_network_and_give_ruas_outputs(tmp_path):
    state = _ruas_state()
    path = _save(tmp_path, "lol.pt", state)
    ckpt, task, s = read_model(path)
    assert "IEM 3 stages + NRM 3 cells of 6 channels" in ckpt["released"] and s.output == "out"
    net = build_model(task, s, ckpt, path).eval()
    y = torch.rand(2, 3, 16, 20, generator=torch.Generator().manual_seed(1)) * 0.3
    with torch.no_grad():
        ours, ref = net(y), _ruas_forward(state, y)
    torch.testing.assert_close(ours["out"], ref["out"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours["u"], ref["u"], rtol=1e-5, atol=1e-6)


def test_sizes_are_read_off_the_file_and_upe_publishes_u(tmp_path):
    state = _ruas_state(stages=2, cells=1, channels=4)
    found = ruas_released(state, str(_save(tmp_path, "upe.pt", state)))
    assert found is not None and found.settings == {"iem_stages": 2, "nrm_cells": 1, "nrm_channels": 4, "output": "u"}
    task = get_task("lowlight")
    net = task.build_network(found.result, task.settings("train").replace(found.settings))
    y = torch.rand(1, 3, 12, 12)
    net.load_state_dict(found.state_dict)
    with torch.no_grad():
        torch.testing.assert_close(net(y)["u"], _ruas_forward(state, y, 2, 1)["u"], rtol=1e-5, atol=1e-6)


def test_denoise_only_file_initialises_the_nrm_and_cannot_be_evaluated(tmp_path):
    full = _ruas_state()
    nrm = {k[len("denoise_net."):]: v for k, v in full.items() if k.startswith("denoise_net.")}
    path = _save(tmp_path, "denoise.pt", nrm)
    with pytest.raises(UserError, match=r"NRM \(its denoising module\) only.*train.py --init"):
        read_model(path)
    task = get_task("lowlight")
    init = read_init(path, task)
    assert not init.complete and len(init.state_dict) == 40
    net = task.build_network(init.result, task.settings("train"))
    before = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("iem.")}
    assert load_init(net, init) == "40 of 76 tensors (the rest from scratch)"
    after = net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    torch.testing.assert_close(after["nrm.head.weight"], full["denoise_net.activate.0.weight"])


def test_wrong_files_get_one_line_errors(tmp_path, capsys):
    bad_kernel = _ruas_state()
    bad_kernel["enhance_net.iems.0.cell.c4.op.weight"] = torch.zeros(3, 3, 1, 1)
    cases = {
        "other.pt": ({"encoder.conv1.weight": torch.zeros(2, 3, 3, 3)}, "not released weights any task recognises"),
        "kernel.pt": (bad_kernel, "do not fit the ruas_reference genotype"),
        "tensor.pt": (torch.zeros(3), "holds a tensor of shape [3]"),
    }
    for name, (obj, message) in cases.items():
        path = _save(tmp_path, name, obj)
        assert run(evaluate_main, ["--checkpoint", str(path), "--out", str(tmp_path / "e")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and str(path) in err, err


def test_init_refuses_weights_of_another_genotype(tmp_path, capsys):
    from commands.train import main as train_main
    path = _save(tmp_path, "lol.pt", _ruas_state())
    genotype = tmp_path / "g.json"
    g = json.loads((ROOT / "restoration" / "lowlight" / "ruas_reference.json").read_text())
    g["iem"][3][0] = "dilconv_3x3"  # same kernel shape, another op
    genotype.write_text(json.dumps(g))
    args = ["--task", "lowlight", "--init", str(path), "--genotype", str(genotype), "--out", str(tmp_path / "t")]
    assert run(train_main, args) == 2
    assert "holds weights of another genotype" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


needs_ruas = pytest.mark.skipif(not RUAS_DIR.is_dir(), reason="RUAS's released files are not in ../shared/data/real")


@needs_ruas
def test_released_files_are_recognised():
    task = get_task("lowlight")
    for name, output in (("lol", "out"), ("upe", "u"), ("dark", "u")):
        init = read_init(RUAS_DIR / f"{name}.pt", task)
        assert init.complete and len(init.state_dict) == 76 and init.settings["output"] == output
        assert sum(v.numel() for v in init.state_dict.values()) == 3438
    init = read_init(RUAS_DIR / "denoise.pt", task)
    assert not init.complete and len(init.state_dict) == 40


@needs_ruas
def test_released_lol_weights_on_a_real_low_light_photograph():
    """lol.pt on a DICM photograph (crop): our network equals RUAS's forward pass on the raw tensors."""
    raw = torch.load(RUAS_DIR / "lol.pt", map_location="cpu", weights_only=True)
    ckpt, task, s = read_model(RUAS_DIR / "lol.pt")
    net = build_model(task, s, ckpt, "lol.pt").eval()
    image = read_image(REAL / "lowlight" / "DICM8" / "01.jpg")[None]
    top, left = image.shape[-2] // 2 - 48, image.shape[-1] // 2 - 64
    y = image[..., top:top + 96, left:left + 128]
    with torch.no_grad():
        ours, ref = net(y)["out"], _ruas_forward(raw, y)["out"]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert float(ours.clamp(0, 1).mean()) > 1.5 * float(y.mean())  # it brightens


@pytest.mark.skipif(not (RUAS_DIR.is_dir() and (LOL778 / "low" / "778.png").is_file()),
                    reason="RUAS's lol.pt or the LOL pair 778 is not in ../shared/data/real")
def test_released_lol_weights_score_as_published_on_lol_778(tmp_path):
    """RUAS's own code scores 14.77 dB / 0.405 on this pair after truncating its output to 8 bits."""
    assert run(evaluate_main, ["--checkpoint", str(RUAS_DIR / "lol.pt"), "--data", str(LOL778),
                               "--out", str(tmp_path / "e"), "--device", "cpu", "--save-images"]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["psnr"] == pytest.approx(14.843, abs=0.01) and metrics["ssim"] == pytest.approx(0.4096, abs=0.002)
    ckpt, task, s = read_model(RUAS_DIR / "lol.pt")
    low, high = read_image(LOL778 / "low" / "778.png")[None], read_image(LOL778 / "high" / "778.png")[None]
    with torch.no_grad():
        out = build_model(task, s, ckpt, "lol.pt").eval()(low)["out"].clamp(0, 1)
    truncated = torch.from_numpy(np.floor(out.numpy() * 255.0)) / 255.0  # RUAS's save_images: astype(uint8)
    assert float(psnr(truncated, high)[0]) == pytest.approx(14.77, abs=0.005)
    assert float(ssim(truncated, high)[0]) == pytest.approx(0.405, abs=0.001)


@pytest.mark.slow
def test_train_init_from_released_weights_takes_their_genotype_and_sizes(tmp_path, capsys):
    from commands.train import main as train_main

    path = _save(tmp_path, "lol.pt", _ruas_state())
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"synthetic_count": 8}))
    out = tmp_path / "T"
    assert run(train_main, ["--task", "lowlight", "--init", str(path), "--config", str(config), "--crop", "16",
                            "--batch-size", "2", "--max-steps", "1", "--device", "cpu", "--out", str(out)]) == 0
    assert "loaded all 76 tensors" in capsys.readouterr().out
    model = torch.load(out / "model.pt", weights_only=True)
    g = json.loads((ROOT / "restoration" / "lowlight" / "ruas_reference.json").read_text())
    assert model["genotype"]["iem"] == g["iem"] and model["init"]["path"] == str(path)
    assert (model["config"]["iem_stages"], model["config"]["nrm_cells"], model["config"]["nrm_channels"]) == (3, 3, 6)
