"""GDPA speed on the present device: the caching pass and adapter training on the cache.

  PYTHONPATH=. python bench/bench_gdpa.py            # ViT-B/32 shapes, 16-shot ModelNet40-sized training
  PYTHONPATH=. python bench/bench_gdpa.py --tiny     # a tiny CLIP and small batches, for a CPU check

1. Caching: clouds per second through render (10 views) + both frozen
   encoders (two ViT-B/32 image towers with random weights; the speed does
   not depend on the values), in float32 and bfloat16, as
   `dual_path.make_view_encoder` runs in the caching pass.
2. Training: the task's jitted, donated epoch of cached steps (one
   `lax.scan` a call) for 100 epochs of 16-shot ModelNet40 (40 classes x 16
   shots = 640 clouds, batch 32, 20 steps per epoch) on synthetic features
   of the real shape [640, 10, 512] per path, with the metrics fetched once
   per epoch as the task does; then
   the test-set evaluation (2468 clouds).

Reports compile and run times, and the device's peak memory (the host's peak
RSS where the device has no memory statistics, e.g. CPU).
"""

import argparse
import os
import statistics
import time

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts, as the CLI does.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

from bench.lib import device as device_lib
from bench.lib import inputs
from bench.lib import models
from bench.lib import timing
from clip2point_jax.training import gdpa as training
from clip2point_jax.core import parallel
from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.projection import dual_path
from clip2point_jax.projection import settings as render_settings
from renderers import cameras


def bench_caching(cfg, dtype_name, batch, args):
  """Clouds/s of render + both encoders x 10 views, one jitted call per batch."""
  # Kernels as the tasks pick them (the Pallas ones on GPUs in bf16); a float32 residual
  # stream, as this benchmark has always timed it (the tasks' default is the compute dtype).
  model = models.tower(cfg, device_lib.DTYPES[dtype_name], "auto", jnp.float32)
  params = models.tower_params(cfg)
  encoders = {"depth_encoder": params, "clip_encoder": jax.tree.map(lambda x: x * 1.01, params)}
  render = render_settings.from_config({}, views=cameras.VIEWS_PRETRAIN)  # the projector's defaults
  encode = jax.jit(dual_path.make_view_encoder(lambda p, depth: model.apply({"params": p}, grey=depth),
                                               render, shared=False))
  clouds = [inputs.clouds(batch, args.points, s) for s in range(3)]
  _, compile_s = timing.seconds_of(lambda: jax.block_until_ready(encode(encoders, clouds[0])))
  calls = iter(range(args.repeats))
  times = timing.waited_seconds(lambda: jax.block_until_ready(encode(encoders, clouds[next(calls) % 3])),
                                args.repeats)
  median = statistics.median(times)
  return {"dtype": dtype_name, "batch": batch, "ms": 1e3 * median, "clouds_per_s": batch / median,
          "images_per_s": batch * 20 / median, "compile_s": compile_s}


def bench_training(dim, args):
  """100 epochs of 16-shot ModelNet40-sized training on the cache, then the test evaluation."""
  configs = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "configs", "x.py")
  config = load_sibling(configs, "fewshot").get_config("dataset=modelnet40,shots=16")
  mesh = parallel.make_mesh()
  rng = np.random.default_rng(0)
  classes, shots, test = 40, 16, 2468
  make = lambda n: {"depth": rng.normal(size=(n, 10, dim)).astype(np.float32),
                    "clip": rng.normal(size=(n, 10, dim)).astype(np.float32),
                    "label": rng.integers(0, classes, n).astype(np.int32)}
  train_data = training.to_device(make(classes * shots), mesh)
  test_data = training.to_device(make(test), mesh)
  text = jax.device_put(jnp.asarray(inputs.unit_rows(classes, dim)), parallel.replicated(mesh))
  batch = parallel.round_to_devices(config.batch_size, mesh)
  model, tx, _ = training.build(config, dim)
  steps = training.make_steps(model, tx, mesh)
  orders = jax.device_put(training.epoch_orders(np.arange(classes * shots), batch, 0, args.epochs),
                          parallel.replicated(mesh))
  per_epoch = orders.shape[1]

  start = time.perf_counter()
  state, frozen = training.init_state(model, tx, mesh, seed=0, num_views=10, features=dim,
                                      trainable_patterns=config.optim.trainable)
  state, m = steps["cached_epoch"](state, frozen, text, train_data, orders[0])
  jax.block_until_ready(state)
  compile_s = time.perf_counter() - start
  state, frozen = training.init_state(model, tx, mesh, seed=1, num_views=10, features=dim,
                                      trainable_patterns=config.optim.trainable)
  jax.block_until_ready(state)
  start = time.perf_counter()
  for epoch in range(args.epochs):
    state, metrics = steps["cached_epoch"](state, frozen, text, train_data, orders[epoch])
    jax.device_get(metrics)  # The task's one transfer per epoch.
  train_s = time.perf_counter() - start
  variables = training.variables_of(state, frozen)
  chunk = parallel.round_to_devices(config.eval_batch_size, mesh)
  training.evaluate(steps["predict"], variables, text, test_data, np.arange(test), chunk)  # compile
  start = time.perf_counter()
  training.evaluate(steps["predict"], variables, text, test_data, np.arange(test), chunk)
  eval_s = time.perf_counter() - start
  return {"steps": args.epochs * per_epoch, "train_s": train_s, "compile_s": compile_s,
          "steps_per_s": args.epochs * per_epoch / train_s, "eval_s": eval_s, "dim": dim}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, nargs="+", default=None, help="caching batches (clouds)")
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--epochs", type=int, default=100)
  parser.add_argument("--tiny", action="store_true", help="a tiny CLIP and small batches (CPU)")
  parser.add_argument("--parts", nargs="+", default=["caching", "training"], choices=["caching", "training"])
  args = parser.parse_args()
  cfg = models.clip_config(args.tiny)
  batches = args.batch or ([4] if args.tiny else [32, 128])
  encoder = "tiny CLIP" if args.tiny else "ViT-B/32 (random weights)"
  header = f"{device_lib.describe()} | {jax.device_count()} device(s) | {encoder}"

  if "caching" in args.parts:
    _print_caching([bench_caching(cfg, d, b, args) for d in args.dtypes for b in batches], header, args)
  if "training" in args.parts:
    _print_training(bench_training(cfg.projection_dim, args), header, args)


def _print_caching(rows, header, args):
  print(f"\nGDPA caching pass: render 10 views + both encoders | {header} | {args.points} points")
  print(f"{'dtype':>9} {'batch':>6} {'ms/batch':>9} {'clouds/s':>9} {'images/s':>9} {'compile s':>9}")
  for r in rows:
    print(f"{r['dtype']:>9} {r['batch']:>6} {r['ms']:>9.1f} {r['clouds_per_s']:>9.1f} "
          f"{r['images_per_s']:>9.0f} {r['compile_s']:>9.1f}")


def _print_training(t, header, args):
  print(f"\nGDPA training on cached features: 16-shot ModelNet40 (640 clouds, batch 32), "
        f"{args.epochs} epochs | {header} | {t['dim']}-d features")
  print(f"{'steps':>6} {'train s':>8} {'steps/s':>8} {'compile s':>9} {'test eval s':>11}  memory")
  print(f"{t['steps']:>6} {t['train_s']:>8.2f} {t['steps_per_s']:>8.0f} {t['compile_s']:>9.1f} "
        f"{t['eval_s']:>11.3f}  {device_lib.peak_memory()}")


if __name__ == "__main__":
  main()
