"""The README's commands run as written on a fresh clone.

Its first bash block (install, then the tests) is what CI runs first (``.ci/run``); every other
bash block is run here, command by command, in a temporary folder with the repository's scripts,
searches and retrainings at a reduced budget (``--max-steps``). Complete Python blocks (those
without ``...`` placeholders) are run too.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SCRIPTS = ("search.py", "train.py", "evaluate.py", "export.py")
BUDGET = {"search.py": ["--max-steps", "2"], "train.py": ["--max-steps", "2"]}


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of ``language``, in order."""
    return re.findall(rf"^```{language}\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def commands(block: str) -> list[list[str]]:
    """The block's commands as argv lists (comments and blank lines dropped)."""
    return [shlex.split(line, comments=True) for line in block.splitlines() if shlex.split(line, comments=True)]


def test_first_block_is_the_two_setup_commands():
    first = commands(blocks("bash")[0])
    assert len(first) == 2, "the README starts with exactly two commands: install + run, and the tests"
    assert first[0][:2] == ["pip", "install"] and "search.py" in first[0]
    assert first[1] == ["python", "-m", "pytest", "-q"]


def test_every_tour_command_names_a_script_of_the_repository():
    for block in blocks("bash")[1:]:
        for argv in commands(block):
            assert argv[0] == "python" and argv[1] in SCRIPTS, f"README command {shlex.join(argv)!r}"
            assert (ROOT / argv[1]).is_file()


@pytest.mark.slow
def test_readme_bash_blocks_run_as_written(tmp_path):
    for block in blocks("bash")[1:]:
        for argv in commands(block):
            script = argv[1]
            run = [sys.executable, str(ROOT / script), *argv[2:], *BUDGET.get(script, []), "--threads", "1"]
            done = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, f"{shlex.join(argv)} failed:\n{done.stderr[-2000:]}"
    assert (tmp_path / "runs" / "train-lowlight" / "eval" / "metrics.json").is_file()


@pytest.mark.parametrize("index", range(len([b for b in blocks("python") if "..." not in b])))
def test_readme_python_blocks_run(index, tmp_path, monkeypatch):
    code = [b for b in blocks("python") if "..." not in b][index]
    monkeypatch.chdir(tmp_path)
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
