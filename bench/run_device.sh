#!/usr/bin/env bash
# One call on a lent GPU machine: the benchmarks named on the command line
# (default: the single-GPU set), most needed first, each under its own time
# limit so a slow one cannot starve the rest. Logs go to $OUT (or
# ./bench_out) for bench/RESULTS.md. Carry .whl (packages the device image
# lacks: trimesh, ml_collections, tensorflow_datasets and its needs).
#
#   bash bench/run_device.sh                      # pretrain mesh_render zeroshot gdpa check
#   bash bench/run_device.sh torch                # the PyTorch baseline (max-autotune: minutes)
#   bash bench/run_device.sh scaling              # 1, 2, 4, ... GPUs of one host
#   bash bench/run_device.sh kernels pretrain_variants   # also: xla_flags, zeroshot_bf16res
#   bash bench/run_device.sh defaults             # the shipped defaults, and their numerics
#   bash bench/run_device.sh against_torch        # ours vs compiled torch at its best batch
#   bash bench/run_device.sh scaling_lhs          # on 4 GPUs: latency-hiding scheduler (no gain)
#   bash bench/run_device.sh scaling_profile      # on 4 GPUs: 1, 2, 4 GPUs, the 4-GPU profile, LHS
#   bash bench/run_device.sh scaling_and_torch    # on 4 GPUs: the scaling table, then against_torch
#   bash bench/run_device.sh allreduce_chunks     # on 4 GPUs: smaller all-reduce chunks at 2,048
#   bash bench/run_device.sh scaling_launches     # on 4 GPUs: the step's launch overhead, CUDA graphs
#   bash bench/run_device.sh scaling_processes    # on 4 GPUs: one process per GPU against one for all
#   bash bench/run_device.sh stack_layers         # on 4 GPUs: LAMB over stacked layers, 1 and 4 GPUs
#   bash bench/run_device.sh scaling_overheads    # on 4 GPUs: 1 GPU at 512, the 4-GPU profile
#   bash bench/run_device.sh scaling_knobs        # on 4 GPUs: all-reduce chunk sizes, NCCL channels
#   bash bench/run_device.sh passes               # the Pallas layer-norm and quick-GELU passes, alone and in zero-shot
#   bash bench/run_device.sh layering             # a89c44e (bench_out/a89c44e, carried) against this tree
#   bash bench/run_device.sh compare              # CLIP2Point, PointCLIP, PointCLIP V2: projection and zero-shot
#   bash bench/run_device.sh zbuffer              # the hard projector's z-buffers: scatter, sort, dense
#   bash bench/run_device.sh point_transformer    # the 3D encoder's step and zero-shot, the depth encoder's beside
#   bash bench/run_device.sh e2e                  # issue #26: each task's command as users run it against its step alone
#   bash bench/run_device.sh e2e_pretrain         # its pre-training rows only, with the run's metrics.jsonl
#   bash bench/run_device.sh checkpoint_overlap   # how much each way of saving slows the pre-training steps after it
#   bash bench/run_device.sh profiles             # where the default zero-shot and pre-training steps spend GPU time
#   bash bench/run_device.sh open_issues          # #23's and #24's figures, one call
#   bash bench/run_device.sh scatter_and_crops    # float32 scatters against their int32 bits; detection croppers
#   bash bench/run_device.sh v2_projection        # PointCLIP V2's projection by variant
#   bash bench/run_device.sh v2_share             # those variants, then #23's compare of the three
# Each line above stays under 10 minutes (the device tool's per-call limit)
# by its sections' limits; combine sections only as far as their sum allows.
set -uo pipefail
out=${OUT:-bench_out}; mkdir -p "$out"
site=""  # the carried wheels, installed once for every tree this call runs
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  site=/tmp/site:
fi
export PYTHONPATH=${site}$PWD PYTHONUNBUFFERED=1
# NVLink multicast stays off: it can take a shared host's GPUs down.
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
run() {  # run SECONDS NAME COMMAND...: one section, its log in $out/NAME.txt
  local limit=$1 name=$2 start=$SECONDS; shift 2
  echo "=== $name (limit ${limit}s): $*" | tee -a "$out/$name.txt"
  # --line-buffered: a section killed at its limit keeps the rows it printed.
  # -k: a rank of jax.distributed catches SIGTERM (its preemption notifier) and would hang on.
  timeout -k 10 "$limit" "$@" 2>&1 | grep --line-buffered -v -i -e "warning" -e "cuda_timer" | tee -a "$out/$name.txt"
  echo "=== $name took $((SECONDS - start))s" | tee -a "$out/$name.txt"
}
one_gpu="env CUDA_VISIBLE_DEVICES=0"  # single-GPU numbers on a multi-GPU machine

