"""Deterministic farthest point sampling (FPS), in numpy and in JAX.

Like pointnet2_ops, it starts from point 0 and then repeatedly takes the point
farthest (squared Euclidean, float32) from all taken so far; ties go to the
lowest index. The greedy choice does not depend on how many points are asked
for, so the first k of an FPS order of n points are the FPS of k points.
Unlike pointnet2_ops it does not skip points near the origin.
"""

import jax
import jax.numpy as jnp
import numpy as np


def _check(num_available: int, num_samples: int):
  if not 0 < num_samples <= num_available:
    raise ValueError(f"cannot take {num_samples} farthest points out of "
                     f"{num_available}.")


def _sq_dist(points, centre):
  # Written out rather than summed, so numpy and XLA add in the same order.
  d = points - centre
  return d[..., 0] * d[..., 0] + d[..., 1] * d[..., 1] + d[..., 2] * d[..., 2]


def farthest_point_indices(points: np.ndarray, num_samples: int) -> np.ndarray:
  """FPS indices: points float32[..., P, 3] -> int32[..., num_samples]."""
  points = np.asarray(points, np.float32)
  batch_shape, num_available = points.shape[:-2], points.shape[-2]
  _check(num_available, num_samples)
  flat = points.reshape(-1, num_available, 3)
  rows = np.arange(len(flat))
  out = np.zeros((len(flat), num_samples), np.int32)
  nearest = np.full((len(flat), num_available), np.inf, np.float32)
  current = np.zeros(len(flat), np.int64)
  for i in range(num_samples):
    out[:, i] = current
    nearest = np.minimum(nearest, _sq_dist(flat, flat[rows, current][:, None]))
    current = np.argmax(nearest, axis=1)
  return out.reshape(*batch_shape, num_samples)


def farthest_point_sample(points: np.ndarray, num_samples: int) -> np.ndarray:
  """FPS points: float32[..., P, 3] -> float32[..., num_samples, 3]."""
  points = np.asarray(points, np.float32)
  idx = farthest_point_indices(points, num_samples)
  return np.take_along_axis(points, idx[..., None], axis=-2)


def farthest_point_indices_jax(points: jax.Array, num_samples: int) -> jax.Array:
  """JAX FPS (jit-able, static `num_samples`): float32[..., P, 3] -> int32[..., S].

  Agrees with `farthest_point_indices` on the same float32 input.
  """
  points = jnp.asarray(points, jnp.float32)
  batch_shape, num_available = points.shape[:-2], points.shape[-2]
  _check(num_available, num_samples)
  flat = points.reshape(-1, num_available, 3)

  def step(i, state):
    out, nearest, current = state
    out = out.at[:, i].set(current)
    centre = jnp.take_along_axis(flat, current[:, None, None], axis=1)
    nearest = jnp.minimum(nearest, _sq_dist(flat, centre))
    return out, nearest, jnp.argmax(nearest, axis=1).astype(jnp.int32)

  init = (jnp.zeros((len(flat), num_samples), jnp.int32),
          jnp.full((len(flat), num_available), jnp.inf, jnp.float32),
          jnp.zeros((len(flat),), jnp.int32))
  out, _, _ = jax.lax.fori_loop(0, num_samples, step, init)
  return out.reshape(*batch_shape, num_samples)
