"""User mistakes become one line on stderr and a non-zero exit; bugs keep their traceback."""
from __future__ import annotations

import sys
from typing import Callable, Sequence

from bilevel import NonFiniteError, OptionError
from datasets.errors import DataError
from nas.genotype import GenotypeError
from runtime.errors import UserError
from tasks.registry import TaskError
from tasks.results import HparamsError
from tasks.settings import SettingsError

USER_ERRORS = (UserError, DataError, GenotypeError, OptionError, NonFiniteError, SettingsError, HparamsError, TaskError)


def close_progress_bars() -> None:
    """Close every open tqdm bar, so that what is printed next starts on a fresh line."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a command's ``main``; print user errors as ``error: ...`` (one line, on a line of its
    own after any progress bar), exit code 2; Ctrl-C exits with 130 (the command saves what it can
    before re-raising)."""
    try:
        return main(argv)
    except USER_ERRORS as e:
        close_progress_bars()
        msg = " ".join(str(e).split())
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        close_progress_bars()
        print("interrupted", file=sys.stderr)
        return 130
