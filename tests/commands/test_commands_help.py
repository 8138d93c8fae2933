"""Every command's --help, for every task: each option that takes a value shows its default or says
why there is none, and the speed flags speak of the command they belong to."""
import re

import pytest

from commands.evaluate import main as evaluate_main
from commands.export import main as export_main
from tasks.registry import TASKS
from commands.search import main as search_main
from commands.train import main as train_main

#: Words that show a default, or say why an option has none.
STATES_DEFAULT = re.compile(r"\bdefault\b|\brequired\b", re.IGNORECASE)


def options(help_text: str) -> dict[str, tuple[bool, str]]:
    """``--flag -> (takes a value, its help)`` parsed from argparse's --help output."""
    found: dict[str, tuple[bool, str]] = {}
    flag = None
    for line in help_text.splitlines():
        m = re.match(r"^  (-\S.*?)(?:\s{2,}(\S.*))?$", line)
        if m:
            invocation = m.group(1)
            names = [part.split(" ")[0] for part in invocation.split(", ")]
            flag = max(names, key=len)
            found[flag] = (any(" " in part for part in invocation.split(", ")), m.group(2) or "")
        elif flag is not None and line.startswith("   "):
            takes, text = found[flag]
            found[flag] = (takes, f"{text} {line.strip()}".strip())
        else:
            flag = None
    return found


def without_default(help_text: str) -> list[str]:
    return [flag for flag, (takes, text) in options(help_text).items() if takes and not STATES_DEFAULT.search(text)]


def help_of(main, argv, capsys, monkeypatch) -> str:
    monkeypatch.setenv("COLUMNS", "120")
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_the_parser_finds_options_without_a_default():
    text = """usage: x.py [-h]

options:
  -h, --help            show this help message and exit
  --epochs EPOCHS       number of epochs (default: the recipe's)
  --lr LR               learning rate
  --option NAME=VALUE   option of the method, repeatable
                        (e.g. iters=10; default: none)
  --very-long-flag-name {a,b}
                        a choice without one
  --flag                a switch takes no value
"""
    found = options(text)
    assert found["--option"] == (True, "option of the method, repeatable (e.g. iters=10; default: none)")
    assert found["--flag"][0] is False and found["--help"][0] is False
    assert without_default(text) == ["--lr", "--very-long-flag-name"]


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("command", ["search", "train"])
def test_search_and_train_help_show_every_default(command, task, capsys, monkeypatch):
    main = {"search": search_main, "train": train_main}[command]
    text = help_of(main, ["--task", task], capsys, monkeypatch)
    assert len(options(text)) > 20, text
    assert without_default(text) == [], f"{command}.py --task {task} --help"


@pytest.mark.parametrize("main", [evaluate_main, export_main], ids=["evaluate", "export"])
def test_evaluate_and_export_help_show_every_default(main, capsys, monkeypatch):
    text = help_of(main, [], capsys, monkeypatch)
    assert len(options(text)) > 5 and without_default(text) == []


def test_speed_flags_speak_of_their_own_command(capsys, monkeypatch):
    helps = {name: options(help_of(main, argv, capsys, monkeypatch)) for name, main, argv in (
        ("search", search_main, ["--task", "lowlight"]), ("train", train_main, ["--task", "lowlight"]),
        ("evaluate", evaluate_main, []))}
    amp, compile_ = ({name: h[flag][1] for name, h in helps.items()} for flag in ("--amp", "--compile"))
    assert "linear solves" in amp["search"] and "refused" in compile_["search"]
    for name in ("train", "evaluate"):
        assert "search" not in amp[name] and "hypergradient" not in compile_[name], name
    assert "training" in amp["train"] and "training" in compile_["train"]
    assert "--checkpoint only" in amp["evaluate"] and "freezing" in compile_["evaluate"]
