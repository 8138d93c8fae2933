"""--amp, --channels-last, --compile: same results as float32/contiguous/eager within stated
tolerances (CPU), recorded for --resume, bad combinations as one-line errors."""
import json
import time

import pytest
import torch
from torch import nn

from commands.errors import UserError, run
from commands.evaluate import main as evaluate_main
from runtime.precision import Precision
from commands.search import main as search_main
from runtime.speed import CudaGraphs, Runner, channels_last_inputs
from commands.train import main as train_main
from restoration.lowlight.model import RUASNet
from restoration.lowlight.reference import RUAS_GENOTYPE
from restoration.lowlight.task import LowLightTask
from tasks import Scoring, SearchResult
from restoration.lowlight.genotype import RUAS_REFERENCE_PATH
from nas.genotype import Genotype

CPU = torch.device("cpu")
FAST = ["--task", "lowlight", "--batch-size", "2", "--crop", "16"]


def _ruas() -> RUASNet:
    torch.manual_seed(0)
    return RUASNet(**RUAS_GENOTYPE)


def _image(size: int = 32) -> torch.Tensor:
    return torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)) * 0.3


def _relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_bf16_train_step_matches_float32_loss_and_gradients():
    """One RUAS training step (L1 to a target) under bf16 autocast: loss within 2e-2 relative of
    float32, gradient direction within 1e-1 (cosine > 0.99); outputs come back float32."""
    net, x = _ruas(), _image()
    target = x.clamp(0.1, 1.0)
    results = {}
    for amp in (None, "bf16"):
        runner = Runner(net, Precision(amp, CPU))
        net.zero_grad()
        out = runner(x)["out"]
        assert out.dtype == torch.float32
        loss = (out - target).abs().mean()
        loss.backward()
        results[amp] = float(loss.detach()), torch.cat([p.grad.flatten() for p in net.parameters()])
    (l32, g32), (l16, g16) = results[None], results["bf16"]
    assert _relative(l16, l32) < 2e-2
    assert float(torch.nn.functional.cosine_similarity(g16, g32, dim=0)) > 0.99


def test_bf16_evaluation_matches_float32_metrics():
    """The low-light task's evaluation of a batch under bf16 autocast: PSNR and SSIM within 2e-2
    relative of float32."""
    task = LowLightTask()
    s = task.settings("train")
    net = task.build_network(SearchResult(genotype=Genotype.load(RUAS_REFERENCE_PATH)), s).eval()
    batch = {"input": _image(), "target": _image().clamp(0.2, 1.0), "name": ["a.png", "b.png"]}
    records = {amp: task.evaluate_batch(Runner(net, Precision(amp, CPU)), batch, s, Scoring())[0]
               for amp in (None, "bf16")}
    for r32, r16 in zip(records[None], records["bf16"]):
        for key in ("psnr", "ssim"):
            assert _relative(r16[key], r32[key]) < 2e-2, key


def test_channels_last_gives_the_same_outputs():
    """RUAS in channels-last memory format: outputs equal the contiguous network's to 1e-5;
    parameters keep their identity (optimizers still hold them) and the state dict its keys."""
    net, x = _ruas(), _image()
    with torch.no_grad():
        expected = net(x)["out"]
    params = list(net.parameters())
    runner = Runner(net, Precision(None, CPU), channels_last=True)
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in net.parameters())
    with torch.no_grad():
        got = runner(x)["out"]
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    assert set(runner.net.state_dict()) == set(_ruas().state_dict())
    batch = channels_last_inputs({"input": x, "name": ["a"], "size": torch.zeros(2, 2)})
    assert batch["input"].is_contiguous(memory_format=torch.channels_last) and batch["name"] == ["a"]


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.LeakyReLU(0.05), nn.Conv2d(4, 3, 1))
    return net


def test_compiled_runner_keeps_the_network_state_and_attributes():
    """With compile the Runner's state dict and parameters are the network's (the compiled wrapper is
    not registered twice); tasks pass options by arguments, so no attribute of the network reads through
    the Runner; torch.compile runs at the first forward (dynamo's import alone takes 3 s: the slow tests
    below run it)."""
    net = _tiny()
    net.option = "out"
    runner = Runner(net, Precision(None, CPU), compile=True)
    assert not hasattr(runner, "option") and runner.net.option == "out"
    assert set(runner.state_dict()) == {f"net.{k}" for k in net.state_dict()}
    assert [id(p) for p in runner.parameters()] == [id(p) for p in net.parameters()]


@pytest.mark.slow
def test_compile_gives_the_same_outputs_tiny():
    """torch.compile (inductor, C++ on the CPU) of a tiny conv net through the Runner: outputs equal
    eager to 1e-5 (5-7 s on 2 shared cores: inductor's start-up, so slow)."""
    net, x = _tiny(), torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        expected = net(x)
        got = Runner(net, Precision(None, CPU), compile=True)(x)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.slow
@pytest.mark.parametrize("options", [None, {"options": {"freezing": True}}], ids=["inductor", "frozen"])
def test_compile_ruas_gives_the_same_outputs(options):
    """The RUAS reference network compiled (inductor, and inductor with freezing as evaluate.py uses
    it on a CPU; 10-70 s each on 2 shared cores): outputs equal eager to 1e-5."""
    net, x = _ruas().eval(), _image()
    with torch.no_grad():
        expected = net(x)["out"]
        got = Runner(net, Precision(None, CPU), compile=True, compile_options=options)(x)["out"]
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)


