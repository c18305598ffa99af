"""The projectors' scatters: one per cloud, and the extremal ones on the floats' bits.

Every projector here writes each cloud's candidates (a point's pixels, a
point's grid cells) into that cloud's buffer with one scatter: `per_cloud`.

A scatter-min or -max of float32 values has no atomic instruction on
NVIDIA GPUs: XLA:GPU emits a compare-and-swap loop for every update, which
retries while other threads write the same cell. The values these
projectors combine that way are never negative (depths in front of the
camera, PointCLIP V2's slice depths) nor NaN, and the int32 read of such a
float orders as the floats do (+0.0 reads as 0, +inf as 0x7F800000). So
`nonnegative_min` and `nonnegative_max` scatter the bits with the integer
atomics (a single `red.min`/`red.max` each) and read the result back as
floats: the same values, bit for bit, up to the sign of a zero (-0.0 reads as
the smallest int32; a float minimum may return either zero). Their
derivative is the float scatter's: a cell's tangent is the mean of the
tangents of the values tied for it, the buffer's fill counting as one when it
ties.
"""

import functools

import jax
import jax.numpy as jnp


def per_cloud(method: str, fill, size: int, flat: jax.Array, values: jax.Array) -> jax.Array:
  """[B, size]: `values` [B, M] combined by `method` ("min", "max", "add")
  at `flat` int32[B, M] into a buffer of `fill`, separately for each cloud.

  One scatter per cloud (vmapped) rather than one over the whole batch's
  buffers: XLA can then split it over the devices that hold the batch; a
  single flat scatter would make every device render the whole global batch.
  Indices of `size` or more are dropped.
  """
  def one(index, value):
    return getattr(jnp.full((size,), fill, values.dtype).at[index], method)(value, mode="drop")
  return jax.vmap(one)(flat, values)


def _as_bits(x):
  return jax.lax.bitcast_convert_type(jnp.asarray(x, jnp.float32), jnp.int32)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _extremum(method: str, fill: float, size: int, flat: jax.Array, values: jax.Array) -> jax.Array:
  combined = per_cloud(method, _as_bits(fill), size, flat, _as_bits(values))
  return jax.lax.bitcast_convert_type(combined, jnp.float32)


@_extremum.defjvp
def _extremum_jvp(method, fill, size, primals, tangents):
  flat, values = primals
  values_dot = tangents[1]
  out = _extremum(method, fill, size, flat, values)
  at_cell = jnp.take_along_axis(out, jnp.minimum(flat, size - 1), axis=1)
  won = (flat < size) & (values == at_cell)
  winners = per_cloud("add", 0.0, size, flat, won.astype(jnp.float32))
  total = per_cloud("add", 0.0, size, flat, jnp.where(won, values_dot, 0.0))
  # A cell that no value reached keeps its fill, which counts as one tied value.
  return out, total / (winners + (out == fill))


def _check(values: jax.Array, fill: float):
  if values.dtype != jnp.float32:
    raise TypeError(f"the bit-pattern scatters take float32 values, got {values.dtype}")
  if not fill >= 0:
    raise ValueError(f"the bit-pattern scatters need a fill >= 0, got {fill!r}")


def nonnegative_min(flat: jax.Array, values: jax.Array, size: int, fill: float = float("inf")) -> jax.Array:
  """`per_cloud("min", fill, ...)` on float32 values >= 0, with integer atomics.

  Args:
    flat: int32[B, M], each value's cell in [0, size), or `size` (or more)
      for a value to drop; a dropped value may be anything.
    values: float32[B, M], >= 0 (or -0.0) and not NaN where kept.
    size: cells per cloud.
    fill: the buffer's value where nothing lands, >= 0.

  Returns:
    float32[B, size]: what the float scatter-min gives (module doc).
  """
  _check(values, fill)
  return _extremum("min", float(fill), size, flat, values)


def nonnegative_max(flat: jax.Array, values: jax.Array, size: int, fill: float = 0.0) -> jax.Array:
  """`per_cloud("max", fill, ...)` on float32 values >= 0, with integer atomics.

  Args and returns as `nonnegative_min`.
  """
  _check(values, fill)
  return _extremum("max", float(fill), size, flat, values)
