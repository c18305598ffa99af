"""The 3D encoder (Point Transformer, issue #24) against the depth encoder, in one run.

  PYTHONPATH=. python bench/bench_point_transformer.py          # authors' PTv1, batch 256, 1,024 points
  PYTHONPATH=. python bench/bench_point_transformer.py --tiny   # the tiny configs, for a CPU check
  PYTHONPATH=. python bench/bench_point_transformer.py --no_depth --batch 128 256

Pre-training: the train step of `training/point_pretrain.py` as the task jits
it (`configs/pretrain.py:encoder=point_transformer`): normalise, two
augmentations of each cloud, the Point Transformer on both (2B clouds)
forward and backward, the cached F_I, NT-Xent over the batch, LAMB, state
donated. Timed with `bench_pretrain.time_steps` (back to back, as the loop
runs steps; and each step waited for). FLOPs per step, twice: analytic,
`models.point_transformer.dense_macs` (every Linear and the attention's
weighted sums, not BatchNorm, softmax, kNN or FPS) x 2 flops x 3 (fwd + bwd)
x 2 augmentations x batch, which MFU uses; and XLA's cost analysis of the
compiled step, which also counts elementwise work but counts a while loop's
body once (farthest-point sampling's, one sample of it).

kNN and FPS: the step's neighbour searches and farthest-point samplings,
every stage's at the step's shapes (2B clouds), jitted alone and timed:
their share of the step is an upper bound of what they cost inside it (XLA
may overlap them with other work). Peak memory: the allocator's peak and
the step program's own (XLA's memory analysis).

Zero-shot: `projection/point_encode.make_classifier`, points -> logits with
one feature per cloud, at --zeroshot_batch clouds.

The depth encoder's figures come from `bench/bench_pretrain.py` and
`bench/bench_zeroshot.py` (ViT-B/32, their shipped defaults) in the same
process (`--no_depth` skips them). Weights are random: speed does not
depend on their values.
"""

import argparse
import contextlib
import io
import os

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts, as the CLI does.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp

from bench import bench_pretrain, bench_zeroshot
from bench.lib import device as device_lib
from bench.lib import inputs as inputs_lib
from bench.lib import models as models_lib
from bench.lib import timing
from clip2point_jax.core import parallel, rules
from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.loading import point_encoder
from clip2point_jax.models import point_ops
from clip2point_jax.models import point_transformer as pt
from clip2point_jax.projection import point_encode
from clip2point_jax.training import point_pretrain, pretrain
from renderers import cameras

AUGMENTATIONS = 2  # clouds through the network per pre-training sample
FORWARD_AND_BACKWARD = 3  # the backward pass costs twice the forward's matmuls
DEPTH_ZEROSHOT_VARIANT = "depth-pallas-bf16res"  # the shipped default (bench_zeroshot's names)


def _config(args):
  configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
  arg = "tiny,encoder=point_transformer" if args.tiny else "encoder=point_transformer"
  config = load_sibling(os.path.join(configs, "x.py"), "pretrain").get_config(arg)
  with config.unlocked():
    config.point_transformer.preset = args.preset
    config.point_transformer.dtype = args.dtype
  return config


def setup(args, batch, mesh):
  """The task's jitted 3D pre-training step and what it is called with.

  Returns:
    (step, state, frozen, inputs, cache, model): `inputs` is a list of 3
    global batches of `batch` samples, sharded over the mesh's data axis.
  """
  config = _config(args)
  config.batch_size = batch
  clip = models_lib.clip_config(args.tiny)
  models = point_pretrain.Encoders(point_encoder.model_from_config(config.point_transformer,
                                                                   clip.projection_dim),
                                   image_tower(clip))
  params, batch_stats = point_pretrain.initial_variables(config, models.point)
  trainable, frozen = rules.split(params, config.optim.trainable)
  state, tx, schedule = pretrain.initial_state(config, trainable, 1000, batch_stats)
  shardings = pretrain.state_shardings(mesh, state, config.sharding_rules)
  frozen_shardings = pretrain.state_shardings(mesh, frozen, config.sharding_rules)
  state, frozen = jax.device_put(state, shardings), jax.device_put(frozen, frozen_shardings)
  num_rows = 64 if args.tiny else bench_pretrain.SHAPENET_SHAPES
  cache = jax.jit(lambda key: jax.random.normal(key, (num_rows, 10, clip.projection_dim), jnp.float16),
                  out_shardings=parallel.replicated(mesh))(jax.random.key(1))
  step = pretrain.jitted_train_step(config, models, tx, schedule, live=False, period=1000, mesh=mesh,
                                    state=state, frozen=frozen, shardings=shardings,
                                    frozen_shardings=frozen_shardings,
                                    make_step=point_pretrain.make_train_step)
  inputs = [parallel.global_batch(mesh, inputs_lib.process_share(
      bench_pretrain._batches(batch, args.points, num_rows, s))) for s in range(3)]  # pylint: disable=protected-access
  return step, state, frozen, inputs, cache, models.point


