"""Search an architecture: ``python search.py --task lowlight`` (``--help`` lists every flag)."""
from commands.errors import run
from commands.search import main

if __name__ == "__main__":
    raise SystemExit(run(main))
