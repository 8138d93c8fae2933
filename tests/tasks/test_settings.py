"""Typed settings: unknown keys and out-of-range values are one-line errors; recipes."""
from __future__ import annotations

import json

import pytest

from commands.errors import run
from commands.search import main as search_main
from tasks import Settings, SettingsError


def test_unknown_key_names_the_valid_ones_and_ranges_are_checked():
    with pytest.raises(SettingsError, match="config.json: unknown setting 'epohcs' \\(did you mean 'epochs'\\?\\); "
                                           "valid settings: .*batch_size"):
        Settings.from_dict({"epohcs": 3}, source="config.json")
    with pytest.raises(SettingsError, match="batch_size must be >= 1, got 0"):
        Settings.from_dict({"batch_size": 0})
    with pytest.raises(SettingsError, match="epochs must be an integer"):
        Settings.from_dict({"epochs": 1.5})
    assert Settings.from_dict({"epochs": 3}).epochs == 3


@pytest.mark.parametrize("content,message", [
    ({"nrm_evrey": 3}, "unknown setting 'nrm_evrey'"),
    ({"batch_size": -1}, "batch_size must be >= 1"),
    ({"task": "classification"}, "sets task; the task comes from --task only"),
    ({"recipe": "paper"}, "no recipe 'paper'"),
])
def test_config_file_errors_are_one_line(tmp_path, capsys, content, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps(content))
    code = run(search_main, ["--task", "lowlight", "--config", str(cfg), "--out", str(tmp_path / "R")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "R" / "checkpoint.pt").exists()
