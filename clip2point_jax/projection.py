"""CLIP2Point's point-cloud-to-depth projector, in pure JAX.

CLIP2Point renders depth maps with PyTorch3D's `PointsRasterizer` behind
`look_at_view_transform` cameras and an orthographic projection. This module
reproduces that pipeline with the same float32 formulas, batched over clouds
and views: every point is splatted into its static footprint of candidate
pixels and each pixel keeps the nearest depth by a scatter-min.

Conventions (PyTorch3D's): views are (elevation, azimuth) in degrees; NDC +X
points left and +Y up; pixel (row i, column j) of an HxW image has its centre at
NDC (1 - (2j+1)/W, 1 - (2i+1)/H).
"""

import functools
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.errors import UserError

# (elevation, azimuth) in degrees. Front, right, back, left, top, bottom.
VIEWS_ZERO_SHOT = ((0, 0), (0, 90), (0, 180), (0, 270), (90, 0), (-90, 180))
# The six orthogonal views plus four corner views, as CLIP2Point pre-trains.
VIEWS_PRETRAIN = tuple(zip(
    (0, 90, 180, 270, 225, 225, 315, 315, 0, 0),
    (0, 0, 0, 0, -45, 45, -45, 45, -90, 90)))

IMAGE_SIZE = 224
POINT_RADIUS = 0.02
# CLIP2Point maps foreground depth into [0, 200/255]; background is white.
FOREGROUND_SCALE = 200.0 / 255.0
BACKGROUND = 1.0
# Soft mode: half-width of the disc's smoothed edge (NDC) and the depth
# temperature of the soft z-buffer (depth units). About a pixel at 224 and a
# tenth of a typical front-to-back gap, so images stay close to the hard ones.
SOFT_SIGMA = 0.01
SOFT_GAMMA = 0.01
RENDER_MODES = ("hard", "soft")


def normalize_points(points: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """Centres each cloud at its mean and scales it into the unit ball.

  Args:
    points: float32[..., N, 3].
    mask: optional bool[..., N]; False points are ignored for the statistics
      (and left as they are).

  Returns:
    float32[..., N, 3]. A cloud whose points all coincide maps to the origin.
  """
  points = jnp.asarray(points, jnp.float32)
  if mask is None:
    mask = jnp.ones(points.shape[:-1], bool)
  weight = mask[..., None].astype(points.dtype)
  count = jnp.maximum(weight.sum(-2, keepdims=True), 1.0)
  centred = points - jnp.sum(jnp.where(mask[..., None], points, 0.0), -2, keepdims=True) / count
  norms = jnp.where(mask, jnp.linalg.norm(jnp.where(mask[..., None], centred, 0.0), axis=-1), 0.0)
  scale = jnp.max(norms, axis=-1, initial=0.0)[..., None, None]
  # A cloud whose points coincide (up to the rounding of its mean) has no
  # extent to scale by: it collapses to the origin instead of to noise.
  magnitude = jnp.max(jnp.where(mask[..., None], jnp.abs(points), 0.0), axis=(-2, -1), initial=0.0)
  degenerate = scale <= 1e-6 * (1.0 + magnitude[..., None, None])
  return jnp.where(degenerate, 0.0, centred / jnp.where(degenerate, 1.0, scale))


def align_modelnet(points: jax.Array) -> jax.Array:
  """ModelNet is z-up; CLIP2Point turns it y-up: (x, y, z) -> (-y, z, -x)."""
  x, y, z = points[..., 0], points[..., 1], points[..., 2]
  return jnp.stack([-y, z, -x], axis=-1)


def views_array(views: Sequence[Sequence[float]]) -> np.ndarray:
  """float32[V, 2] (elevation, azimuth) in degrees from a list of pairs."""
  array = np.asarray(views, np.float32)
  if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
    raise UserError(f"views must be a non-empty list of (elevation, azimuth) pairs, got {views!r}")
  return array


def _normalize(v: jax.Array, eps: float = 1e-5) -> jax.Array:
  # torch.nn.functional.normalize: divide by max(norm, eps), never by zero.
  return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), eps)


