"""PointCLIP V2's zero-shot 'realistic projection': ten dense, smoothed depth maps.

Follows yangyangyang127/PointCLIP_V2 at commit 0b5aee8eca534593a6e4a5b249e9468474f16d4c:
`zeroshot_cls/trainers/mv_utils_zs.py` (`Realistic_Projection`,
`points2grid`, `Grid2Image`, `get3DGaussianKernel`, the `params` dict) for
the maps and `zeroshot_cls/trainers/zeroshot.py` (`PointCLIPV2_ZS.real_proj`)
for the CLIP input. Our own code, same float32 formulas, batched over clouds
and views with one scatter per cloud.

For a cloud p and view v (R1 of VIEW_ANGLES[v], R2 of TILT_ANGLES[v]):

  1. q = R2 (R1 p) + (0.5, 0.5, 1.5)              (the official `- translation`)
  2. per view: c = (max q + min q) / 2 per axis, r = max over axes of (max q - min q),
     q = (q - c) / r * 2; then q_x, q_y *= 0.8     (OBJ_RATIO)
  3. x = ceil((q_x + 1) / 2 * 112), y likewise, both clipped to [1, 110];
     s = ((q_z + 1) / 2 + 0.2) / 1.2 * 6           (DEPTH_BIAS, DEPTH_SLICES - 2)
     slice = ceil(s); the cell (slice, y, x) of an 8 x 112 x 112 grid of zeros
     keeps the largest clip(s, 1, 6) of its points.
  4. each slice, transposed to rows = x, columns = y: a 7 x 7 max-pool with
     stride 1 and padding 2 (112 -> 110), then the normalised 3 x 3 Gaussian
     of sigma 3 with zero padding 1.
  5. the maximum over slices; divided by the image's maximum; 1 minus that.

Quirks of the official code kept here:

* Step 2 re-normalises every view of every cloud to its own bounding box,
  so the maps do not change with the input's scale or position (up to float
  rounding), the translation of step 1 cancels out, and the projection is
  orthographic with no camera: nothing is ever behind it or out of view.
* The depth kept per pixel is the largest s, i.e. the farthest point, and
  after step 5 far points are dark (0 for the farthest) and the background
  white (1.0).
* The max-pool's padding (2) is smaller than half its window (7), so the
  maps shrink to 110 x 110 and each point's 7 x 7 block is centred one pixel
  up and left of it (rows x - 5 .. x + 3 after the blur).
* The slice index is the ceiling of the unclipped s while the stored value
  is the clipped s. For a bounding-box-normalised cloud s lies in [1, 6] so
  the clips, the x/y clip to [1, 110] and slices 0 and 7 do nothing (slice 7
  only if rounding pushes s above 6).
* The tilts are 20 degrees (pi/9) about y for the eight side views and 12
  (pi/15) for top and bottom; the translation of `_views_bias` is unused.
* Rotations are float32 `cos`/`sin` of float32 angles, applied one after the
  other; the division by 1.2 multiplies by float32(1 / 1.2), as CUDA divides
  a float32 tensor by a Python scalar.
* The Gaussian is 3 x 3 with sigma 3 (near a box filter), normalised twice
  as `get3DGaussianKernel` does.

How it runs: the grid of step 3 (8 x 112 x 112 cells per view, 4 GiB at
1,024 clouds) is never built. On GPUs the scatter of step 3 writes each
point into the 7 x 7 cells of step 4's max-pool output that its window
reaches, so it makes the pooled grid directly, inside the blur's zero
border; then the blur and the maximum over slices run as one pass. Other
backends, whose scatters are serial, write each point into the 7 pooled
rows only and pool the columns by shifted maxima. Maxima do not round, so the maps are `grid_to_image` of the
official grid (which the tests and bench/bench_v2_projection.py keep as the
reference) up to how XLA contracts the blur's multiply-adds in each program
(within 1e-6 on the CPU; the same floats on the GPUs measured); slice 0,
which no point reaches, is not stored.

Deviations: a view whose points all coincide (r = 0) divides by zero in the
official code (NaN cast to indices, an undefined scatter); here r = 1 there,
so the cloud lands in the grid's centre. Masked points (padding) are left out
of the bounding box and the grid; an image with no point stays all 1.0
instead of 0/0. The official conv runs in TF32 on Ampere and later GPUs by
PyTorch's default (`cudnn.allow_tf32`); here it is full float32.

`clip_input` is `real_proj`: the map (already three equal channels there)
resized to 224 x 224 by bilinear interpolation with align_corners=True and
fed to CLIP with no mean/std normalisation (`normalize=False`).
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from renderers import pointclip
from renderers import scatter

# mv_utils_zs.params and TRANS.
RESOLUTION = 112  # 'resolution': the grid's x and y cells
DEPTH_SLICES = 8  # 'depth'
OBJ_RATIO = 0.8  # 'obj_ratio': x and y shrink so the cloud leaves a margin
DEPTH_BIAS = 0.2  # 'depth_bias'
BACKGROUND = 0.0  # 'bg_clr': the grid's empty cells
POOL_SIZE = 7  # 'maxpoolxy' ('maxpoolz' 1: no pooling across slices)
POOL_PADDING = 2  # 'maxpoolpadxy'
BLUR_SIZE = 3  # 'convxy' ('convz' 1)
BLUR_SIGMA = 3.0  # 'convsigmaxy' ('convsigmaz' 1 leaves a z-weight of 1)
BLUR_PADDING = 1  # 'convpadxy'
TRANSLATION = (-0.5, -0.5, -1.5)  # Realistic_Projection's [-0.5, -0.5, TRANS], subtracted
MAP_SIZE = RESOLUTION + 2 * POOL_PADDING - POOL_SIZE + 1  # 110
CLIP_IMAGE_SIZE = 224  # real_proj's imsize
# (x, y, z) Euler angles in radians, R = Rx @ Ry @ Rz: Realistic_Projection._views ...
VIEW_ANGLES = (
    (1 * math.pi / 4, 0.0, math.pi / 2),
    (3 * math.pi / 4, 0.0, math.pi / 2),
    (5 * math.pi / 4, 0.0, math.pi / 2),
    (7 * math.pi / 4, 0.0, math.pi / 2),
    (0 * math.pi / 2, 0.0, math.pi / 2),
    (1 * math.pi / 2, 0.0, math.pi / 2),
    (2 * math.pi / 2, 0.0, math.pi / 2),
    (3 * math.pi / 2, 0.0, math.pi / 2),
    (0.0, -math.pi / 2, math.pi / 2),
    (0.0, math.pi / 2, math.pi / 2),
)
# ... and _views_bias, applied after them: "some bias to the view angle to reveal more surface".
TILT_ANGLES = tuple((0.0, math.pi / 9, 0.0) for _ in range(8)) + tuple((0.0, math.pi / 15, 0.0) for _ in range(2))
NUM_VIEWS = len(VIEW_ANGLES)


def views() -> tuple[np.ndarray, np.ndarray]:
  """(R1, R2), each float32[10, 3, 3]: a view's camera coordinates are R2 (R1 p) - TRANSLATION."""
  return pointclip.euler_matrices(VIEW_ANGLES), pointclip.euler_matrices(TILT_ANGLES)


