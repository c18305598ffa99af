"""What the benchmarks share: realistic input clouds made fast, the image tower's
parameters, the card's matmul rate and a program's memory."""

import functools
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.data import primitives
from clip2point_jax.models import clip as clip_lib


def clouds(batch: int, num_points: int, seed: int) -> jax.Array:
  """float32[batch, num_points, 3]: built-in shapes, randomly rotated and stretched.

  Sampling a mesh per cloud with trimesh would take minutes for big batches,
  so 16 shapes are sampled and every cloud is a random rotation and
  anisotropic scaling of one of them.
  """
  rng = np.random.default_rng(seed)
  base, _ = primitives.generate(2, num_points, seed)  # [16, N, 3]
  q, r = np.linalg.qr(rng.normal(size=(batch, 3, 3)))
  rotations = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
  stretch = rng.uniform(0.7, 1.3, size=(batch, 1, 3))
  picks = base[rng.integers(0, len(base), batch)]
  return jnp.asarray((np.einsum("bnc,bdc->bnd", picks, rotations) * stretch).astype(np.float32))


def process_share(tree):
  """This process's rows of a global batch (numpy leaves, leading axis split evenly)."""
  share = lambda x: np.array_split(np.asarray(x), jax.process_count())[jax.process_index()]
  return jax.tree.map(share, tree)


@functools.lru_cache
def tower_params(config: clip_lib.CLIPConfig):
  """Random float32 params of `config`'s image tower, made once per process and
  shared by every setting: they do not depend on the compute dtype, the
  attention or the residual dtype, and initialising ViT-B/32 compiles for
  longer than one setting takes to run."""
  tower = clip_lib.CLIPVisionEncoder(config, attention="xla")
  image = jnp.zeros((1, config.vision.image_size, config.vision.image_size, 3))
  return jax.jit(tower.init)(jax.random.key(0), image)["params"]


def matmul_tflops(size: int = 8192, repeats: int = 30) -> float:
  """The device's bf16 matmul rate on random operands (bf16 out, float32
  accumulation, as torch's bf16 matmul): median of `repeats` after as many
  warm-up products, so the clocks have ramped up."""
  keys = jax.random.split(jax.random.key(1), 2)
  a, b = (jax.random.normal(k, (size, size), jnp.bfloat16) for k in keys)
  product = jax.jit(jnp.dot)
  for _ in range(repeats):
    product(a, b).block_until_ready()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    product(a, b).block_until_ready()
    times.append(time.perf_counter() - start)
  return 2 * size**3 / statistics.median(times) / 1e12


def program_gib(compiled) -> float:
  """GiB one device needs for a compiled program (`jit(f).lower(...).compile()`):
  XLA's own peak for it where reported, else arguments + outputs + temporaries
  - donated aliases. Unlike the allocator's peak, it is per program, not per
  process, so runs of one process can be compared."""
  stats = compiled.memory_analysis()
  if stats is None:
    return float("nan")
  peak = getattr(stats, "peak_memory_in_bytes", 0) or (
      stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
      - stats.alias_size_in_bytes)
  return peak / 2**30
