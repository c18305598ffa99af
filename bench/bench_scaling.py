"""Data-parallel scaling over the GPUs of one host: pre-training step and zero-shot.

  PYTHONPATH=. python bench/bench_scaling.py                      # 1, 2, 4, ... up to every device
  PYTHONPATH=. python bench/bench_scaling.py --devices 1 2 --batch 256 2048 --profile 2
  XLA_FLAGS=--xla_force_host_platform_device_count=8 \
    PYTHONPATH=. python bench/bench_scaling.py --tiny --devices 1 2 8   # a CPU check

For each device count n, the first n devices form the data mesh and run:
- the pre-training train step of `clip2point_jax.training.pretrain` (ViT-B/32,
  bf16, cached image features, negatives over the whole global batch, LAMB)
  at each global batch: the batch is split over the n devices, so the work
  per step is the same for every n (strong scaling). The first step starts
  from the same parameters on the same batch for every n; its loss is
  printed next to the 1-device loss, which it must match to bf16 rounding.
- zero-shot points -> logits (6 views) with `--zeroshot_batch` clouds per
  device (weak scaling: inference has no global batch).

Efficiency is throughput(n) / (n x throughput(1)). `--profile N` prints where
the N-device step spends its GPU time, collectives included.

`--processes` runs each device count as n processes of one device each
(`jax.distributed` on this host, as `mpirun` or Slurm would start the
training task) instead of one process driving all n: then no single host
thread launches every device's kernels. On CPUs each process gets one CPU
device and gloo collectives.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts, as the CLI does.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

from bench import bench_pretrain
from bench.lib import device as device_lib
from bench.lib import inputs as inputs_lib
from bench.lib import models
from clip2point_jax.core import parallel
from clip2point_jax.kernels import dispatch
from renderers import cameras


def pretrain_row(args, n, batch):
  mesh = parallel.make_mesh(jax.devices()[:n])
  step, state, frozen, inputs, cache, _ = bench_pretrain.setup(args, "bfloat16", batch, mesh)
  waited, _, compile_s, first, compiled, state, step_s = bench_pretrain.time_steps(
      step, state, frozen, inputs, cache, args.repeats)
  if args.profile == n and batch == args.batch[0]:
    state = bench_pretrain.profile(state, frozen, inputs, cache, compiled,
                                   f"pre-training step, {n} devices, global batch {batch}")
    bench_pretrain.print_optimizer_ms(args, state)
  return {"what": "pretrain step", "n": n, "batch": batch, "ms": 1e3 * step_s, "waited_ms": 1e3 * waited,
          "per_s": batch / step_s, "compile_s": compile_s, "loss": first["loss"],
          "gib": device_lib.program_gib(compiled)}


def zeroshot_row(args, n):
  mesh = parallel.make_mesh(jax.devices()[:n])
  config = models.clip_config(args.tiny)
  attention = dispatch.resolve(args.attention, jnp.bfloat16).attention
  # bf16 compute, so "auto" is a bf16 residual stream too.
  variant = f"depth-{attention}" + ("" if args.residual_dtype == "float32" else "-bf16res")
  classify, params, text = models.zeroshot_classifier(config, jnp.bfloat16, variant,
                                                      cameras.VIEWS_ZERO_SHOT)
  params, text = jax.device_put((params, text), parallel.replicated(mesh))
  batch = args.zeroshot_batch * n
  inputs = [parallel.global_batch(mesh, inputs_lib.process_share(
      np.asarray(inputs_lib.clouds(batch, args.points, s)))) for s in range(3)]
  seconds, compile_s, _, memory, _ = device_lib.time_compiled(classify, (params, text), inputs,
                                                              args.repeats)
  return {"what": "zero-shot", "n": n, "batch": batch, "ms": 1e3 * seconds, "waited_ms": 1e3 * seconds,
          "per_s": batch / seconds,
          "compile_s": compile_s, "loss": float("nan"), "gib": memory}


def measure(args, n):
  """The rows of n devices: the pre-training step at each global batch, then zero-shot."""
  for batch in [] if args.skip_pretrain else args.batch:
    if batch % n:
      print(f"skipped: global batch {batch} does not split over {n} devices", flush=True)
      continue
    yield pretrain_row(args, n, batch)
  if not args.skip_zeroshot:
    yield zeroshot_row(args, n)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _device_count_in_subprocess() -> int:
  """The device count, read in a child so that this process never holds the GPUs."""
  out = subprocess.run([sys.executable, "-c", "import jax; print(jax.device_count())"],
                       capture_output=True, text=True, check=True).stdout
  return int(out.split()[-1])


def measure_in_processes(args, n):
  """`measure(args, n)` in n processes of one device each; rank 0's rows."""
  coordinator = f"localhost:{_free_port()}"
  visible = os.environ.get("CUDA_VISIBLE_DEVICES")
  visible = visible.split(",") if visible else [str(i) for i in range(n)]
  argv = [a for a in sys.argv[1:] if a != "--processes"]
  children = []
  for rank in range(n):
    env = dict(os.environ)
    if os.environ.get("JAX_PLATFORMS") == "cpu":
      env["XLA_FLAGS"] = re.sub(r"--xla_force_host_platform_device_count=\d+", "",
                                env.get("XLA_FLAGS", ""))
      env["JAX_CPU_COLLECTIVES_IMPLEMENTATION"] = "gloo"
    else:
      env["CUDA_VISIBLE_DEVICES"] = visible[rank]
    command = [sys.executable, os.path.abspath(__file__), *argv, "--devices", str(n),
               "--child", f"{rank},{n},{coordinator}"]
    quiet = subprocess.DEVNULL  # Only rank 0 reports; an unread pipe could block the others.
    children.append(subprocess.Popen(command, env=env, text=True,
                                     stdout=subprocess.PIPE if rank == 0 else quiet,
                                     stderr=None if rank == 0 else quiet))
  for text in children[0].stdout:
    if text.startswith("ROW "):
      yield json.loads(text[4:])
    elif text.strip():
      print(f"  [rank 0] {text.rstrip()}", flush=True)
  failed = [rank for rank, child in enumerate(children) if child.wait() != 0]
  if failed:
    raise SystemExit(f"--processes: ranks {failed} of {n} failed")