def gaussian_kernel() -> np.ndarray:
  """float32[3, 3]: `get3DGaussianKernel(3, 1, sigma=3, zsigma=1)`'s one slice.

  exp(-d^2 / 18) for offsets d in {-1, 0, 1}, outer product, normalised, times
  the z-weight exp(0) = 1 and normalised again, all in float32.
  """
  offsets = np.arange(BLUR_SIZE, dtype=np.float32) - BLUR_SIZE // 2
  line = np.exp(-(offsets ** 2) / np.float32(2 * BLUR_SIGMA ** 2)).astype(np.float32)
  kernel = np.outer(line, line).astype(np.float32)
  kernel = (kernel / _sum_in_order(kernel)).astype(np.float32)
  kernel = (kernel * np.float32(1.0)).astype(np.float32)
  return (kernel / _sum_in_order(kernel)).astype(np.float32)


def _sum_in_order(values: np.ndarray) -> np.float32:
  # Element by element in float32, as torch's CPU sum of these 9 values: it
  # gives 1.0 for the second normalisation where numpy's pairwise sum gives
  # 0.99999994, one ulp on every weight.
  total = np.float32(0)
  for v in values.ravel():
    total = np.float32(total + v)
  return total


def depth_maps(points: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """PointCLIP V2's ten realistic-projection maps of each cloud, at their native 110 x 110.

  Args:
    points: float32[B, N, 3], any scale and position (every view is
      re-normalised to its bounding box).
    mask: optional bool[B, N]; False marks padding, which is skipped.

  Returns:
    float32[B, 10, 110, 110] in [0, 1]: background 1.0, the farthest point 0
    (formulas in the module doc). Rows follow the view's x axis, columns its
    y axis.
  """
  points, mask = pointclip.check_points(points, mask)
  return _depth_maps(points, mask)


class _Cells(NamedTuple):
  """Where each point of each view lands in the official grid; each field [B, V, N]."""
  valid: jax.Array  # bool: a real, finite point inside the slices
  slice: jax.Array  # int32: its depth slice, 1 .. 7 (ceil of the unclipped s)
  row: jax.Array  # int32: its row, from the view's x (1 .. 110)
  col: jax.Array  # int32: its column, from the view's y (1 .. 110)
  value: jax.Array  # float32: the depth it stores, clip(s, 1, 6)


def _cells(points, mask) -> _Cells:
  """Steps 1 to 3 of the module doc for every point of every view."""
  rot, tilt = views()
  q = pointclip.rotate(pointclip.rotate(points, rot), tilt)
  q = q - jnp.asarray(TRANSLATION, jnp.float32)
  valid = mask[:, None, :, None] & jnp.isfinite(q)
  valid = valid.all(-1, keepdims=True)
  top = jnp.max(jnp.where(valid, q, -jnp.inf), axis=2, keepdims=True)
  bottom = jnp.min(jnp.where(valid, q, jnp.inf), axis=2, keepdims=True)
  any_valid = valid.any(axis=2, keepdims=True)
  top = jnp.where(any_valid, top, 0.0)
  bottom = jnp.where(any_valid, bottom, 0.0)
  centre = (top + bottom) / 2.0
  extent = jnp.max(top - bottom, axis=-1, keepdims=True)
  extent = jnp.where(extent > 0, extent, 1.0)  # Official: 0/0 when the points coincide.
  q = (q - centre) / extent * 2.0
  x = q[..., 0] * OBJ_RATIO
  y = q[..., 1] * OBJ_RATIO
  z = q[..., 2]
  res = RESOLUTION
  col_x = jnp.clip(jnp.ceil((x + 1.0) / 2.0 * res), 1, res - 2)
  col_y = jnp.clip(jnp.ceil((y + 1.0) / 2.0 * res), 1, res - 2)
  # CUDA's tensor / scalar multiplies by the scalar's float32 reciprocal.
  s = ((z + 1.0) / 2.0 + DEPTH_BIAS) * (np.float32(1.0) / np.float32(1.0 + DEPTH_BIAS)) * (DEPTH_SLICES - 2)
  slice_index = jnp.ceil(s)
  value = jnp.clip(s, 1, DEPTH_SLICES - 2)
  # Slice 0 would need s <= 0, i.e. z < -1.4 after the normalisation to
  # [-1, 1]: no point reaches it, so it is not stored (the official code's
  # lower bound is 0).
  valid = valid[..., 0] & (slice_index >= 1) & (slice_index <= DEPTH_SLICES - 1)

  def as_int(a):
    return jnp.where(valid, a, 0).astype(jnp.int32)

  # The official grid is [slice, y, x], permuted to rows = x, columns = y.
  return _Cells(valid, as_int(slice_index), as_int(col_x), as_int(col_y), value)


def _grid_coordinates(points, mask):
  """Each point's cell in the full grid [V, D, 112, 112] (rows x, columns y) and its value:
  (flat int32[B, V, N], value float32[B, V, N]), out of range where not valid.

  The grid `grid_to_image` reads, as the official code builds it (tests, bench).
  """
  c = _cells(points, mask)
  res = RESOLUTION
  cells = DEPTH_SLICES * res * res
  view_offset = jnp.arange(NUM_VIEWS, dtype=jnp.int32)[None, :, None] * cells
  flat = view_offset + c.slice * (res * res) + c.row * res + c.col
  return jnp.where(c.valid, flat, NUM_VIEWS * cells), c.value


def _scatter_max_per_cloud(flat, values, size):
  # Into zeros (bg_clr) like torch_scatter's max with `out` given. Every value is >= 1,
  # so the maximum can run on the floats' bits (integer atomics on GPUs).
  return scatter.nonnegative_max(flat, values.astype(jnp.float32), size, fill=BACKGROUND)


def grid_to_image(grid: jax.Array) -> jax.Array:
  """`Grid2Image`: float32[..., D, 112, 112] grid (rows x, columns y) -> float32[..., 110, 110].

  Max-pool 7 x 7 (stride 1, padding 2), 3 x 3 Gaussian (zero padding 1), max
  over slices, divide by the image's maximum, 1 minus that. `depth_maps`
  computes the same without this grid (`_row_pooled_grid`).
  """
  # A 7 x 7 max is a 7 x 1 max of a 1 x 7 max (exactly: max does not round).
  return _blur_and_flatten(_max_filter(_max_filter(grid, -2), -1))


def _blur_and_flatten(pooled: jax.Array) -> jax.Array:
  """Pooled slices float32[..., D, 110, 110] -> the maps float32[..., 110, 110].

  The 3 x 3 Gaussian (zero padding 1) of each slice, the maximum over
  slices, divided by the image's maximum, 1 minus that.
  """
  lead = pooled.ndim - 2
  p = BLUR_PADDING
  padded = jnp.pad(pooled, ((0, 0),) * lead + ((p, p),) * 2)
  return _normalise(jnp.max(_blurred(padded), axis=-3))


def _blurred(padded: jax.Array) -> jax.Array:
  """The 3 x 3 Gaussian over slices that hold their zero padding: float32[..., H + 2, W + 2] ->
  float32[..., H, W]."""
  kernel = gaussian_kernel()
  rows, cols = padded.shape[-2] - 2 * BLUR_PADDING, padded.shape[-1] - 2 * BLUR_PADDING
  return sum(float(kernel[i, j]) * padded[..., i:i + rows, j:j + cols]
             for i in range(BLUR_SIZE) for j in range(BLUR_SIZE))


def _normalise(image: jax.Array) -> jax.Array:
  """Divided by each image's maximum (an empty image stays 0), 1 minus that."""
  top = jnp.max(image, axis=(-2, -1), keepdims=True)
  return 1.0 - image / jnp.where(top > 0, top, 1.0)


def _max_filter(x: jax.Array, axis: int, padding: float = -jnp.inf) -> jax.Array:
  """PyTorch's 1-D max-pool (window 7, stride 1, padding 2 with -inf) along `axis`.

  As three maxima of shifted copies (windows of 2, 4, then 7), which XLA fuses
  into one pass over the grid; `lax.reduce_window` took about as long as the
  whole zero-shot step's projection budget on an H100 (bench/RESULTS.md).
  `padding` 0 gives the same wherever every value is >= 0 (the grid's cells).
  """
  axis = axis % x.ndim
  pad = [(0, 0)] * x.ndim
  pad[axis] = (POOL_PADDING, POOL_PADDING)
  return _window_max(jnp.pad(x, pad, constant_values=padding), axis)


def _window_max(x: jax.Array, axis: int) -> jax.Array:
  """The maximum over each window of 7 along `axis`, no padding (n -> n - 6), as shifted maxima."""
  assert POOL_SIZE == 7, "the shifts below are for a window of 7"

  def shifted(a, start, length):
    return jax.lax.slice_in_dim(a, start, start + length, axis=axis)

  n = x.shape[axis]
  two = jnp.maximum(shifted(x, 0, n - 1), shifted(x, 1, n - 1))  # [i, i+1]
  four = jnp.maximum(shifted(two, 0, n - 3), shifted(two, 2, n - 3))  # [i, i+3]
  return jnp.maximum(shifted(four, 0, n - 6), shifted(four, 3, n - 6))  # [i, i+6]


def _pool_reach() -> jax.Array:
  """int32[7], -4 .. 2: the max-pool's output row r covers grid rows r - 2 .. r + 4, so a point
  in row x reaches output rows x - 4 .. x + 2 (columns likewise)."""
  return jnp.arange(POOL_SIZE, dtype=jnp.int32) - (POOL_SIZE - 1 - POOL_PADDING)


def _scatter_planes(cells: _Cells, in_plane: jax.Array, inside: jax.Array, plane_shape) -> jax.Array:
  """Each point's value scatter-maxed (into zeros, as the official grid starts) into the cells
  `in_plane` of its view's depth-slice plane, where `inside`: float32[B, V, 7, *plane_shape].

  in_plane, inside: int32 / bool[B, V, N, ...], a flat cell of the plane per point and reach.
  """
  b, slices = cells.value.shape[0], DEPTH_SLICES - 1
  reach = (None,) * (in_plane.ndim - cells.value.ndim)
  plane = (jnp.arange(NUM_VIEWS, dtype=jnp.int32)[None, :, None] * slices + cells.slice - 1)[(..., *reach)]
  plane_size = math.prod(plane_shape)
  total = NUM_VIEWS * slices * plane_size
  flat = jnp.where(inside, plane * plane_size + in_plane, total)
  values = jnp.broadcast_to(cells.value[(..., *reach)], flat.shape)
  grid = _scatter_max_per_cloud(flat.reshape(b, -1), values.reshape(b, -1), total)
  return grid.reshape(b, NUM_VIEWS, slices, *plane_shape)


# The GPUs' grid (`_pooled_grid`): pooled by the scatter, with the blur's zero border.
POOLED_SIDE = MAP_SIZE + 2 * BLUR_PADDING  # 112


def _pooled_grid(cells: _Cells) -> jax.Array:
  """Slices 1 .. 7 of the grid after the 7 x 7 max-pool, inside the blur's zero border:
  float32[B, V, 7, 112, 112], pooled cell (r, c) at (r + 1, c + 1).

  The scatter-max writes each point into the 49 pooled cells its window
  reaches (`_pool_reach`), which is the pooled grid, exactly (a maximum does
  not round), with no pass over a grid. On an H100 at batch 1,024 this took
  6.9 ms against 11.0 ms for 7 writes per point (`_row_pooled_grid`) and a
  pass for the columns (bench/RESULTS.md, 2026-12-07); on a CPU it is the
  slower one (72 against 31 ms at batch 8).
  """
  reach = _pool_reach()
  rows = cells.row[..., None, None] + reach[:, None]
  cols = cells.col[..., None, None] + reach[None, :]
  inside = (cells.valid[..., None, None] & (rows >= 0) & (rows < MAP_SIZE)
            & (cols >= 0) & (cols < MAP_SIZE))
  in_plane = (rows + BLUR_PADDING) * POOLED_SIDE + cols + BLUR_PADDING
  return _scatter_planes(cells, in_plane, inside, (POOLED_SIDE, POOLED_SIDE))


def _maps_from_pooled(grid: jax.Array) -> jax.Array:
  """The pooled slices inside the blur's zero border, float32[..., 7, 112, 112] -> the maps
  float32[..., 110, 110].

  The blur reads the border in place (no padded copy); the maximum over the
  7 slices is an unrolled chain of elementwise maxima, one loop over the
  maps' pixels rather than a reduction over a major axis (13.5 -> 11.0 ms
  on an H100 with the row-pooled grid). Every operation is
  `grid_to_image`'s, in its order.
  """
  blurred = _blurred(grid)
  return _normalise(functools.reduce(jnp.maximum, [blurred[..., k, :, :] for k in range(blurred.shape[-3])]))


# Other backends' grid (`_row_pooled_grid`): rows already pooled, with the
# zero borders the column pool and the blur read, so no pass pads it.
# Its rows are the GPUs' grid's (POOLED_SIDE, the blur's zero rows 0 and 111).
COLUMN_BORDER = POOL_SIZE // 2  # 3 zero columns each side: the pool's output has the blur's ring
GRID_COLUMNS = RESOLUTION + 2 * COLUMN_BORDER  # 118


def _row_pooled_grid(cells: _Cells) -> jax.Array:
  """Slices 1 .. 7 of the grid with the max-pool's pass over rows already done:
  float32[B, V, 7, 112, 118], pooled row r at row r + 1, grid column c at column c + 3,
  zeros elsewhere.

  The scatter-max writes each point into the 7 pooled rows its window
  reaches (`_pool_reach`) in its column, which is the grid pooled over rows,
  exactly (a maximum does not round), without the 4 GiB grid at batch 1,024
  or a pass over it. The zero rows 0 and 111 are the blur's padding; the 3
  zero columns each side let the column pool (`_column_pooled`) run without
  padding: zeros stand for its -inf padding since every cell is 0 or at
  least 1.
  """
  rows = cells.row[..., None] + _pool_reach()
  inside = cells.valid[..., None] & (rows >= 0) & (rows < MAP_SIZE)
  in_plane = (rows + BLUR_PADDING) * GRID_COLUMNS + cells.col[..., None] + COLUMN_BORDER
  return _scatter_planes(cells, in_plane, inside, (POOLED_SIDE, GRID_COLUMNS))


def _column_pooled(grid: jax.Array) -> jax.Array:
  """`_row_pooled_grid`'s float32[..., 7, 112, 118] -> the pooled slices inside the blur's zero
  border, float32[..., 7, 112, 112].

  The column pool as shifted maxima (windows 2, 4, 7) gives map columns
  -1 .. 110; columns -1 and 110 are set to zero, the blur's padding.
  """
  pooled = _window_max(grid, -1)  # 112 columns
  column = jnp.arange(pooled.shape[-1])
  return jnp.where((column >= BLUR_PADDING) & (column < pooled.shape[-1] - BLUR_PADDING), pooled, 0.0)


def _maps_scatter_pooled(cells: _Cells) -> jax.Array:
  return _maps_from_pooled(_pooled_grid(cells))


def _maps_row_pooled(cells: _Cells) -> jax.Array:
  return _maps_from_pooled(_column_pooled(_row_pooled_grid(cells)))


@jax.jit
def _depth_maps(points, mask):
  # GPUs: a scatter's atomic writes are cheap and passes over the 3.5 GB grid
  # are not, so the scatter does the whole pool (49 writes per point). Other
  # backends scatter in a loop, so it does the rows only (7 writes) and the
  # columns take one pass. The same floats either way.
  return jax.lax.platform_dependent(_cells(points, mask), cuda=_maps_scatter_pooled,
                                    rocm=_maps_scatter_pooled, default=_maps_row_pooled)


@functools.partial(jax.jit, static_argnames=("image_size", "normalize"))
def clip_input(maps: jax.Array, image_size: int = CLIP_IMAGE_SIZE,
               normalize: bool = False) -> jax.Array:
  """PointCLIP V2's maps as CLIP images (`PointCLIPV2_ZS.real_proj`).

  Args:
    maps: float32[B, V, H, W] from `depth_maps`.
    image_size: CLIP's input side S (224 in the official code).
    normalize: subtract CLIP's mean and divide by its std per channel. The
      official code does not (False): CLIP sees [0, 1] maps, background 1.

  Returns:
    float32[B, V, S, S, 3], channels last like the package's CLIP images.
  """
  return pointclip.to_clip_input(maps, image_size, normalize)
