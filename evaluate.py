"""Evaluate a model: ``python evaluate.py --checkpoint T/model.pt [--data DIR]``, or score outputs made
elsewhere: ``python evaluate.py --task T --predictions DIR [--data DIR]`` (``--help`` lists every flag)."""
from commands.errors import run
from commands.evaluate import main

if __name__ == "__main__":
    raise SystemExit(run(main))