def run_child(args):
  """One rank of `measure_in_processes`: joins the others, measures, rank 0 prints rows."""
  rank, world, coordinator = args.child.split(",", 2)
  rank, world = int(rank), int(world)
  jax.distributed.initialize(coordinator_address=coordinator, num_processes=world, process_id=rank)
  for row in measure(args, world):
    if rank == 0:
      print("ROW " + json.dumps(row), flush=True)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--devices", type=int, nargs="+", default=None,
                      help="device counts (default: 1, 2, 4, ... up to every device)")
  parser.add_argument("--batch", type=int, nargs="+", default=None,
                      help="global batches of the pre-training step (default 256 2048)")
  parser.add_argument("--zeroshot_batch", type=int, default=None,
                      help="zero-shot clouds per device (default 1024)")
  parser.add_argument("--repeats", type=int, default=8)
  parser.add_argument("--profile", type=int, default=0, metavar="N",
                      help="print where the N-device pre-training step spends its GPU time "
                           "(first batch size), and the optimiser update's time alone")
  parser.add_argument("--skip_zeroshot", action="store_true")
  parser.add_argument("--skip_pretrain", action="store_true")
  parser.add_argument("--processes", action="store_true",
                      help="one process per device (jax.distributed on this host)")
  parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # "rank,world,host:port"
  bench_pretrain.add_model_args(parser)
  args = parser.parse_args()
  bench_pretrain.finish_model_args(args)
  args.batch = args.batch or ([16, 64] if args.tiny else [256, 2048])
  args.zeroshot_batch = args.zeroshot_batch or (4 if args.tiny else 1024)
  if args.tiny:
    args.repeats = min(args.repeats, 3)
  if args.child:
    run_child(args)
    return
  total = _device_count_in_subprocess() if args.processes else jax.device_count()
  args.devices = args.devices or [n for n in (1, 2, 4, 8, 16, 32, 64) if n <= total]
  if max(args.devices) > total:
    raise SystemExit(f"--devices {max(args.devices)} asked for, only {total} present")
  kind = "one process per device" if args.processes else (
      f"one process, {jax.devices()[0].platform} {jax.devices()[0].device_kind}")
  print(f"scaling | {total} devices, {kind} | jax {jax.__version__} | "
        f"{bench_pretrain.model_description(args)}, bf16 | {args.points} points | XLA_FLAGS "
        f"{os.environ.get('XLA_FLAGS', '')!r}", flush=True)

  rows = []
  header = (f"{'what':<14} {'GPUs':>4} {'global batch':>12} {'ms/step':>9} {'waited ms':>9} {'samples/s':>10} "
            f"{'efficiency':>10} {'compile s':>9} {'GiB/dev':>8} {'first loss':>11} {'vs fewest':>9}")

  def line(r):
    loss = f"{r['loss']:>11.6f} {r['loss_diff']:>+9.2e}" if np.isfinite(r["loss"]) else f"{'-':>11} {'-':>9}"
    return (f"{r['what']:<14} {r['n']:>4} {r['batch']:>12} {r['ms']:>9.2f} {r['waited_ms']:>9.2f} "
            f"{r['per_s']:>10.1f} "
            f"{100 * r['efficiency']:>9.1f}% {r['compile_s']:>9.1f} {r['gib']:>8.2f} {loss}")

  started = time.perf_counter()

  def report(row):
    """Adds efficiency and the loss difference against the fewest devices' row."""
    base = next((r for r in rows if r["what"] == row["what"] and r["n"] == min(args.devices)
                 and (r["batch"] == row["batch"] or row["what"] == "zero-shot")), row)
    row["efficiency"] = (row["per_s"] / row["n"]) / (base["per_s"] / base["n"])
    row["loss_diff"] = row["loss"] - base["loss"]
    rows.append(row)
    print(f"{line(row)}   at {time.perf_counter() - started:.0f}s", flush=True)

  print(header, flush=True)
  for n in sorted(args.devices):
    for row in (measure_in_processes if args.processes else measure)(args, n):
      report(row)

  print(f"\n{header}")
  for r in rows:
    print(line(r))
  print(f"ms/step: pre-training steps back to back with one wait at the end, as the training loop "
        f"runs them (zero-shot: each batch waited for); waited ms: a step run alone and waited for. "
        f"samples/s (from ms/step): point clouds per second (zero-shot: {args.zeroshot_batch} clouds per device). "
        f"Efficiency: throughput per device over the {min(args.devices)}-device run's. "
        f"vs fewest: first-step loss minus the {min(args.devices)}-device run's (same batch, same "
        f"initial state). GiB/dev: the compiled program's peak memory per device (XLA's memory analysis).")


if __name__ == "__main__":
  main()
