"""Scatter-free hard z-buffers: the nearest depth per pixel by a sort or densely.

`renderers.points.rasterize_zbuffer` decides which pixels each point covers
(`point_footprints`, one K x K square of candidate pixels per point) and then
keeps each pixel's smallest depth. Its reference does that with one
scatter-min per cloud, which XLA lowers well on GPUs and CPUs but, on TPUs,
into a loop over the updates. The two reductions here give the same image,
bit for bit, from the same coverage decisions, with no scatter:

- `sort_min` sorts each cloud's (pixel, depth) candidates, so each pixel's
  run starts with its smallest depth, and finds every pixel's run with an
  unrolled binary search (gathers only).
- `dense_min` tests every point against every pixel of a tile of image rows
  and takes the minimum over points, tile after tile: elementwise work and a
  reduction, with no data-dependent memory access.

Gradients (the hard mode passes them to each pixel's winning depth) are the
same too, but for exact ties in depth: the scatter and `dense` split a
pixel's gradient among its tied points, `sort` gives it to one of them.

`render.zbuffer=auto` takes the scatter on GPUs and CPUs and `dense` on TPUs
(`TPU_MODE`). Per cloud at the defaults (N=1024 points, V=6 views, 224 px,
radius 0.02, so K=6 and M = V N K^2 = 221,184 candidates for
P = V 224^2 = 301,056 pixels):

- dense: V * 224 * 224 * N = 3.1e8 (point, pixel) tests of about 4 vector
  ops (subtract, compare, select, min): ~1.2e9 ops on 32-bit lanes, reading
  only each point's K row intervals (a few tens of KB) and writing the 1.2 MB
  image. It is regular work a TPU's vector unit does at full width, from VMEM.
- sort: a two-key sort of M pairs (a bitonic network of 18 * 19 / 2 = 171
  passes over 2^18 slots: ~2.2e7 compare-exchanges moving 8 bytes each way,
  several passes through HBM) and 19 rounds of P random 4-byte gathers
  (5.7e6), for which a TPU has no fast path.

Fewer operations for `sort`, but its passes are memory- and gather-bound,
while `dense` is compute-bound at a rate the chip sustains, hence dense for
TPUs. Neither is measured on a TPU here: `bench/bench_zbuffer.py` prints both
costs per cloud and the GPU speeds, to revisit the choice when one can be.
"""

import jax
import jax.numpy as jnp
from jax import lax

MODES = ("scatter", "sort", "dense", "auto")
# What "auto" runs on TPUs (the module doc says why); GPUs and CPUs scatter.
TPU_MODE = "dense"
# Image rows per step of `dense_min`: bounds its working set to
# B * V * ROWS * N interval pairs, whatever the image size.
DENSE_ROWS = 8


def sort_min(flat: jax.Array, depth: jax.Array, pixels: int) -> jax.Array:
  """Each cloud's smallest depth per pixel, by sorting its candidates.

  Args:
    flat: int32[B, M], each candidate's pixel in [0, pixels), or `pixels` for
      a candidate that covers nothing (it sorts after all real ones).
    depth: float32[B, M], each candidate's depth (finite where it covers).
    pixels: pixels per cloud.

  Returns:
    float32[B, pixels]: the smallest depth of the candidates at each pixel,
    +inf where there are none; what `.at[flat].min(depth, mode="drop")` on a
    buffer of +inf gives.
  """
  if flat.shape[-1] == 0:  # No candidates (empty clouds): nothing to search.
    return jnp.full(flat.shape[:-1] + (pixels,), jnp.inf, jnp.float32)
  depth = jnp.where(flat < pixels, depth, jnp.inf)
  # Sorted by pixel, then depth: each pixel's run starts with its minimum.
  keys, depths = lax.sort((flat, depth), dimension=-1, num_keys=2)
  query = jnp.arange(pixels, dtype=flat.dtype)
  # "scan_unrolled" lowers to gathers only ("sort" scatters, "scan" loops,
  # "compare_all" would compare all P x M pairs).
  first = jax.vmap(lambda k: jnp.searchsorted(k, query, side="left", method="scan_unrolled"))(keys)
  # Past the end means every key is smaller: the clamped key then is too.
  first = jnp.minimum(first, keys.shape[-1] - 1)
  found = jnp.take_along_axis(keys, first, axis=-1) == query
  return jnp.where(found, jnp.take_along_axis(depths, first, axis=-1), jnp.inf)


