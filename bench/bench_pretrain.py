"""Speed of the pre-training step, points in and loss out, on the present devices.

  PYTHONPATH=. python bench/bench_pretrain.py         # ViT-B/32, batch 256, bf16, cached F_I
  PYTHONPATH=. python bench/bench_pretrain.py --tiny  # a tiny CLIP, for a CPU check
  PYTHONPATH=. python bench/bench_pretrain.py --profile --residual_dtype float32

Times the train step of `clip2point_jax.training.pretrain` as the task jits it:
normalise the clouds, render two depth maps per sample at jittered distances,
encode both with the trainable depth encoder (forward and backward), look up
the cached image features, NT-Xent over the global batch, LAMB update, train
state donated. The encoder has CLIP ViT-B/32's architecture with random
weights (speed does not depend on the values); clouds are built-in shapes.

Reported per setting: step time (steps back to back with one wait at the end,
as the training loop runs them, after compiling and warming up; and the
median step run alone and waited for), samples/s, compile time, peak device
memory (where the backend reports it), FLOPs per step twice (XLA's cost
analysis of the compiled step, and an analytic count of the encoder's
matmuls: fwd + bwd = 3 x fwd), MFU
from the analytic count against --peak_tflops, and the projected time of the
100-epoch recipe on ShapeNet-55 (52,460 shapes, evaluations not included).
`--profile` adds where the step's GPU time goes (`trace_summary`).
"""

import argparse
import os
import statistics

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts, as the CLI does.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np
import optax

from bench.lib import device as device_lib
from bench.lib import flops
from bench.lib import inputs as inputs_lib
from bench.lib import models
from bench.lib import timing
from bench.lib import trace_summary
from clip2point_jax.core import layer_stack, parallel, rules
from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.kernels import dispatch
from clip2point_jax.training import pretrain

SHAPENET_SHAPES = 52460
EPOCHS = 100


def _config(args):
  configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
  config = load_sibling(os.path.join(configs, "x.py"), "pretrain").get_config("tiny" if args.tiny else None)
  with config.unlocked():
    config.render.image_size = args.image_size
    config.render.radius = 0.02 if args.image_size >= 224 else 0.06
    config.loss.negatives_group = args.negatives_group
    if args.stack_layers is not None:
      config.optim.stack_layers = args.stack_layers
  return config


def _encoder(args, dtype):
  config = models.clip_config(args.tiny, image_size=args.image_size, patch_size=16)
  residual = None if args.residual_dtype == "auto" else jnp.dtype(args.residual_dtype)
  encoder = models.tower(config, dtype, args.attention, residual)
  return encoder, jax.device_get(models.tower_params(config))


def _batches(batch, num_points, num_rows, seed):
  rng = np.random.default_rng(seed)
  return {"points": np.asarray(inputs_lib.clouds(batch, num_points, seed)),
          "view": rng.integers(0, 10, batch).astype(np.int32),
          "row": rng.integers(0, num_rows, batch).astype(np.int32)}


