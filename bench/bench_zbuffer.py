"""The hard projector's z-buffers: scatter against the scatter-free sort and dense.

  PYTHONPATH=. python bench/bench_zbuffer.py                  # B=32, 256, 1024; N=1024, V=6, 224 px
  PYTHONPATH=. python bench/bench_zbuffer.py --tiny           # a CPU-sized smoke run
  PYTHONPATH=. python bench/bench_zbuffer.py --batch 256 --modes scatter dense

First a correctness check on this device: each mode's depth images equal the
scatter's bit for bit (`render.zbuffer` promises it). Then `render_depth`
(projection, z-buffer, normalisation) in each mode, jitted, compiled once and
timed over `--repeats` waited calls (median) on one device. Last, each
z-buffer's cost per cloud, to estimate a TPU's speed where none can be
measured: analytic counts of 32-bit operations and of bytes moved, and XLA's
own `cost_analysis()` of the compiled program on this device (which counts a
loop's body once, so it undercounts dense's `lax.map` over row tiles).
"""

import argparse
import functools
import math
import sys
from unittest import mock

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts: the flags the project's programs run with.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bench.lib import device as device_lib  # pylint: disable=g-import-not-at-top
from bench.lib import inputs
from renderers import cameras
from renderers import points as projector
from renderers import scatter
from renderers import zbuffer

MODES = ("scatter", "sort", "dense")
# The scatter on float32 values, as shipped before 2026-12-07: a row to compare, not a mode.
FLOAT_SCATTER = "scatter-f32"
TINY = dict(batch=[2, 4], points=128, image_size=32, repeats=2)


