"""A search whose budget ends inside the upper level's warm-up says that nothing was learned, and its
hparams.json records it; a search whose upper level steps reports what it learned."""
from __future__ import annotations

import json
import re

from commands.errors import run
from commands.search import main as search_main
from tasks import load_hparams

TINY = ["--task", "registration", "--size", "16", "--synthetic-count", "8", "--channels", "4,8",
        "--batch-size", "2", "--method", "cg", "--option", "iters=2"]


def test_a_budget_inside_the_warm_up_says_the_upper_level_never_stepped(tmp_path, capsys):
    assert run(search_main, [*TINY, "--max-steps", "2", "--out", str(tmp_path / "S")]) == 0
    out = capsys.readouterr().out
    warm = re.search(r"the upper level never stepped \(warm-up (\d+) steps > budget 2 steps\): hparams\.json "
                     r"holds the start values \(hparams: smooth=1\)", out)
    per_epoch = int(re.search(r"(\d+) steps/epoch", out).group(1))
    assert warm and int(warm.group(1)) == 25 * per_epoch  # the recipe's 25 epochs
    assert f"note: the upper level will not step (warm-up {25 * per_epoch} steps > budget 2 steps)" in out
    assert json.loads((tmp_path / "S" / "hparams.json").read_text()) == {"_learned": False, "smooth": 1.0}
    assert set(load_hparams(tmp_path / "S" / "hparams.json")) == {"smooth"}  # train.py --from reads the values


def test_an_upper_level_that_steps_reports_what_it_learned(tmp_path, capsys):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"upper_warmup_epochs": 0}))
    assert run(search_main, [*TINY, "--config", str(config), "--max-steps", "1", "--out", str(tmp_path / "S")]) == 0
    out = capsys.readouterr().out
    assert "never stepped" not in out and "will not step" not in out
    learned = json.loads((tmp_path / "S" / "hparams.json").read_text())
    assert set(learned) == {"smooth"} and learned["smooth"] != 1.0
    assert f"hparams: smooth={learned['smooth']:.4g}" in out
