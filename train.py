"""Retrain a searched genotype: ``python train.py --task lowlight --genotype R/genotype.json`` (``--help`` lists every flag)."""
from commands.errors import run
from commands.train import main

if __name__ == "__main__":
    raise SystemExit(run(main))