def row_intervals(covered: jax.Array, col0: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Each footprint row's covered pixels as an interval of image columns.

  The pixels a point covers in one image row are contiguous: the column's
  NDC centre is monotone in the column, and dx = centre - x, dx*dx and
  dy*dy + dx*dx are each correctly rounded, so monotone in |dx|; the test
  dist2 < r^2 therefore holds on an interval of columns (with or without a
  fused multiply-add), as do the in-image test and the point's validity.
  The interval reproduces `covered` exactly.

  Args:
    covered: bool[B, V, N, K, K] by (footprint row, footprint column).
    col0: int32[B, V, N], the image column of footprint column 0.

  Returns:
    (start, width), int32[B, V, N, K]: footprint row a covers columns
    start <= c < start + width; width 0 where it covers none.
  """
  k = covered.shape[-1]
  offsets = jnp.arange(k, dtype=jnp.int32)
  first = jnp.min(jnp.where(covered, offsets, k), axis=-1)
  end = jnp.max(jnp.where(covered, offsets + 1, 0), axis=-1)
  return col0[..., None] + first, jnp.maximum(end - first, 0)


def _tile_min(rows: jax.Array, row0: jax.Array, start: jax.Array, width: jax.Array,
              depth: jax.Array, image_size: int) -> jax.Array:
  """float32[B, V, T, W]: the nearest depth on image rows `rows` int32[T].

  row0, depth: [B, V, N]; start, width: [B, V, N, K] from `row_intervals`.
  """
  k = start.shape[-1]
  offset = rows[:, None] - row0[:, :, None, :]  # [B, V, T, N]: footprint row of image row t
  row_start = jnp.zeros_like(offset)
  row_width = jnp.zeros_like(offset)
  # A K-way select picks each point's interval for the row: a gather with a
  # per-point index would be data-dependent memory access.
  for a in range(k):
    hit = offset == a
    row_start = jnp.where(hit, start[:, :, None, :, a], row_start)
    row_width = jnp.where(hit, width[:, :, None, :, a], row_width)
  cols = jnp.arange(image_size, dtype=jnp.int32)[:, None]  # [W, 1]
  # start <= c < start + width as one unsigned compare; points on the minor
  # axis, so the minimum is a row reduction fused with the test.
  inside = ((cols - row_start[..., None, :]).astype(jnp.uint32)
            < row_width[..., None, :].astype(jnp.uint32))  # [B, V, T, W, N]
  return jnp.min(jnp.where(inside, depth[:, :, None, None, :], jnp.inf), axis=-1, initial=jnp.inf)


def dense_min(covered: jax.Array, row0: jax.Array, col0: jax.Array, depth: jax.Array, *,
              image_size: int, rows_per_step: int = DENSE_ROWS) -> jax.Array:
  """The nearest depth per pixel by testing every point against every pixel.

  Pixel (r, c) is covered by point i exactly when it lies in the point's
  footprint, at footprint row a = r - row0 and column c - col0, and
  `covered[..., i, a, c - col0]`: the same decision as the scatter's, read
  through `row_intervals`. Image rows go `rows_per_step` at a time through a
  `lax.map`; where XLA fuses the pair test into the minimum over points (its
  reduction fusion on GPUs and TPUs), memory stays at B * V * rows_per_step
  * N per step. XLA:CPU materialises the tests, B * V * rows_per_step * W * N
  floats: dense is not for CPUs.

  Args:
    covered: bool[B, V, N, K, K], which footprint pixels each point covers
      (False for skipped points and pixels outside the image).
    row0, col0: int32[B, V, N], the image row and column of footprint pixel (0, 0).
    depth: float32[B, V, N], each point's depth.
    image_size: H = W.
    rows_per_step: image rows per step.

  Returns:
    float32[B, V, H, W]: the smallest depth of the points covering each
    pixel, +inf where none does.
  """
  b, v = covered.shape[:2]
  start, width = row_intervals(covered, col0)
  # A depth is only read where its point covers the pixel (width > 0), so a
  # skipped point's NaN never reaches the minimum.
  depth = depth.astype(jnp.float32)
  steps = -(-image_size // rows_per_step)
  def step(first_row):
    rows = first_row + jnp.arange(rows_per_step, dtype=jnp.int32)
    return _tile_min(rows, row0, start, width, depth, image_size)
  tiles = lax.map(step, jnp.arange(steps, dtype=jnp.int32) * rows_per_step)  # [S, B, V, T, W]
  image = jnp.moveaxis(tiles, 0, 2).reshape(b, v, steps * rows_per_step, image_size)
  return image[:, :, :image_size]  # Rows past the image cover nothing; cut them.