def analytic_cost(mode: str, *, points: int, views: int, image_size: int, radius: float) -> dict:
  """Per cloud: {"ops": 32-bit operations, "bytes": memory traffic} of one z-buffer.

  Counts the reduction to the nearest depth only (the footprints, projection
  and normalisation are the same in every mode). Operations are vector-lane
  operations: a compare, select, add or min each count 1.
  """
  k = projector.footprint_size(image_size, radius)
  candidates = views * points * k * k
  pixels = views * image_size * image_size
  if mode in ("scatter", FLOAT_SCATTER):
    # Each candidate reads its index and depth and does one atomic min; the
    # image is filled with +inf first.
    return dict(ops=candidates, bytes=candidates * (8 + 4) + pixels * 4)
  if mode == "sort":
    slots = 1 << max(1, math.ceil(math.log2(candidates)))
    stages = int(math.log2(slots)) * (int(math.log2(slots)) + 1) // 2
    exchanges = stages * slots // 2
    levels = math.ceil(math.log2(candidates + 1))
    # A compare-exchange of two (pixel, depth) pairs: 2 compares, 1 and/or,
    # 4 selects; every stage streams both keys in and out (the upper bound of
    # no stage kept on chip). The binary search: per level a gather, a
    # compare and two selects per pixel; then two gathers and a select.
    return dict(ops=exchanges * 7 + pixels * (4 * levels + 3),
                bytes=stages * slots * 8 * 2 + pixels * 4 * (levels + 3))
  rows = -(-image_size // zbuffer.DENSE_ROWS) * zbuffer.DENSE_ROWS
  pairs = views * rows * image_size * points
  # Per (point, pixel): subtract, compare, select, min; per (point, row) the
  # K-way choice of the footprint row's interval (a compare and two selects each).
  return dict(ops=4 * pairs + 3 * k * views * rows * points,
              bytes=views * points * (k * 8 + 12) + pixels * 4)


def xla_cost(compiled, batch: int) -> dict:
  """Per cloud: XLA's flops and bytes accessed for a compiled program (nan where not reported)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):  # Older jax: one dict per program.
    cost = cost[0] if cost else {}
  cost = cost or {}
  return dict(flops=cost.get("flops", float("nan")) / batch,
              bytes=cost.get("bytes accessed", float("nan")) / batch)


def renderer(mode: str, views: np.ndarray, image_size: int):
  if mode == FLOAT_SCATTER:
    return jax.jit(functools.partial(float_scatter_render, views=views, image_size=image_size))
  return jax.jit(lambda p: projector.render_depth(p, views, image_size=image_size, zbuffer=mode))


def float_scatter_render(points, *, views, image_size):
  """`render_depth` with the scatter-min on float32 values (the shipped one scatters their
  int32 bits: `renderers.scatter`); XLA:GPU runs it as a compare-and-swap loop per update."""
  def float_min(flat, values, size, fill=float("inf")):
    return scatter.per_cloud("min", fill, size, flat, values)
  # Patched while this trace runs only; `_render_hard`'s own jit cache is bypassed.
  with mock.patch.object(scatter, "nonnegative_min", float_min):
    return projector._render_hard.__wrapped__(  # pylint: disable=protected-access
        points, jnp.asarray(views, jnp.float32), 1.0, jnp.ones(points.shape[:2], bool),
        image_size=image_size, radius=projector.POINT_RADIUS, camera=cameras.ORTHOGRAPHIC,
        zbuffer="scatter")


def unit_clouds(batch: int, points: int, seed: int) -> jax.Array:
  """float32[batch, points, 3]: `inputs.clouds` centred and scaled as every task projects them."""
  return projector.normalize_points(inputs.clouds(batch, points, seed))


def check_and_cost(modes, views, image_size: int, points: int, batch: int) -> tuple[list[str], dict]:
  """Each mode's images against the scatter's on this device, and XLA's cost of each.

  Returns:
    (the modes whose images differ, {mode: `xla_cost` per cloud}).
  """
  clouds = unit_clouds(batch, points, seed=7)
  reference = np.asarray(renderer("scatter", views, image_size)(clouds))
  wrong, costs = [], {}
  for mode in modes:
    compiled = renderer(mode, views, image_size).lower(clouds).compile()
    costs[mode] = xla_cost(compiled, batch)
    if mode == "scatter":
      continue
    images = np.asarray(compiled(clouds))
    differ = int(np.sum(images != reference))
    print(f"{mode}: {differ} of {images.size} pixels differ from the scatter's", flush=True)
    if differ:
      wrong.append(mode)
  return wrong, costs


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, nargs="+", default=[32, 256, 1024])
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--views", type=int, default=6, help="the first of the zero-shot views, then pre-training's")
  parser.add_argument("--image_size", type=int, default=projector.IMAGE_SIZE)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES + (FLOAT_SCATTER,))
  parser.add_argument("--check_batch", type=int, default=8, help="clouds in the correctness check")
  parser.add_argument("--tiny", action="store_true", help=f"{TINY} where not given")
  args = parser.parse_args()
  if args.tiny:
    for key, value in TINY.items():
      if getattr(args, key) == parser.get_default(key):
        setattr(args, key, value)
  pool = cameras.VIEWS_ZERO_SHOT + cameras.VIEWS_PRETRAIN
  views = cameras.views_array([pool[i % len(pool)] for i in range(args.views)])
  radius = projector.POINT_RADIUS
  print(f"device: {device_lib.describe()}", flush=True)
  print(f"N={args.points} V={args.views} image={args.image_size}x{args.image_size} radius={radius} "
        f"K={projector.footprint_size(args.image_size, radius)}, median of {args.repeats}", flush=True)
  wrong, costs = check_and_cost(args.modes, views, args.image_size, args.points, args.check_batch)

  rows = []
  print(f"\n| {'z-buffer':<11} | {'batch':>5} | {'ms / batch':>10} | {'clouds / s':>10} | {'GiB':>6} | "
        f"{'compile s':>9} |", flush=True)
  print(f"|{'-' * 13}|{'-' * 6}:|{'-' * 11}:|{'-' * 11}:|{'-' * 7}:|{'-' * 10}:|", flush=True)
  for batch in args.batch:
    clouds = [unit_clouds(batch, args.points, seed) for seed in range(2)]
    for mode in args.modes:
      jitted = renderer(mode, views, args.image_size)
      try:
        seconds, compile_s, _, gib, _ = device_lib.time_compiled(jitted, (), clouds, args.repeats)
      except jax.errors.JaxRuntimeError as e:  # Out of memory: the row says so, the rest still run.
        print(f"| {mode:<11} | {batch:>5} | {'failed':>10} | {'':>10} | {'':>6} | {'':>9} | "
              f"{str(e).splitlines()[0][:120]}", flush=True)
        continue
      row = dict(mode=mode, batch=batch, ms=1e3 * seconds, clouds_per_s=batch / seconds, gib=gib)
      rows.append(row)
      print(f"| {mode:<11} | {batch:>5} | {row['ms']:>10.2f} | {row['clouds_per_s']:>10.0f} | {gib:>6.2f} | "
            f"{compile_s:>9.1f} |", flush=True)

  print(f"\nPer cloud (XLA: this device's compiled render_depth at batch {args.check_batch}, all of it;"
        "\nanalytic: the z-buffer's reduction alone; an estimate at R 32-bit vector Tops/s is"
        "\nR * 1e12 / analytic ops clouds/s, or the bandwidth over the analytic bytes; sort's bytes"
        "\nare an upper bound, every stage of its sorting network through memory):")
  print(f"| {'z-buffer':<11} | {'analytic Gops':>13} | {'analytic MB':>11} | {'XLA GFLOP':>9} | {'XLA MB':>8} |")
  print(f"|{'-' * 13}|{'-' * 14}:|{'-' * 12}:|{'-' * 10}:|{'-' * 9}:|")
  for mode in args.modes:
    a = analytic_cost(mode, points=args.points, views=args.views, image_size=args.image_size, radius=radius)
    x = costs[mode]
    print(f"| {mode:<11} | {a['ops'] / 1e9:>13.4g} | {a['bytes'] / 1e6:>11.4g} | {x['flops'] / 1e9:>9.4g} | "
          f"{x['bytes'] / 1e6:>8.4g} |", flush=True)
  if wrong:
    sys.exit(f"z-buffers that differ from the scatter's: {', '.join(wrong)}")
  return rows


if __name__ == "__main__":
  main()
