"""What the commands print around their loop: the long-run forecast (once, after the first timed
step, with --device cuda suggested on a CPU) and errors on a line of their own after a progress bar."""
from tqdm import tqdm

import commands.session as session
from commands.errors import UserError, run
from commands.search import main as search_main
from commands.session import Forecast

TINY = ["--task", "lowlight", "--batch-size", "2", "--crop", "16", "--iem-stages", "1", "--nrm-cells", "1",
        "--nrm-channels", "3"]


def test_forecast_speaks_once_after_the_warm_up_step_and_only_for_long_runs():
    f = Forecast(total=10_000, done=0, device="cpu")
    assert f.message(1, now=0.0) is None  # step 1 pays for warm-up: not timed
    line = f.message(2, now=2.0)  # step 2 took 2 s: 9,998 steps left, about 5.6 hours
    assert line.startswith("about 5.6 hours to go at 2.00 s/step (9,998 steps left) on cpu") and "--device cuda" in line
    assert f.message(3, now=4.0) is None  # once only
    assert Forecast(total=100, done=0, device="cpu").message(1, now=0.0) is None
    short = Forecast(total=100, done=0, device="cpu")
    short.message(1, now=0.0)
    assert short.message(2, now=2.0) is None  # 196 s: nothing to say
    gpu = Forecast(total=10_000, done=0, device="cuda")
    gpu.message(1, now=0.0)
    assert "--device cuda" not in gpu.message(2, now=2.0)
    resumed = Forecast(total=10_000, done=500, device="cpu")  # a resumed run times its own first steps
    assert resumed.message(501, now=0.0) is None and resumed.message(502, now=2.0)


def test_search_prints_the_forecast_above_its_bar(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(session, "LONG_RUN_S", 0.0)  # any run is "long": the line must come out
    assert run(search_main, [*TINY, "--max-steps", "3", "--device", "cpu", "--out", str(tmp_path / "S")]) == 0
    captured = capsys.readouterr()
    (line,) = [x for x in (captured.out + captured.err).replace("\r", "\n").splitlines() if x.startswith("about ")]
    assert "hours to go" in line and "--device cuda" in line


def test_a_user_error_inside_a_progress_bar_starts_a_fresh_line(capsys):
    def main(argv):
        bar = tqdm(total=5, desc="search")
        bar.update(1)
        raise UserError("the data went bad; fix it")

    assert run(main, []) == 2
    err = capsys.readouterr().err
    assert "\nerror: the data went bad; fix it\n" in err and err.endswith("fix it\n")