def image_tower(config):
  """CLIP's image tower (the step's live-F_I path, unused with the cache: it keys the jit only)."""
  return models_lib.tower(config, jnp.float32)


def neighbour_searches(model: pt.PointTransformer):
  """Jitted `points -> ...` functions running every FPS, and every kNN, of one forward pass.

  The shapes of `PointTransformer.__call__`: per stage, a strided transition
  samples N / stride centres by FPS and searches their k neighbours among
  the stage's input; a stage with blocks after its transition searches its
  points' k neighbours among themselves once. FPS chains stage to stage; the
  kNN calls read each stage's points.

  Returns:
    jitted (fps(points float32[B, N, 3]) -> sampled indices of every stage,
    knn(per_stage) -> neighbour indices of every search, stage_points(points)
    -> per_stage: each stage's (input points, points)).
  """
  stages = list(zip(model.strides, model.neighbours, model.blocks))

  def fps(points):
    out = []
    for stride, _, _ in stages:
      if stride > 1:
        picked = point_ops.farthest_point_sampling(points, points.shape[1] // stride)
        points = point_ops.gather(points, picked)
        out.append(picked)
    return out

  def stage_points(points):
    per_stage = []
    for stride, _, _ in stages:
      previous = points
      if stride > 1:
        picked = point_ops.farthest_point_sampling(points, points.shape[1] // stride)
        points = point_ops.gather(points, picked)
      per_stage.append((previous, points))
    return per_stage

  def knn(per_stage):
    out = []
    for (previous, points), (stride, k, blocks) in zip(per_stage, stages):
      b, n, _ = points.shape
      if stride > 1:
        block = point_ops.query_block_size(b, n, previous.shape[1], model.knn_block_elements)
        out.append(point_ops.knn(points, previous, k, None, block)[0])
      if blocks > 1:
        out.append(point_ops.knn(points, points, k, None, point_ops.query_block_size(
            b, n, n, model.knn_block_elements))[0])
    return out

  return jax.jit(fps), jax.jit(knn), jax.jit(stage_points)


def time_neighbour_searches(model, clouds, num_points, repeats, seed=0):
  """Milliseconds of every FPS and every kNN of one forward pass over `clouds` clouds."""
  fps, knn, stage_points = neighbour_searches(model)
  points = inputs_lib.clouds(clouds, num_points, seed)
  per_stage = jax.block_until_ready(stage_points(points))
  fps_ms = 1e3 * timing.median_seconds(lambda: jax.block_until_ready(fps(points)), repeats)
  knn_ms = 1e3 * timing.median_seconds(lambda: jax.block_until_ready(knn(per_stage)), repeats)
  return fps_ms, knn_ms


def _name(args) -> str:
  return "PT tiny" if args.tiny else f"PT {args.preset}"


def bench_step(args, batch, peak):
  mesh = parallel.make_mesh()
  step, state, frozen, inputs, cache, model = setup(args, batch, mesh)
  waited, times, compile_s, _, compiled, state, step_s = bench_pretrain.time_steps(
      step, state, frozen, inputs, cache, args.repeats)
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  analytic = batch * AUGMENTATIONS * FORWARD_AND_BACKWARD * 2 * pt.dense_macs(model, args.points)
  fps_ms, knn_ms = time_neighbour_searches(model, AUGMENTATIONS * batch // mesh.devices.size,
                                           args.points, args.repeats)
  n = mesh.devices.size
  return {"what": f"{_name(args)} step", "batch": batch, "ms": 1e3 * step_s,
          "samples_per_s": batch / step_s, "waited_ms": 1e3 * waited, "compile_s": compile_s,
          "peak_gib": device_lib.peak_gib(), "program_gib": device_lib.program_gib(compiled),
          "xla_tflop": xla_flops * n / 1e12, "analytic_tflop": analytic / 1e12,
          "mfu": analytic / step_s / 1e12 / (peak * n) if peak else float("nan"),
          "fps_ms": fps_ms, "knn_ms": knn_ms}


def bench_zeroshot_point(args, batch):
  config = _config(args)
  clip = models_lib.clip_config(args.tiny)
  model = point_encoder.model_from_config(config.point_transformer, clip.projection_dim)
  classify = point_encode.make_classifier(model)
  variables = jax.jit(lambda k: pt.init_variables(model, k))(jax.random.key(0))
  text = jnp.asarray(inputs_lib.unit_rows(models_lib.NUM_CLASSES, clip.projection_dim))
  clouds = [inputs_lib.clouds(batch, args.points, seed) for seed in range(3)]
  seconds, compile_s, spread, gib, back_to_back = device_lib.time_compiled(
      classify, ({"point_encoder": variables}, text), clouds, args.repeats)
  return {"what": f"{_name(args)} zero-shot", "batch": batch, "ms": 1e3 * seconds,
          "clouds_per_s": batch / seconds, "b2b_clouds_per_s": batch / back_to_back,
          "compile_s": compile_s, "gib": gib}


def depth_step(args, batch, peak):
  """bench_pretrain's row for the depth encoder (ViT-B/32, or its tiny CLIP) at the same batch."""
  parser = argparse.ArgumentParser()
  bench_pretrain.add_model_args(parser)
  depth_args = parser.parse_args((["--tiny"] if args.tiny else []) + ["--points", str(args.points)])
  bench_pretrain.finish_model_args(depth_args)
  depth_args.repeats, depth_args.profile = args.repeats, False
  row = bench_pretrain.bench(depth_args, args.dtype, batch)
  return {"what": "depth encoder step", "batch": batch, "ms": row["ms"],
          "samples_per_s": row["samples_per_s"], "waited_ms": row["waited_ms"],
          "compile_s": row["compile_s"], "peak_gib": row["peak_gib"],
          "program_gib": row["program_gib"], "xla_tflop": row["xla_tflop"],
          "analytic_tflop": row["analytic_tflop"],
          "mfu": row["tflops"] / (peak * jax.device_count()) if peak else float("nan"),
          "fps_ms": float("nan"), "knn_ms": float("nan")}


def depth_zeroshot(args, batch):
  """bench_zeroshot's row for the depth encoder's zero-shot (6 views) at the same batch."""
  variant = "depth-xla" if args.tiny else DEPTH_ZEROSHOT_VARIANT
  zs_args = argparse.Namespace(points=args.points, repeats=args.repeats)
  with contextlib.redirect_stdout(io.StringIO()):  # its own row line; this one prints ours
    row = bench_zeroshot.bench(zs_args, models_lib.clip_config(args.tiny), args.dtype, variant, batch,
                               cameras.VIEWS_ZERO_SHOT)
  return {"what": f"depth {variant} zero-shot", "batch": batch, "ms": row["ms"],
          "clouds_per_s": row["clouds_per_s"], "b2b_clouds_per_s": row["b2b_clouds_per_s"],
          "compile_s": row["compile_s"], "gib": row["gib"]}


STEP_HEADER = (f"{'what':<24} {'batch':>6} {'ms/step':>9} {'samples/s':>10} {'waited ms':>9} "
               f"{'compile s':>9} {'peak GiB':>8} {'prog GiB':>8} {'XLA TFLOP':>9} {'TFLOP':>8} "
               f"{'MFU':>7} {'FPS ms':>7} {'kNN ms':>7} {'FPS+kNN':>7}")
ZEROSHOT_HEADER = (f"{'what':<32} {'batch':>6} {'ms/batch':>9} {'clouds/s':>10} {'b2b clouds/s':>12} "
                   f"{'compile s':>9} {'GiB':>6}")


def step_line(r):
  share = (r["fps_ms"] + r["knn_ms"]) / r["ms"]
  return (f"{r['what']:<24} {r['batch']:>6} {r['ms']:>9.2f} {r['samples_per_s']:>10.1f} "
          f"{r['waited_ms']:>9.2f} {r['compile_s']:>9.1f} {r['peak_gib']:>8.2f} {r['program_gib']:>8.2f} "
          f"{r['xla_tflop']:>9.3g} {r['analytic_tflop']:>8.3g} {100 * r['mfu']:>6.2f}% "
          f"{r['fps_ms']:>7.2f} {r['knn_ms']:>7.2f} {100 * share:>6.1f}%")


def zeroshot_line(r):
  return (f"{r['what']:<32} {r['batch']:>6} {r['ms']:>9.2f} {r['clouds_per_s']:>10.1f} "
          f"{r['b2b_clouds_per_s']:>12.1f} {r['compile_s']:>9.1f} {r['gib']:>6.2f}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, nargs="+", default=None, help="pre-training global batches")
  parser.add_argument("--zeroshot_batch", type=int, default=None)
  parser.add_argument("--points", type=int, default=None)
  parser.add_argument("--preset", default="authors", choices=sorted(pt.PRESETS))
  parser.add_argument("--dtype", default="bfloat16", choices=sorted(device_lib.DTYPES))
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--peak_tflops", type=float, default=0.0,
                      help="per-device peak for MFU (default: the data-sheet bf16 peak of known GPUs)")
  parser.add_argument("--tiny", action="store_true", help="the tiny configs, for a CPU check")
  parser.add_argument("--no_depth", action="store_true", help="skip the depth encoder's rows")
  args = parser.parse_args()
  args.batch = args.batch or ([4] if args.tiny else [256])
  args.zeroshot_batch = args.zeroshot_batch or (4 if args.tiny else 1024)
  args.points = args.points or (128 if args.tiny else 1024)
  if args.tiny:
    args.repeats = min(args.repeats, 2)
    args.dtype = "float32"  # CPUs have no fast bfloat16 matmuls
  peak = args.peak_tflops or device_lib.datasheet_tflops()
  model = point_encoder.model_from_config(_config(args).point_transformer,
                                          models_lib.clip_config(args.tiny).projection_dim)
  print(f"Point Transformer vs depth encoder | {jax.device_count()} x {device_lib.describe()} | "
        f"{_name(args)} blocks {model.blocks} planes {model.planes}, {args.dtype}, {args.points} points, "
        f"{pt.dense_macs(model, args.points) / 1e6:.1f} dense MMACs per cloud, "
        f"{pt.count_params(jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))['params']):,} "
        f"params", flush=True)
  steps, zero_shots = [], []
  print(STEP_HEADER, flush=True)
  for batch in args.batch:
    steps.append(bench_step(args, batch, peak))
    print(step_line(steps[-1]), flush=True)  # A run stopped early keeps its rows.
  print(ZEROSHOT_HEADER, flush=True)
  zero_shots.append(bench_zeroshot_point(args, args.zeroshot_batch))
  print(zeroshot_line(zero_shots[-1]), flush=True)
  if not args.no_depth:
    for batch in args.batch:
      steps.append(depth_step(args, batch, peak))
      print(step_line(steps[-1]), flush=True)
    zero_shots.append(depth_zeroshot(args, args.zeroshot_batch))
    print(zeroshot_line(zero_shots[-1]), flush=True)
  print(f"\n{STEP_HEADER}")
  for r in steps:
    print(step_line(r))
  print(f"\n{ZEROSHOT_HEADER}")
  for r in zero_shots:
    print(zeroshot_line(r))
  print(f"\nms/step: steps back to back, one wait at the end; waited ms: the median step alone. "
        f"TFLOP: analytic per step (PT: dense_macs x 2 x 3 (fwd+bwd) x 2 augmentations x batch; "
        f"depth: the ViT's matmuls, 2 depth maps, fwd+bwd); XLA TFLOP: the compiled step's cost "
        f"analysis (PT: FPS's loop body counted once). MFU: analytic TFLOP/s over "
        f"{peak or 'unknown'} TFLOP/s per device. FPS/kNN ms: every FPS / kNN of the step's "
        f"forward pass at its shapes, jitted alone; FPS+kNN: their share of ms/step (an upper "
        f"bound). Peak GiB: the allocator's peak since the process started (cumulative over the "
        f"rows); prog GiB: the step program's own (XLA).")
  return steps, zero_shots


if __name__ == "__main__":
  main()
