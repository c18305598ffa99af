"""Point-cloud neighbourhoods for Point Transformer: k nearest neighbours and FPS.

The JAX counterparts of pointops' `knn_query` and `farthest_point_sampling`
(POSTECH-CVLab/point-transformer lib/pointops at 10d43ab, Pointcept
libs/pointops at d74c646), batched over clouds of one static size:

  knn(queries float32[B, M, 3], points float32[B, N, 3], k, mask=bool[B, N])
      -> idx int32[B, M, k], valid bool[B, M, k]
  farthest_point_sampling(points float32[B, N, 3], num_samples, mask=bool[B, N])
      -> int32[B, num_samples]
  gather(values [B, N, ...], idx int32[B, ...]) -> [B, ..., ...]

Squared distances are (dx*dx + dy*dy + dz*dz) of coordinate differences, as
the CUDA kernels compute them, never |q|^2 + |p|^2 - 2 q.p: that expansion
cancels badly, so a point could lose its own place as its nearest neighbour.

Padded clouds: `mask[b, n]` is True for a real point. Padded points are never
returned as neighbours nor sampled while a cloud holds enough real points;
what happens otherwise is stated at each function. `mask=None` means all real.
"""

import jax
import jax.numpy as jnp

# Queries per kNN block are chosen so one block's distance matrix, B x block x N
# float32, stays under this many elements (2**26: 256 MiB).
DEFAULT_BLOCK_ELEMENTS = 1 << 26


def gather(values, idx):
  """Rows of each cloud picked by index.

  Args:
    values: any dtype [B, N, *F].
    idx: int32[B, *I], indices into N.

  Returns:
    [B, *I, *F]: values[b, idx[b, ...]].
  """
  return jax.vmap(lambda v, i: v[i])(values, idx)


def squared_distances(queries, points):
  """float32[B, M, 3], float32[B, N, 3] -> float32[B, M, N], by coordinate differences."""
  diff = queries[:, :, None, :] - points[:, None, :, :]
  return jnp.sum(diff * diff, axis=-1)


def first_real_index(mask):
  """int32[B]: each cloud's first real point (0 with no mask, or when no point is real)."""
  if mask is None:
    return jnp.zeros((), jnp.int32)
  return jnp.argmax(mask, axis=1).astype(jnp.int32)