def setup(args, dtype_name, batch, mesh):
  """The task's jitted train step on `mesh` and what it is called with.

  The same arguments give the same initial state and batches on any mesh, so
  first-step losses can be compared across device counts.

  Returns:
    (step, state, frozen, inputs, cache, encoder): `inputs` is a list of 3
    global batches of `batch` samples, sharded over the mesh's data axis.
  """
  dtype = device_lib.DTYPES[dtype_name]
  config = _config(args)
  config.batch_size = batch
  encoder, encoder_params = _encoder(args, dtype)
  trainable, frozen = rules.split({"depth_encoder": encoder_params, "w": np.float32(1.0)},
                                  config.optim.trainable)
  state, tx, schedule = pretrain.initial_state(config, trainable, 2 * (SHAPENET_SHAPES // batch))
  shardings = pretrain.state_shardings(mesh, state, config.sharding_rules)
  frozen_shardings = pretrain.state_shardings(mesh, frozen, config.sharding_rules)
  state, frozen = jax.device_put(state, shardings), jax.device_put(frozen, frozen_shardings)
  num_rows = args.cache_rows or (64 if args.tiny else SHAPENET_SHAPES)
  cache = jax.jit(lambda key: jax.random.normal(key, (num_rows, 10, encoder.config.projection_dim),
                                                jnp.float16),
                  out_shardings=parallel.replicated(mesh))(jax.random.key(1))
  step = pretrain.jitted_train_step(config, encoder, tx, schedule, live=False, period=1000, mesh=mesh,
                                    state=state, frozen=frozen, shardings=shardings,
                                    frozen_shardings=frozen_shardings)
  inputs = [parallel.global_batch(mesh, inputs_lib.process_share(
      _batches(batch, args.points, num_rows, s))) for s in range(3)]
  return step, state, frozen, inputs, cache, encoder


def time_steps(step, state, frozen, inputs, cache, repeats):
  """Compiles, takes the first step's metrics, warms up and times `repeats` steps twice.

  First each step alone, waiting for it (latency: host dispatch and sync
  included); then `repeats` steps dispatched back to back with one wait at
  the end, as the pre-training loop runs them (it waits every `log_every`
  steps), so the host enqueues the next step while the GPUs run this one.

  Returns:
    (median seconds of a waited-for step, [seconds per waited-for step],
    compile seconds, first-step metrics as floats, the compiled step, final
    state, seconds per step back to back). Steps run the compiled executable
    itself, so the program is compiled once.
  """
  compiled, compile_s = device_lib.compile_seconds(step, state, frozen, inputs[0], cache)
  state, metrics = compiled(state, frozen, inputs[0], cache)
  first = {k: float(v) for k, v in jax.device_get(metrics).items()}
  for x in inputs[1:]:  # Warm up.
    state, metrics = compiled(state, frozen, x, cache)
  jax.block_until_ready(metrics)
  box = [state, metrics]  # The state is donated: each step takes the last one's.

  def launch(i):
    box[0], box[1] = compiled(box[0], frozen, inputs[i % len(inputs)], cache)
    return box[1]

  calls = iter(range(repeats))
  times = timing.waited_seconds(lambda: jax.block_until_ready(launch(next(calls))), repeats)
  back_to_back = timing.back_to_back_seconds(launch, jax.block_until_ready, repeats)
  state, metrics = box
  if not np.isfinite(float(metrics["loss"])):
    raise SystemExit(f"non-finite loss {float(metrics['loss'])} in the benchmark")
  return statistics.median(times), times, compile_s, first, compiled, state, back_to_back


def optimizer_ms(tx, state, repeats=10) -> float:
  """Milliseconds of the optimiser's update alone (LAMB on every trainable tensor), jitted and donated."""
  def apply(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  update = jax.jit(apply, donate_argnums=(0, 1))
  params = jax.tree.map(jnp.copy, state["params"])
  opt_state = jax.tree.map(jnp.copy, state["opt_state"])
  grads = jax.tree.map(lambda p: 1e-3 * jnp.ones_like(p), params)
  box = [params, opt_state]

  def run():
    box[0], box[1] = update(box[0], box[1], grads)
    jax.block_until_ready(box[0])

  return 1e3 * timing.median_seconds(run, repeats, warmup=2)


def print_optimizer_ms(args, state):
  """Prints `optimizer_ms` for the optimiser the config builds."""
  config = _config(args)
  tx = pretrain.make_optimizer(config, layer_stack.unstack(jax.device_get(state["params"])), 1000)[0]
  print(f"optimiser update alone (LAMB, {len(jax.tree.leaves(state['params']))} tensors"
        f"{', layers stacked' if config.optim.stack_layers else ''}): "
        f"{optimizer_ms(tx, state):.2f} ms", flush=True)


def profile(state, frozen, inputs, cache, compiled, title, calls=3):
  """Prints `trace_summary`'s table for a few more steps, dispatched back to back as the loop does.

  Idle gaps in its timeline are then the GPU waiting inside the steady state
  (host launches, exposed collectives), not the wait for each step's result.
  """
  box = [state, None]

  def run_once():
    box[0], box[1] = compiled(box[0], frozen, inputs[0], cache)

  trace_summary.summarize(run_once, compiled.as_text(), calls=calls, title=title,
                          finish=lambda: jax.block_until_ready(box[1]))
  return box[0]


def bench(args, dtype_name, batch):
  mesh = parallel.make_mesh()
  step, state, frozen, inputs, cache, encoder = setup(args, dtype_name, batch, mesh)
  waited, times, compile_s, _, compiled, state, step_s = time_steps(step, state, frozen, inputs,
                                                                    cache, args.repeats)
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  if args.profile:
    state = profile(state, frozen, inputs, cache, compiled, f"pre-training step, batch {batch}")
    print_optimizer_ms(args, state)
  analytic = batch * flops.pretrain_sample(encoder.config)
  steps = EPOCHS * (SHAPENET_SHAPES // batch)
  return {"dtype": dtype_name, "batch": batch, "ms": 1e3 * step_s, "samples_per_s": batch / step_s,
          "waited_ms": 1e3 * waited,
          "compile_s": compile_s, "spread_ms": 1e3 * (max(times) - min(times)),
          "peak_gib": device_lib.peak_gib(), "program_gib": device_lib.program_gib(compiled),
          "xla_tflop": xla_flops * mesh.devices.size / 1e12, "analytic_tflop": analytic / 1e12,
          "tflops": analytic / step_s / 1e12, "recipe_min": steps * step_s / 60, "steps": steps}


def add_model_args(parser):
  """Arguments that pick the encoder's numerics (shared with bench_scaling)."""
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--image_size", type=int, default=None)
  parser.add_argument("--negatives_group", type=int, default=0)
  parser.add_argument("--cache_rows", type=int, default=0, help="rows of the F_I cache (default: ShapeNet-55)")
  parser.add_argument("--attention", default="auto", choices=dispatch.ATTENTION_IMPLEMENTATIONS)
  parser.add_argument("--residual_dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                      help="auto: the compute dtype, as config.clip.residual_dtype's default")
  parser.add_argument("--tiny", action="store_true", help="a tiny CLIP at 64x64, for a CPU check")
  parser.add_argument("--stack_layers", action=argparse.BooleanOptionalAction, default=None,
                      help="LAMB over stacked layers (config.optim.stack_layers; default: the config's)")


def model_description(args) -> str:
  """The model arguments for a benchmark's header line."""
  stacked = _config(args).optim.stack_layers
  return (f"{'tiny CLIP' if args.tiny else 'ViT-B/32 (random weights)'}, attention {args.attention}, "
          f"{args.residual_dtype} residual, LAMB {'over stacked layers' if stacked else 'per tensor'}")


def finish_model_args(args):
  args.image_size = args.image_size or (64 if args.tiny else 224)
  if args.tiny:
    args.points = min(args.points, 256)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, nargs="+", default=None, help="global batch sizes")
  parser.add_argument("--dtypes", nargs="+", default=["bfloat16"])
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--profile", action="store_true", help="also print where the step's GPU time goes")
  parser.add_argument("--peak_tflops", type=float, default=0.0,
                      help="per-device peak for MFU (default: the data-sheet bf16 peak of known GPUs)")
  add_model_args(parser)
  args = parser.parse_args()
  finish_model_args(args)
  args.batch = args.batch or ([8] if args.tiny else [256])
  if args.tiny:
    args.repeats = min(args.repeats, 3)
  peak = args.peak_tflops or device_lib.datasheet_tflops()
  n = jax.device_count()
  print(f"pre-training step | {n} x {device_lib.describe()} | "
        f"{model_description(args)} | {args.points} points, "
        f"2 depth maps of {args.image_size}x{args.image_size} per sample, cached F_I", flush=True)
  header = (f"{'dtype':>9} {'batch':>6} {'ms/step':>9} {'samples/s':>10} {'waited ms':>9} {'spread ms':>9} "
            f"{'compile s':>9} {'peak GiB':>8} {'prog GiB':>8} {'XLA TFLOP':>9} {'TFLOP':>7} "
            f"{'TFLOP/s':>8} {'MFU':>6} {'100 ep min':>10}")

  def line(r):
    mfu = r["tflops"] / (peak * n) if peak else float("nan")
    return (f"{r['dtype']:>9} {r['batch']:>6} {r['ms']:>9.2f} {r['samples_per_s']:>10.1f} "
            f"{r['waited_ms']:>9.2f} {r['spread_ms']:>9.2f} {r['compile_s']:>9.1f} {r['peak_gib']:>8.2f} "
            f"{r['program_gib']:>8.2f} {r['xla_tflop']:>9.3g} {r['analytic_tflop']:>7.3g} "
            f"{r['tflops']:>8.3g} {100 * mfu:>5.1f}% {r['recipe_min']:>10.1f}")

  print(header, flush=True)
  rows = []
  for dtype in args.dtypes:
    for batch in args.batch:
      rows.append(bench(args, dtype, batch))
      print(line(rows[-1]), flush=True)  # A run stopped early keeps its rows.
  print(f"\n{header}")
  for r in rows:
    print(line(r))
  print(f"ms/step: steps back to back, one wait at the end (as the training loop runs them); "
        f"waited ms: the median step run alone and waited for; spread: of those. "
        f"TFLOP: analytic encoder matmuls per step, 2 depth maps per sample, fwd + bwd = 3 x fwd; "
        f"XLA TFLOP: the compiled step's cost analysis (all devices). Peak GiB: the allocator's "
        f"peak on device 0 since the process started; prog GiB: the step's own peak (XLA). "
        f"MFU: analytic TFLOP/s over {peak or 'unknown'} TFLOP/s per device. 100 ep: "
        f"{rows[0]['steps']} steps ({EPOCHS} epochs of {SHAPENET_SHAPES} shapes), step time only, "
        f"no evaluations.")

if __name__ == "__main__":
  main()
