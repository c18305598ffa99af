#!/usr/bin/env bash
# One call on a lent GPU: environment, correctness against the CPU, then the
# benchmarks. Logs go to $OUT (or ./bench_out) for bench/RESULTS.md.
set -uo pipefail
out=${OUT:-bench_out}; mkdir -p "$out"
if [ -d .whl ]; then  # Packages the device image lacks (see bench/RESULTS.md).
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
} 2>&1 | tee "$out/env.txt"
python3 bench/check_device.py 2>&1 | tee "$out/check.txt"
python3 bench/bench_zeroshot.py --batch 32 128 512 2>&1 | tee "$out/zeroshot.txt"
python3 bench/bench_zeroshot.py --batch 32 128 --views 10 --dtypes bfloat16 2>&1 | tee "$out/zeroshot_10views.txt"
python3 bench/bench_projection.py 2>&1 | tee "$out/projection.txt"
python3 bench/bench_projection.py --batch 128 --points 2048 2>&1 | tee "$out/projection_big.txt"
python3 bench/bench_pretrain.py --dtypes bfloat16 float32 2>&1 | tee "$out/pretrain.txt"