def query_block_size(batch: int, num_queries: int, num_points: int,
                     max_elements: int = DEFAULT_BLOCK_ELEMENTS) -> int:
  """Queries per kNN block: as many as fit `max_elements` distances, at least 1."""
  return int(max(1, min(num_queries, max_elements // max(1, batch * num_points))))


def knn(queries, points, k: int, mask=None, block_size: int | None = None):
  """The k nearest points of each query, ascending distance.

  A query that is itself one of `points` finds itself first (distance 0), as
  in pointops. Ties are broken towards the lower point index (`lax.top_k` is
  stable); pointops' heap keeps an implementation-defined one of several
  points at exactly the same distance, which only duplicate points make
  happen in practice.

  Fewer than k candidates (N < k, or fewer than k real points in a padded
  cloud): the slots after the real neighbours have `valid` False and hold the
  index of the cloud's first real point. Pointcept's pointops writes -1
  there and reads zero features and zero offsets; the authors' pointops
  leaves the cloud's first point there. Callers pick the rule (see
  point_transformer.MISSING_NEIGHBOURS).

  Memory is bounded: the queries go through `lax.map` in blocks of
  `block_size` (default: `query_block_size`), each holding one
  float32[B, block, N] distance matrix.

  Args:
    queries: float32[B, M, 3].
    points: float32[B, N, 3].
    k: neighbours per query, static; may exceed N.
    mask: bool[B, N] or None; padded points are never neighbours.
    block_size: queries per block, static.

  Returns:
    idx: int32[B, M, k], indices into N.
    valid: bool[B, M, k], True where the slot holds a real neighbour.
  """
  b, m, _ = queries.shape
  n = points.shape[1]
  found = min(k, n)
  block = block_size or query_block_size(b, m, n)
  blocks = -(-m // block)
  padded = jnp.pad(queries, ((0, 0), (0, blocks * block - m), (0, 0)))
  # [blocks, B, block, 3]: lax.map walks the leading axis one block at a time.
  padded = padded.reshape(b, blocks, block, 3).transpose(1, 0, 2, 3)

  def one_block(q):
    d2 = squared_distances(q, points)
    if mask is not None:
      d2 = jnp.where(mask[:, None, :], d2, jnp.inf)
    _, idx = jax.lax.top_k(-d2, found)
    return idx.astype(jnp.int32)

  idx = jax.lax.map(one_block, padded)
  idx = idx.transpose(1, 0, 2, 3).reshape(b, blocks * block, found)[:, :m]
  if mask is None:
    valid = jnp.ones(idx.shape, bool)
  else:
    valid = gather(mask, idx)
  if found < k:
    idx = jnp.pad(idx, ((0, 0), (0, 0), (0, k - found)))
    valid = jnp.pad(valid, ((0, 0), (0, 0), (0, k - found)))
  first = first_real_index(mask)
  first = first if first.ndim == 0 else first[:, None, None]
  return jnp.where(valid, idx, first), valid


def farthest_point_sampling(points, num_samples: int, mask=None):
  """Farthest-point sampling from each cloud's first (real) point.

  Step j picks the point farthest (squared distance) from the j points
  already picked. Ties go to the lowest index (`argmax`); pointops' CUDA
  reduction picks an implementation-defined one of equally far points.

  Padded clouds: padded points are never picked. A cloud with R real points
  gets its R distinct real points as samples 0..R-1 (in FPS order); later
  samples, if num_samples > R, repeat its first real point. Samples j < R are
  exactly what FPS of the real points alone would give (FPS is sequential),
  which is how a padded stage keeps Pointcept's per-cloud counts. A cloud
  with no real point gets index 0 everywhere.

  Args:
    points: float32[B, N, 3].
    num_samples: S, static, at most N.
    mask: bool[B, N] or None.

  Returns:
    int32[B, S], indices into N.
  """
  b, n, _ = points.shape
  if not 0 < num_samples <= n:
    raise ValueError(f"farthest_point_sampling: num_samples={num_samples} must be in 1..{n}")
  start = first_real_index(mask)
  start = jnp.broadcast_to(start, (b,))
  # Padded points sit below any real point's distance (>= 0), so they lose every argmax.
  far = jnp.full((b, n), jnp.inf, points.dtype)
  if mask is not None:
    far = jnp.where(mask, far, -1.0)
  idx = jnp.zeros((b, num_samples), jnp.int32).at[:, 0].set(start)

  def step(j, carry):
    idx, far, last = carry
    centre = gather(points, last[:, None])  # [B, 1, 3]
    d2 = jnp.sum(jnp.square(points - centre), axis=-1)
    far = jnp.minimum(far, d2)
    if mask is not None:
      far = jnp.where(mask, far, -1.0)
    last = jnp.argmax(far, axis=1).astype(jnp.int32)
    return idx.at[:, j].set(last), far, last

  idx, _, _ = jax.lax.fori_loop(1, num_samples, step, (idx, far, start))
  return idx


def sampled_mask(mask, stride: int, num_samples: int):
  """bool[B, S]: which samples are real after FPS with `stride`.

  Pointcept keeps floor(R / stride) samples of a cloud with R points; here
  S = N // stride slots are kept for every cloud and the first
  floor(R / stride) of them are real. None stays None (no padding).
  """
  if mask is None:
    return None
  count = jnp.sum(mask, axis=1) // stride
  return jnp.arange(num_samples)[None, :] < count[:, None]


def count_real(mask, num_points: int):
  """float32[B, 1]: real points per cloud (N for no mask), at least 1 to divide by."""
  if mask is None:
    return jnp.full((1, 1), float(num_points), jnp.float32)
  return jnp.maximum(jnp.sum(mask, axis=1, keepdims=True), 1).astype(jnp.float32)

