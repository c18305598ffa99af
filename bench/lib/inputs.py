"""Synthetic inputs: realistic point clouds made fast, unit feature rows, a process's share of a batch."""

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.data import primitives
from renderers import points as projector


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


def blob_clouds(batch: int, num_points: int, seed: int = 0) -> jax.Array:
  """float32[B, N, 3]: anisotropic gaussian blobs, centred, in the unit ball."""
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(batch, num_points, 3)) * rng.uniform(0.3, 1.0, size=(batch, 1, 3))
  return projector.normalize_points(jnp.asarray(points, jnp.float32))


def unit_rows(rows: int, dim: int, seed: int = 0) -> np.ndarray:
  """float32[rows, dim] of random unit vectors, e.g. class text features."""
  x = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def process_share(tree):
  """This process's rows of a global batch (numpy leaves, leading axis split evenly)."""
  share = lambda x: np.array_split(np.asarray(x), jax.process_count())[jax.process_index()]
  return jax.tree.map(share, tree)
