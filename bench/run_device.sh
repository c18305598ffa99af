#!/usr/bin/env bash
# One call on a lent GPU: every benchmark, most needed first, each under its
# own time limit so a slow one cannot starve the rest. Logs go to $OUT (or
# ./bench_out) for bench/RESULTS.md. Carry .whl (packages the device image
# lacks: trimesh, ml_collections, tensorflow_datasets and its needs).
set -uo pipefail
out=${OUT:-bench_out}; mkdir -p "$out"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONPATH=${PYTHONPATH:-$PWD} PYTHONUNBUFFERED=1
run() {  # run SECONDS NAME COMMAND...: one section, its log in $out/NAME.txt
  local limit=$1 name=$2; shift 2
  echo "=== $name (limit ${limit}s)"
  # --line-buffered: a section killed at its limit keeps the rows it printed.
  timeout "$limit" "$@" 2>&1 | grep --line-buffered -v -i -e "warning" -e "cuda_timer" | tee "$out/$name.txt"
}
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import jax, flax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__, jax.devices())"
} 2>&1 | tee "$out/env.txt"
run 130 pretrain python3 bench/bench_pretrain.py --dtypes bfloat16
run 110 mesh_render python3 bench/bench_mesh_render.py --repeats 3
run 100 zeroshot python3 bench/bench_zeroshot.py --batch 1024 --variants depth-cudnn depth-cudnn-bf16res --repeats 6
run 90 gdpa python3 bench/bench_gdpa.py --dtypes bfloat16
run 45 check python3 bench/check_device.py --parts encoder
run 40 torch_eager python3 bench/bench_torch_zeroshot.py --batch 1024
run 80 torch_compiled python3 bench/bench_torch_zeroshot.py --batch 1024 --compile max-autotune-no-cudagraphs