def test_amp_is_recorded_and_kept_on_resume(tmp_path, capsys):
    """train.py --amp bf16 --channels-last: the first line says so, config.json records it, and
    --resume (without the flags) keeps them."""
    out = tmp_path / "T"
    args = [*FAST, "--genotype", str(RUAS_REFERENCE_PATH), "--out", str(out)]
    assert run(train_main, [*args, "--max-steps", "1", "--amp", "bf16", "--channels-last"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("train lowlight") and "bf16 autocast, channels-last" in first
    config = json.loads((out / "config.json").read_text())
    assert config["amp"] == "bf16" and config["channels_last"] is True and config["compile"] is False
    assert run(train_main, [*args, "--max-steps", "2", "--resume"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "resuming with --max-steps 2 (the checkpoint had 1)"  # the changed budget, said first
    header = next(line for line in lines if line.startswith("train lowlight"))
    assert "bf16 autocast, channels-last" in header
    assert json.loads((out / "config.json").read_text())["amp"] == "bf16"
    assert run(evaluate_main, ["--checkpoint", str(out / "model.pt"), "--amp", "bf16", "--channels-last",
                               "--out", str(tmp_path / "E")]) == 0
    assert "(bf16 autocast, channels-last)" in capsys.readouterr().out


def test_search_bf16_first_line_and_config(tmp_path, capsys):
    out = tmp_path / "S"
    assert run(search_main, [*FAST, "--max-steps", "1", "--amp", "bf16", "--out", str(out)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("search lowlight") and "bf16 autocast, solves and finite differences in float32" in first
    assert json.loads((out / "config.json").read_text())["amp"] == "bf16"


@pytest.mark.parametrize("command,argv,message", [
    (search_main, [*FAST, "--compile"], "--compile is not supported for search.py"),
    (search_main, [*FAST, "--amp", "fp16", "--device", "cpu"], "--amp fp16 needs a CUDA device"),
    (train_main, [*FAST, "--genotype", str(RUAS_REFERENCE_PATH), "--amp", "fp16", "--device", "cpu"],
     "use --amp bf16"),
    (evaluate_main, ["--predictions", "P", "--task", "lowlight", "--amp", "bf16"], "drop --amp"),
    (evaluate_main, ["--predictions", "P", "--task", "lowlight", "--compile", "--channels-last"],
     "drop --channels-last, --compile"),
])
def test_bad_combinations_are_one_line_errors(tmp_path, capsys, command, argv, message):
    start = time.perf_counter()
    assert run(command, [*argv, "--out", str(tmp_path / "X")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "X").exists()
    assert time.perf_counter() - start < 30


def test_precision_rejects_fp16_on_cpu_and_describes_itself():
    with pytest.raises(UserError, match="use --amp bf16"):
        Precision("fp16", CPU)
    assert Precision(None, CPU).describe() == "float32"
    assert Precision("bf16", CPU).describe() == "bf16 autocast" and Precision("bf16", CPU).scaler is None


def test_cuda_graph_on_a_cpu_is_a_one_line_error_that_writes_nothing(tmp_path, capsys):
    out = tmp_path / "T"
    assert run(train_main, [*FAST, "--genotype", str(RUAS_REFERENCE_PATH), "--max-steps", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    argv = ["--checkpoint", str(out / "model.pt"), "--device", "cpu", "--cuda-graph", "--out", str(tmp_path / "E")]
    assert run(evaluate_main, argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--cuda-graph captures CUDA kernels" in err[0] and "--device cuda" in err[0], err
    assert not (tmp_path / "E").exists()


def test_cuda_graph_signature_separates_sizes_layouts_and_arguments():
    def key(*args, **kwargs):
        from torch.utils._pytree import tree_flatten
        return CudaGraphs.key(*tree_flatten((args, kwargs)))
    x = torch.zeros(1, 3, 8, 8)
    assert key(x) == key(torch.ones(1, 3, 8, 8))  # values do not matter, shapes do
    assert key(x) != key(torch.zeros(1, 3, 8, 16))
    assert key(x) != key(x.contiguous(memory_format=torch.channels_last))
    assert key(x) != key(x.double())
    assert key(x, scale=2) != key(x, scale=3) and key(x, {"a": x}) != key(x, {"b": x})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a GPU")
@pytest.mark.parametrize("amp", [None, "bf16"])
def test_cuda_graph_replays_equal_eager_at_two_sizes_and_keeps_outputs(amp):
    cuda = torch.device("cuda")
    net = _ruas().to(cuda).eval()
    graphed = Runner(net, Precision(amp, cuda, scaler=False), cuda_graph=True)
    eager = Runner(net, Precision(amp, cuda, scaler=False))
    tol = 1e-5 if amp is None else 2e-2
    with torch.no_grad():
        first = None
        for i, size in enumerate((32, 48, 32)):
            x = _image(size).to(cuda) * (1 + i / 4)  # the third input differs from the first
            got, expected = graphed(x)["out"], eager(x)["out"]
            assert torch.allclose(got, expected, atol=tol, rtol=0)
            if first is None:
                first, kept = got, got.clone()
        assert len(graphed._graphs.graphs) == 2  # one graph per size: the third call replayed the first
        assert torch.equal(first, kept)  # a later replay does not overwrite an output already returned
