#!/usr/bin/env bash
# The GPU figures in one run of under 9 minutes, for a machine with one CUDA GPU:
#   1. the fast test suite with --device auto resolving to cuda (tests/commands/test_commands_speed.py's
#      CUDA-graph test runs only there);
#   2. the DARTS search step at batch 64 (hand-written darts2 against ours), for the 50-epoch
#      GPU-hour projection (DARTS: 50 epochs x 25,000 / 64 = 391 steps each);
#   3. RUAS reference network at 600x400, batch 1: every inference variant (eager, channels-last,
#      bf16/fp16, compiled, CUDA graphs);
#   4. benchmarks/hypergrad.py --quick on cuda, ours against the peers.
# Outputs (tables) go to $OUT (default runs/gpu_check). Wheels missing there travel in .whl/
# (benchmarks/gpu_wheels.sh, run beforehand where the registry is reachable).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
step() {  # step NAME SECONDS COMMAND...: one part, its own time limit, its output in $OUT/NAME.txt
  local name=$1 limit=$2; shift 2
  echo "== $name (limit ${limit} s): $*"
  local start=$SECONDS
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  echo "   exit $? after $((SECONDS - start)) s"; tail -n 40 "$OUT/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
step tests 170 python3 -m pytest -q -x -p no:cacheprovider
step darts_step 120 python3 benchmarks/darts_step.py --device cuda --batch-size 64 --repeats 5 --warmup 2 \
  --arms hand-darts2,ours-darts2,ours-darts1
step lowlight_speed 150 python3 -m benchmarks.lowlight_speed --device cuda --repeats 50 --warmup 10
step hypergrad 100 python3 benchmarks/hypergrad.py --quick --device cuda --no-memory --out "$OUT/hypergrad"