pretrain() { run 130 pretrain $one_gpu python3 bench/bench_pretrain.py --dtypes bfloat16; }
mesh_render() { run 110 mesh_render $one_gpu python3 bench/bench_mesh_render.py --repeats 3; }
zeroshot() {
  run 100 zeroshot $one_gpu python3 bench/bench_zeroshot.py --batch 1024 \
    --variants depth-cudnn depth-cudnn-bf16res --repeats 6
}
gdpa() { run 90 gdpa $one_gpu python3 bench/bench_gdpa.py --dtypes bfloat16; }
compare() { run 240 compare $one_gpu python3 bench/bench_compare.py --batch 32 256 1024 --repeats 10; }
check() { run 45 check $one_gpu python3 bench/check_device.py --parts encoder; }
zbuffer() {  # render.zbuffer: clouds/s of each z-buffer at 32, 256, 1024 clouds, costs per cloud
  run 300 zbuffer $one_gpu python3 bench/bench_zbuffer.py --batch 32 256 1024 --repeats 10
}
point_transformer() {  # issue #24: PTv1 (authors') step at batch 256, its FPS and kNN, zero-shot at 1,024;
  # then the depth encoder's step and zero-shot in the same process (~4 minutes on an H100)
  run 270 point_transformer $one_gpu python3 bench/bench_point_transformer.py --batch 256 \
    --zeroshot_batch 1024 --repeats 5
}
e2e_pretrain() {  # #26's pre-training rows alone (~2.5 minutes), its metrics.jsonl (evaluation and
  # checkpoint seconds) copied out beside the table. bench_e2e keeps 45 s of its budget for
  # pre-training's step-only phase and gives the command what is left after setup (~60 s).
  run 360 e2e_pretrain $one_gpu python3 bench/bench_e2e.py --out "$out" --tasks pretrain --budget_s 330
  cp /tmp/bench_e2e/work/pretrain/metrics.jsonl "$out/pretrain_metrics.jsonl" 2>/dev/null || true
}
checkpoint_overlap() {  # #26: the steps around a checkpoint save, by way of saving (~2.5 minutes)
  run 180 checkpoint_overlap $one_gpu python3 bench/bench_checkpoint_overlap.py --batch 256
}
profiles() {  # #26's encoder levers: the kernels of the default zero-shot step at 1,024 clouds and of
  # the pre-training step at 256, each with the HLO ops fused into it (~3 minutes on an H100)
  run 100 profile_zeroshot $one_gpu python3 bench/profile_zeroshot.py --variant depth-pallas-bf16res \
    --batch 1024 --top 40
  run 130 profile_pretrain $one_gpu python3 bench/bench_pretrain.py --batch 256 --dtypes bfloat16 --profile
}
e2e() {  # issue #26: the CLI of pretrain, zeroshot, fewshot and detect on a ViT-B/32-sized random CLIP
  # (written by make_tiny_clip --vit_b_32) and the built-in shapes, each against its step alone in the
  # same process; the table also in $out/e2e.md and e2e.json. ~6-7 minutes on an H100 (estimate);
  # its --budget_s cuts the commands' limits so the section ends before the call's 10 minutes.
  run 550 e2e $one_gpu python3 bench/bench_e2e.py --out "$out" --budget_s 510
}
open_issues() {  # what issues #23 and #24 still wait for, in one call (~6.5 minutes on an H100):
  # each method's projector against its zero-shot step at 1,024 (#23), the 3D encoder's step and
  # zero-shot beside the depth encoder's (#24)
  run 140 compare $one_gpu python3 bench/bench_compare.py --batch 1024 --modes hard pointclip pointclip_v2 \
    --repeats 5
  run 250 point_transformer $one_gpu python3 bench/bench_point_transformer.py --batch 256 \
    --zeroshot_batch 1024 --repeats 5
}
scatter_and_crops() {  # the hard projector's scatter-min on the depths' int32 bits (shipped) against
  # float32's, PointCLIP V2's projection likewise, both detection croppers (~3.5 minutes)
  run 45 zbuffer $one_gpu python3 bench/bench_zbuffer.py --batch 1024 --modes scatter scatter-f32 --repeats 5
  v2_projection
  run 60 detect_crops $one_gpu python3 bench/bench_detect_crops.py --where host device
}
v2_projection() {  # PointCLIP V2's projection by variant (bench_v2_projection.py's docstring says which)
  run 90 v2_projection $one_gpu python3 bench/bench_v2_projection.py --batch 1024 --repeats 5 \
    --variants shipped shipped_reduce rowpool_border previous shipped_f32 scatter49
}
v2_share() {  # #23's open figure: PointCLIP V2's projection variants, then the three projectors' shares
  v2_projection
  run 120 compare $one_gpu python3 bench/bench_compare.py --batch 1024 --modes hard pointclip pointclip_v2 \
    --repeats 5
}
torch() {  # max-autotune tunes every GEMM shape first: minutes, hence its own long limit
  run 60 torch_eager $one_gpu python3 bench/bench_torch_zeroshot.py --batch 1024
  run 150 torch_compiled $one_gpu python3 bench/bench_torch_zeroshot.py --batch 1024 --compile default
  run 360 torch_compiled $one_gpu python3 bench/bench_torch_zeroshot.py --batch 1024 1536 \
    --compile max-autotune-no-cudagraphs
}
scaling() { run 450 scaling python3 bench/bench_scaling.py --profile 1; }
scaling_lhs() {  # XLA's latency-hiding scheduler: overlap the all-reduce with the backward pass
  XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true \
    run 280 scaling python3 bench/bench_scaling.py --batch 2048 --skip_zeroshot
}
scaling_profile() {  # where the 4-GPU step at global batch 2,048 spends its time; then LHS on it
  run 400 scaling python3 bench/bench_scaling.py --batch 2048 256 --profile 4
  XLA_FLAGS=--xla_gpu_enable_latency_hiding_scheduler=true \
    run 150 scaling python3 bench/bench_scaling.py --devices 1 4 --batch 2048 --skip_zeroshot
}
scaling_and_torch() {  # one call on the 4-GPU machine: the scaling table, then GPU 0 against torch
  run 240 scaling python3 bench/bench_scaling.py
  run 200 torch_compiled $one_gpu python3 bench/bench_torch_zeroshot.py --batch 1536 \
    --compile max-autotune-no-cudagraphs
  run 110 zeroshot $one_gpu python3 bench/bench_zeroshot.py --batch 1024 --repeats 8 \
    --variants depth-pallas depth-pallas-bf16res --no-projector
}
allreduce_chunks() {  # smaller combined all-reduces start earlier in the backward pass
  XLA_FLAGS=--xla_gpu_all_reduce_combine_threshold_bytes=8388608 run 140 scaling \
    python3 bench/bench_scaling.py --devices 1 2 4 --batch 2048 --skip_zeroshot
  XLA_FLAGS=--xla_gpu_all_reduce_combine_threshold_bytes=4194304 run 90 scaling \
    python3 bench/bench_scaling.py --devices 4 --batch 2048 --skip_zeroshot
  check
}
scaling_launches() {  # is the 4-GPU step at 2,048 launch-bound? profile back to back; CUDA graphs
  local step="python3 bench/bench_scaling.py --batch 2048 --skip_zeroshot"
  run 130 scaling $step --devices 1 4 --profile 4
  run 70 scaling $step --devices 1 --batch 512  # one GPU at the 4-GPU run's per-device batch
  XLA_FLAGS=--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN \
    run 110 scaling $step --devices 1 4
  XLA_FLAGS=--xla_gpu_enable_command_buffer=FUSION,CUBLAS,CUBLASLT,CUSTOM_CALL,CUDNN,COLLECTIVES \
    run 100 scaling $step --devices 4
}
scaling_processes() {  # one host thread launching 4 GPUs' kernels, or one process per GPU?
  # Each device count starts its own processes, each initialising and compiling: ~70 s a count.
  run 230 scaling python3 bench/bench_scaling.py --processes --devices 1 2 4 --batch 2048 --skip_zeroshot
  run 150 scaling python3 bench/bench_scaling.py --processes --devices 1 4 --batch 256 \
    --zeroshot_batch 1024
}
stack_layers() {  # LAMB per tensor (~600 kernels) or over stacked layers (config.optim.stack_layers)
  local step="python3 bench/bench_pretrain.py --batch 256 --profile"
  run 100 pretrain_stacked $one_gpu $step --no-stack_layers
  run 100 pretrain_stacked $one_gpu $step --stack_layers
  run 140 scaling python3 bench/bench_scaling.py --devices 1 4 --batch 2048 --skip_zeroshot --stack_layers
  run 170 scaling python3 bench/bench_scaling.py --processes --devices 1 4 --batch 2048 --skip_zeroshot \
    --stack_layers
}
scaling_overheads() {  # what four GPUs at 2,048 pay beyond one GPU at their 512 samples each
  local step="python3 bench/bench_scaling.py --batch 2048 --skip_zeroshot"
  run 100 scaling $step --devices 1 4
  run 70 scaling $step --devices 1 --batch 512
  run 100 scaling $step --devices 4 --profile 4
}
scaling_knobs() {  # on 4 GPUs at 2,048; each setting needs ~60 s of set-up and compile first
  local step="python3 bench/bench_scaling.py --batch 2048 --skip_zeroshot --devices 4"
  # Fewer, larger gradient all-reduces (the default combines up to 30 MiB; 8 and 4 MiB were slower).
  XLA_FLAGS=--xla_gpu_all_reduce_combine_threshold_bytes=134217728 run 110 scaling $step
  XLA_FLAGS=--xla_gpu_all_reduce_combine_threshold_bytes=1073741824 run 110 scaling $step
  # NCCL's kernels take SMs from the backward pass they overlap; fewer channels take fewer.
  NCCL_MAX_NCHANNELS=8 run 110 scaling $step
  NCCL_MAX_NCHANNELS=4 run 110 scaling $step
}
zeroshot_bf16res() {
  run 90 zeroshot $one_gpu python3 bench/bench_zeroshot.py --batch 1024 \
    --variants depth-cudnn-bf16res --repeats 6
}
pretrain_variants() {  # what changes the step's time at batch 256 (defaults: Pallas, no command buffers)
  run 100 pretrain_variants $one_gpu python3 bench/bench_pretrain.py --batch 256 --profile
  run 80 pretrain_variants $one_gpu python3 bench/bench_pretrain.py --batch 256 --attention cudnn
  run 80 pretrain_variants $one_gpu python3 bench/bench_pretrain.py --batch 256 --residual_dtype float32
}
kernels() {  # attention alone (forward, and forward + backward), then zero-shot with it
  run 60 attention $one_gpu python3 bench/bench_attention.py
  run 100 zeroshot $one_gpu python3 bench/bench_zeroshot.py --batch 1024 --repeats 6 \
    --variants depth-pallas depth-pallas-bf16res
}
defaults() {  # the shipped defaults (Pallas kernels, bf16 residual, command buffers off), numerics
  run 120 zeroshot $one_gpu python3 bench/bench_zeroshot.py --batch 1024 --repeats 8 \
    --variants depth-pallas-bf16res depth-pallas
  run 150 pretrain $one_gpu python3 bench/bench_pretrain.py --batch 256 2048
  run 80 pretrain $one_gpu python3 bench/bench_pretrain.py --batch 256 --residual_dtype float32
  check
}
against_torch() {  # compiled torch at its best batch and our zero-shot, in one call
  # max-autotune compiled in 92-106 s on an H200, then needs ~10 s of timing.
  run 200 torch_compiled $one_gpu python3 bench/bench_torch_zeroshot.py --batch 1536 \
    --compile max-autotune-no-cudagraphs --matmul
  run 120 zeroshot $one_gpu python3 bench/bench_zeroshot.py --batch 1024 --repeats 10 \
    --variants depth-pallas-bf16res depth-pallas --no-projector
}
passes() {  # layer norm and quick-GELU as Pallas passes: alone, in zero-shot (on, off), numerics
  run 80 kernels $one_gpu python3 bench/bench_fused_kernels.py --rows 307200
  run 130 zeroshot $one_gpu python3 bench/bench_zeroshot.py --batch 1024 --repeats 10 --no-projector \
    --variants depth-pallas-bf16res depth-pallas-bf16res-nomlp depth-pallas-bf16res-unfused
  run 70 check $one_gpu python3 bench/check_device.py --parts encoder
}
layering() {  # the same single-GPU figures from a89c44e's scripts and this tree's, pair by pair
  # bench_out/a89c44e: `git worktree add bench_out/a89c44e a89c44e` (or `git archive`), carried.
  # Its scripts run from inside it with PYTHONPATH on it; LAYERING_NEW names another tree than
  # this one. Each pair runs back to back, old first; ~7 minutes in all on an H100.
  local old=bench_out/a89c44e new=${LAYERING_NEW:-.}
  if [ ! -f "$old/bench/bench_zeroshot.py" ]; then
    echo "layering: no $old/bench; make the a89c44e tree there and carry it" | tee -a "$out/layering.txt"
    return 1
  fi
  old=$(cd "$old" && pwd); new=$(cd "$new" && pwd)
  pair() {  # pair SECONDS SCRIPT ARGS...: the script of each tree, run from inside it
    local limit=$1 side; shift
    for side in "$old" "$new"; do
      run "$limit" layering env -C "$side" CUDA_VISIBLE_DEVICES=0 PYTHONPATH="${site}$side" python3 "$@"
    done
  }
  # zero-shot's default variant at 1,024 clouds, and the projector alone (~60 s a tree on an H100)
  pair 90 bench/bench_zeroshot.py --batch 1024 --repeats 10 --variants depth-pallas-bf16res
  # the pre-training step at 256, bf16, the config's defaults (~80 s)
  pair 100 bench/bench_pretrain.py --batch 256 --dtypes bfloat16
  # GDPA's step: 100 epochs of 16-shot training on cached features, then the test evaluation
  pair 60 bench/bench_gdpa.py --parts training
}
xla_flags() {  # zero-shot under XLA flag sets; a flag the user sets wins over xla_defaults
  local flags
  for flags in "" \
      "--xla_gpu_enable_triton_gemm=true --xla_gpu_cudnn_gemm_fusion_level=3" \
      "--xla_gpu_experimental_enable_fusion_block_level_rewriter=true"; do
    echo "XLA_FLAGS=$flags" | tee -a "$out/xla_flags.txt"
    XLA_FLAGS="$flags" run 90 xla_flags $one_gpu python3 bench/bench_zeroshot.py --batch 1024 \
      --variants depth-cudnn depth-cudnn-bf16res --repeats 5 --no-projector
  done
}

{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import jax, flax, torch; print('jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__, jax.devices())"
} 2>&1 | tee "$out/env.txt"
for section in "${@:-pretrain mesh_render zeroshot gdpa check}"; do
  for name in $section; do "$name"; done
done
