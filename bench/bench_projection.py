"""Times the hard and soft depth renderers on one device.

  PYTHONPATH=. python bench/bench_projection.py                 # B=32, N=1024, V=6, 224x224
  PYTHONPATH=. python bench/bench_projection.py --tiny         # a CPU-sized setting
  PYTHONPATH=. python bench/bench_projection.py --batch 8 --points 2048 --image_size 128

Every timed function is jitted, warmed up once and blocked on; the table shows
the median of `--repeats` runs. "soft fwd+bwd" is the gradient of a scalar
image loss with respect to the points, as a fitting loop would take it.
"""

import argparse
import functools

import jax
import jax.numpy as jnp
import numpy as np

from bench.lib import device as device_lib
from bench.lib import inputs
from bench.lib import timing
from renderers import cameras
from renderers import points as projector

TINY = dict(batch=4, points=512, views=6, image_size=64)


def views_for(count: int) -> np.ndarray:
  """The zero-shot views, then the pre-training ones, cycled to `count`."""
  pool = cameras.VIEWS_ZERO_SHOT + cameras.VIEWS_PRETRAIN
  return cameras.views_array([pool[i % len(pool)] for i in range(count)])


def benchmark(batch: int, points: int, views: int, image_size: int, repeats: int,
              sigma: float, gamma: float) -> list[tuple[str, float]]:
  """[(name, median seconds)] for hard fwd, soft fwd and soft fwd+bwd."""
  clouds = inputs.blob_clouds(batch, points)
  view_array = views_for(views)
  hard = jax.jit(functools.partial(projector.render_depth, image_size=image_size))
  soft = jax.jit(functools.partial(projector.render_depth, image_size=image_size,
                                   mode="soft", sigma=sigma, gamma=gamma))
  # A loss that touches every pixel, so no part of the backward pass is dead.
  soft_grad = jax.jit(jax.grad(lambda p, v: jnp.mean(soft(p, v) ** 2)))
  waited = lambda fn: timing.median_seconds(lambda: jax.block_until_ready(fn(clouds, view_array)),
                                            repeats)
  return [("hard fwd", waited(hard)), ("soft fwd", waited(soft)), ("soft fwd+bwd", waited(soft_grad))]


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--views", type=int, default=6)
  parser.add_argument("--image_size", type=int, default=224)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--sigma", type=float, default=projector.SOFT_SIGMA)
  parser.add_argument("--gamma", type=float, default=projector.SOFT_GAMMA)
  parser.add_argument("--tiny", action="store_true", help=f"use {TINY}")
  args = parser.parse_args()
  if args.tiny:
    for key, value in TINY.items():
      setattr(args, key, value)
  rows = benchmark(args.batch, args.points, args.views, args.image_size, args.repeats,
                   args.sigma, args.gamma)
  print(f"device: {device_lib.describe()}")
  print(f"B={args.batch} N={args.points} V={args.views} image={args.image_size}x"
        f"{args.image_size} radius={projector.POINT_RADIUS} sigma={args.sigma} "
        f"gamma={args.gamma}, median of {args.repeats}")
  print(f"| {'renderer':<13} | {'ms / batch':>10} | {'clouds / s':>10} |")
  print(f"|{'-' * 15}|{'-' * 12}|{'-' * 12}|")
  for name, seconds in rows:
    print(f"| {name:<13} | {seconds * 1e3:>10.2f} | {args.batch / seconds:>10.1f} |")


if __name__ == "__main__":
  main()
