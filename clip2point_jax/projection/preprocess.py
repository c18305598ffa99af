"""Point-cloud preprocessing shared by every task, before the projector."""

import jax
import jax.numpy as jnp

from renderers import points as projector


def align_modelnet(points: jax.Array) -> jax.Array:
  """ModelNet is z-up; CLIP2Point turns it y-up: (x, y, z) -> (-y, z, -x)."""
  x, y, z = points[..., 0], points[..., 1], points[..., 2]
  return jnp.stack([-y, z, -x], axis=-1)


def prepare_points(points: jax.Array, mask: jax.Array, align_modelnet_axes: bool) -> jax.Array:
  """The dataset-independent point preprocessing of every task.

  Args:
    points: float32[B, N, 3]; mask: bool[B, N].
    align_modelnet_axes: turn z-up ModelNet clouds y-up first.

  Returns:
    float32[B, N, 3], centred in the unit ball.
  """
  if align_modelnet_axes:
    points = align_modelnet(points)
  return projector.normalize_points(points, mask)
