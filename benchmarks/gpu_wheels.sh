#!/usr/bin/env bash
# Wheels that a GPU machine without this project's optional packages needs for benchmarks/gpu_check.sh:
# kornia (+ kornia_rs), nibabel, and the peer libraries of benchmarks/hypergrad.py. Run here, with
# the package registry reachable; the wheels land in .whl/ (git-ignored), for Python 3.12 on x86-64.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
  kornia==0.9.0 kornia_rs==0.2.0 nibabel==5.4.2 \
  torchopt==0.7.3 optree==0.20.0 graphviz==0.21 betty-ml==0.1.1 boat-torch==1.1.1 higher==0.2.1
du -sh .whl