def camera_axes(elevation: jax.Array, azimuth: jax.Array,
                distance: jax.Array | float = 1.0, *,
                dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """Camera axes of PyTorch3D's `look_at_view_transform` (at origin, up +y).

  Args:
    elevation, azimuth: float32[...] in degrees (broadcastable).
    distance: the camera's distance from the origin (broadcastable).
    dtype: compute dtype; the soft renderer passes float64 for gradient checks.

  Returns:
    float32[..., 3, 3] (or `dtype`) whose rows are the camera's x, y and z axes
    in world coordinates. Near the poles, where up x z vanishes, PyTorch3D's fallback
    x = y x z is used, so every view gets a proper rotation.
  """
  deg = jnp.asarray(math.pi / 180.0, dtype)
  elev = deg * jnp.asarray(elevation, dtype)
  azim = deg * jnp.asarray(azimuth, dtype)
  dist = jnp.asarray(distance, dtype)
  position = jnp.stack(jnp.broadcast_arrays(
      dist * jnp.cos(elev) * jnp.sin(azim),
      dist * jnp.sin(elev),
      dist * jnp.cos(elev) * jnp.cos(azim)), axis=-1)
  up = jnp.array([0.0, 1.0, 0.0], dtype)
  z_axis = _normalize(-position)
  x_axis = _normalize(jnp.cross(jnp.broadcast_to(up, z_axis.shape), z_axis))
  y_axis = _normalize(jnp.cross(z_axis, x_axis))
  degenerate = jnp.all(jnp.abs(x_axis) <= 5e-3, axis=-1, keepdims=True)
  x_axis = jnp.where(degenerate, _normalize(jnp.cross(y_axis, z_axis)), x_axis)
  return jnp.stack([x_axis, y_axis, z_axis], axis=-2)


def project_points(points: jax.Array, views: jax.Array,
                   distance: jax.Array | float = 1.0, *,
                   dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """Points in each view's NDC, with depth along the view direction.

  Args:
    points: float32[B, N, 3].
    views: float32[V, 2] or float32[B, V, 2], (elevation, azimuth) in degrees.
    distance: scalar, float32[V] or float32[B, V].
    dtype: compute dtype (float32 unless a float64 gradient check asks).

  Returns:
    float32[B, V, N, 3] (or `dtype`): NDC x, NDC y and depth z. As in
    CLIP2Point the cloud is scaled by 1/distance first, and
    z = p . z_axis + distance.
  """
  points = jnp.asarray(points, dtype)
  views = jnp.asarray(views, dtype)
  batch = points.shape[0]
  views = jnp.broadcast_to(views, (batch,) + views.shape[-2:])
  dist = jnp.broadcast_to(jnp.asarray(distance, dtype), views.shape[:-1])
  axes = camera_axes(views[..., 0], views[..., 1], dist, dtype=dtype)  # [B, V, 3, 3]
  scaled = points[:, None] / dist[..., None, None]  # [B, V, N, 3]
  view = jnp.einsum("bvnc,bvkc->bvnk", scaled, axes, precision="highest")
  return view.at[..., 2].add(dist[..., None])


def footprint_size(image_size: int, radius: float) -> int:
  """Side K of the square of candidate pixels a point can cover.

  A point covers pixels within `radius * image_size / 2` pixels of it. Starting
  the square at floor(centre - that radius), K = floor(2 * radius_px) + 2 leaves
  a margin of at least half a pixel on the far side for rounding.
  """
  return int(math.floor(radius * image_size)) + 2


def _pixel_ndc(index: jax.Array, size: int, dtype) -> jax.Array:
  # PyTorch3D's PixToNonSquareNdc on the flipped index.
  flipped = (size - 1 - index).astype(dtype)
  return -1.0 + (2.0 * flipped + 1.0) / jnp.asarray(size, dtype)


class Footprints(NamedTuple):
  """Each point's square of K x K candidate pixels, for every view."""
  dist2: jax.Array  # float[B, V, N, K, K]: squared NDC distance point -> pixel centre
  inside: jax.Array  # bool[B, V, N, K, K]: the pixel lies in the image
  flat: jax.Array  # int32[B, V, N, K, K]: index into the B*V*H*W pixels


def point_footprints(ndc: jax.Array, *, image_size: int, reach: float) -> Footprints:
  """The candidate pixels of every point, for splatting with a scatter.

  Args:
    ndc: float[B, V, N, 3] from `project_points`; the distances are computed
      in its dtype.
    image_size: H = W.
    reach: the largest NDC distance at which a point still touches a pixel.
  """
  b, v, _, _ = ndc.shape
  size = image_size
  k = footprint_size(size, reach)
  x, y = ndc[..., 0], ndc[..., 1]
  # Continuous column/row of the point's centre: inverse of the pixel-centre map.
  col = ((1.0 - x) * size - 1.0) / 2.0
  row = ((1.0 - y) * size - 1.0) / 2.0
  reach_px = reach * size / 2.0
  offsets = jnp.arange(k, dtype=jnp.int32)
  cols = jnp.floor(col - reach_px).astype(jnp.int32)[..., None] + offsets  # [B,V,N,K]
  rows = jnp.floor(row - reach_px).astype(jnp.int32)[..., None] + offsets
  dx = _pixel_ndc(cols, size, ndc.dtype) - x[..., None]
  dy = _pixel_ndc(rows, size, ndc.dtype) - y[..., None]
  dist2 = dy[..., :, None] * dy[..., :, None] + dx[..., None, :] * dx[..., None, :]
  inside = ((rows >= 0) & (rows < size))[..., :, None] & ((cols >= 0) & (cols < size))[..., None, :]
  image = (jnp.arange(b * v, dtype=jnp.int32) * (size * size)).reshape(b, v, 1, 1, 1)
  flat = image + rows[..., :, None] * size + cols[..., None, :]
  return Footprints(dist2, inside, flat)


def rasterize_zbuffer(ndc: jax.Array, mask: jax.Array, *, image_size: int,
                      radius: float) -> jax.Array:
  """Nearest depth per pixel (PyTorch3D points_per_pixel=1).

  Args:
    ndc: float32[B, V, N, 3] from `project_points`.
    mask: bool[B, N]; False points are skipped.
    image_size: H = W.
    radius: point radius in NDC units.

  Returns:
    float32[B, V, H, W] depth of the nearest covering point; +inf where no
    point covers the pixel. Points behind the camera (z < 0) are skipped.
  """
  b, v = ndc.shape[:2]
  pixels = b * v * image_size * image_size
  z = ndc[..., 2]
  fp = point_footprints(ndc, image_size=image_size, reach=radius)
  valid = jnp.isfinite(ndc).all(-1) & (z >= 0) & mask[:, None, :]
  covered = fp.inside & (fp.dist2 < jnp.float32(radius) * jnp.float32(radius)) & valid[..., None, None]
  flat = jnp.where(covered, fp.flat, pixels)  # Out of range: dropped.
  depth = jnp.broadcast_to(z[..., None, None], flat.shape)
  zbuf = jnp.full((pixels,), jnp.inf, jnp.float32)
  zbuf = zbuf.at[flat.reshape(-1)].min(depth.reshape(-1), mode="drop")
  return zbuf.reshape(b, v, image_size, image_size)


def normalize_depth(zbuf: jax.Array) -> jax.Array:
  """CLIP2Point's per-image depth normalisation.

  Foreground is z > 0. With z_max the largest foreground depth and z_min the
  smallest value of the image once background is set to 1 (so
  min(min foreground, 1) whenever any background is left), foreground becomes
  (z - z_min) / z_max * 200/255 and background 1.0. An image with no foreground
  is all 1.0.

  Args:
    zbuf: float32[..., H, W], +inf (or any value <= 0) where empty.

  Returns:
    float32[..., H, W] in [0, 1].
  """
  foreground = jnp.isfinite(zbuf) & (zbuf > 0)
  z = jnp.where(foreground, zbuf, BACKGROUND)
  z_max = jnp.max(jnp.where(foreground, zbuf, 0.0), axis=(-2, -1), keepdims=True)
  z_min = jnp.min(z, axis=(-2, -1), keepdims=True)
  scaled = (z - z_min) / jnp.where(z_max > 0, z_max, 1.0) * FOREGROUND_SCALE
  return jnp.where(foreground, scaled, BACKGROUND)


def render_depth(points: jax.Array, views, *, image_size: int = IMAGE_SIZE,
                 radius: float = POINT_RADIUS, distance: jax.Array | float = 1.0,
                 mask: jax.Array | None = None, mode: str = "hard",
                 sigma: float = SOFT_SIGMA, gamma: float = SOFT_GAMMA) -> jax.Array:
  """Multi-view depth maps of point clouds, as CLIP2Point renders them.

  Jit-able and batched: no Python loop runs over points or views. Points are
  used as given (call `normalize_points` / `align_modelnet` first).

  mode="hard" is CLIP2Point's z-buffer; gradients reach only the depth of each
  pixel's winning point. mode="soft" is the differentiable renderer of
  `soft_projection.render_soft_depth`: smooth discs and a soft z-buffer, so
  points, views and distance all get gradients; it tends to the hard images as
  sigma and gamma go to 0, and computes in the points' dtype (float64 allowed).

  Args:
    points: float32[B, N, 3]. Non-finite points are skipped, like masked ones;
      use `check_points` at the input boundary to reject them with an error.
    views: (elevation, azimuth) pairs in degrees: float32[V, 2] or [B, V, 2].
    image_size: side of the square images.
    radius: point radius in NDC units (the image spans [-1, 1]).
    distance: camera distance: scalar, float32[V] or float32[B, V] (the
      pre-training jitter varies it per cloud and view).
    mask: optional bool[B, N]; False marks padding.
    mode: "hard" or "soft".
    sigma: soft mode only: half-width in NDC of the discs' smoothed edge; a
      static Python float (it sizes the footprint).
    gamma: soft mode only: depth temperature of the soft z-buffer.

  Returns:
    float32[B, V, image_size, image_size] in [0, 1]; background is 1.0.
  """
  if mode not in RENDER_MODES:
    raise UserError(f"render mode must be one of {RENDER_MODES}, got {mode!r}")
  if mode == "soft":
    # Imported here: soft_projection builds on this module.
    from clip2point_jax import soft_projection  # pylint: disable=g-import-not-at-top
    return soft_projection.render_soft_depth(
        points, views, image_size=image_size, radius=radius, sigma=sigma,
        gamma=gamma, distance=distance, mask=mask)
  points = jnp.asarray(points, jnp.float32)
  if points.ndim != 3 or points.shape[-1] != 3:
    raise UserError(f"points must have shape [B, N, 3], got {points.shape}")
  if mask is None:
    mask = jnp.ones(points.shape[:2], bool)
  return _render_hard(points, jnp.asarray(views, jnp.float32), distance, mask,
                      image_size=image_size, radius=radius)


# Jitted as a whole, so eager calls compile once instead of op by op.
@functools.partial(jax.jit, static_argnames=("image_size", "radius"))
def _render_hard(points, views, distance, mask, *, image_size, radius):
  ndc = project_points(points, views, distance)
  zbuf = rasterize_zbuffer(ndc, mask, image_size=image_size, radius=radius)
  return normalize_depth(zbuf)


def check_points(points: np.ndarray, source: str = "points") -> np.ndarray:
  """Host-side validation of clouds before they enter a jitted function.

  Args:
    points: float[..., N, 3] numpy array.
    source: what to name in the error (a file path, "batch 3", ...).

  Returns:
    The points as float32.

  Raises:
    UserError naming `source` and the first offending cloud if the shape is
    wrong, a cloud is empty or a coordinate is NaN/inf.
  """
  array = np.asarray(points)
  if array.ndim < 2 or array.shape[-1] != 3:
    raise UserError(f"{source}: expected points of shape [..., N, 3], got {array.shape}")
  if array.shape[-2] == 0:
    raise UserError(f"{source}: the point cloud is empty")
  finite = np.isfinite(array).all(axis=-1)
  if not finite.all():
    bad = np.argwhere(~finite)[0]
    where = f"cloud {tuple(bad[:-1])}, " if len(bad) > 1 else ""
    raise UserError(f"{source}: non-finite coordinate (NaN or inf) at {where}point {bad[-1]} "
                    f"({int((~finite).sum())} bad points in all)")
  return array.astype(np.float32)
