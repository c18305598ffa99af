"""Point clouds to CLIP2Point depth maps, in pure JAX: a hard and a soft projector.

CLIP2Point renders depth maps with PyTorch3D's `PointsRasterizer` behind
`look_at_view_transform` cameras and an orthographic projection. The hard
projector reproduces that pipeline with the same float32 formulas, batched
over clouds and views: every point is splatted into its static footprint of
candidate pixels and each pixel keeps the nearest depth by a scatter-min (on
the depths' bits: `renderers.scatter`), or,
for TPUs, by one of the scatter-free equivalents in `renderers.zbuffer`
(`zbuffer=`). Cameras and pixel conventions are PyTorch3D's, from
`renderers.cameras`.

The soft projector is a differentiable version of it: the hard mode passes
gradients only to each pixel's winning depth. Both decisions are smoothed, in
the spirit of SoftRas and PyTorch3D's softmax blending, with static shapes so
it runs wherever the hard mode does:

1. Coverage. Point i covers a pixel at squared NDC distance d2 with
     c_i = smootherstep(((r + s)^2 - d2) / ((r + s)^2 - max(r - s, 0)^2)),
   smootherstep(t) = t^3 (6 t^2 - 15 t + 10) on t clipped to [0, 1]: 1 inside
   radius r - s, 0 beyond r + s, and twice continuously differentiable in the
   point's x and y. Being exactly 0 outside r + s, it needs no truncation: the
   static footprint of `footprint_size(image_size, r + s)` holds all of it.
2. Depth. A softmin over the covering points' depths z_i, with temperature g:
     w_i = c_i exp(-z_i / g),   D = sum_i w_i z_i / sum_i w_i.
   For stability each weight is computed as exp(log c_i - z_i / g - m) with m
   the pixel's largest log-weight (a scatter-max under stop_gradient, so it
   cancels from D and its gradient): the top weight is exactly 1.
3. Foreground. The soft silhouette alpha = 1 - prod_i (1 - c_i), from a
   scatter-add of log(1 - c_i) (log 1e-30 for c_i = 1); 0 where nothing covers the
   pixel, 1 where a point fully covers it.
4. Normalisation. The hard rule with foreground blended by alpha:
     z_max = max over pixels of alpha D,
     z_min = min over pixels of alpha D + (1 - alpha) * 1,
     image = alpha (D - z_min) / z_max * 200/255 + (1 - alpha) * 1.

As s and g go to 0, c_i becomes the hard disc, D the nearest depth and alpha
the hard foreground mask, so the image tends to the hard mode's. z_min and
z_max pass gradients to their arg-min/arg-max pixel only, as a max does.

Cost: one scatter-max, one gather and three scatter-adds over B*V*N*K^2
candidates (K from r + s), against the hard mode's single scatter-min. Those
scatters make the soft mode a GPU and CPU design: on TPUs XLA runs a large
scatter as a loop (the hard mode has `zbuffer=` for that; the soft one has no
scatter-free variant).
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from renderers import cameras
from renderers import scatter
from renderers import zbuffer as zbuffers
from renderers.errors import InputError

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
# How the hard mode keeps each pixel's nearest depth: "scatter" (a scatter-min),
# "sort" or "dense" (no scatter; `renderers.zbuffer`), or "auto": the scatter
# on GPUs and CPUs, `zbuffers.TPU_MODE` on TPUs. All give the same images.
ZBUFFER_MODES = zbuffers.MODES


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


def footprint_size(image_size: int, radius: float) -> int:
  """Side K of the square of candidate pixels a point can cover.

  A point covers pixels within `radius * image_size / 2` pixels of it. Starting
  the square at floor(centre - that radius), K = floor(2 * radius_px) + 2 leaves
  a margin of at least half a pixel on the far side for rounding.
  """
  return int(math.floor(radius * image_size)) + 2


class Footprints(NamedTuple):
  """Each point's square of K x K candidate pixels, for every view."""
  dist2: jax.Array  # float[B, V, N, K, K]: squared NDC distance point -> pixel centre
  inside: jax.Array  # bool[B, V, N, K, K]: the pixel lies in the image
  flat: jax.Array  # int32[B, V, N, K, K]: index into the cloud's V*H*W pixels
  rows: jax.Array  # int32[B, V, N, K]: image row of each footprint row (may lie outside)
  cols: jax.Array  # int32[B, V, N, K]: image column of each footprint column


def point_footprints(ndc: jax.Array, *, image_size: int, reach: float) -> Footprints:
  """The candidate pixels of every point, for splatting with a scatter.

  Args:
    ndc: float[B, V, N, 3] from `cameras.project`; the distances are computed
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
  dx = cameras.pixel_ndc(cols, size, ndc.dtype) - x[..., None]
  dy = cameras.pixel_ndc(rows, size, ndc.dtype) - y[..., None]
  dist2 = dy[..., :, None] * dy[..., :, None] + dx[..., None, :] * dx[..., None, :]
  inside = ((rows >= 0) & (rows < size))[..., :, None] & ((cols >= 0) & (cols < size))[..., None, :]
  image = (jnp.arange(v, dtype=jnp.int32) * (size * size)).reshape(1, v, 1, 1, 1)
  flat = image + rows[..., :, None] * size + cols[..., None, :]
  return Footprints(dist2, inside, flat, rows, cols)


def rasterize_zbuffer(ndc: jax.Array, mask: jax.Array, *, image_size: int,
                      radius: float, zbuffer: str = "auto") -> jax.Array:
  """Nearest depth per pixel (PyTorch3D points_per_pixel=1).

  Args:
    ndc: float32[B, V, N, 3] from `cameras.project`.
    mask: bool[B, N]; False points are skipped.
    image_size: H = W.
    radius: point radius in NDC units.
    zbuffer: one of `ZBUFFER_MODES`: how each pixel keeps its nearest depth.
      Every mode makes the same coverage decisions and returns the same
      array, bit for bit; "auto" picks by the platform the program is
      lowered for (so an export for TPUs from a CPU gets the TPU choice).

  Returns:
    float32[B, V, H, W] depth of the nearest covering point; +inf where no
    point covers the pixel. Points behind the camera (z < 0) are skipped.
  """
  if zbuffer not in ZBUFFER_MODES:
    raise InputError(f"zbuffer must be one of {ZBUFFER_MODES}, got {zbuffer!r}")
  if zbuffer == "auto":
    of_mode = lambda mode: functools.partial(rasterize_zbuffer, image_size=image_size,
                                             radius=radius, zbuffer=mode)
    # Only the branch of the platform lowered for reaches the program.
    return jax.lax.platform_dependent(ndc, mask, tpu=of_mode(zbuffers.TPU_MODE),
                                      default=of_mode("scatter"))
  b, v = ndc.shape[:2]
  pixels = v * image_size * image_size  # per cloud
  z = ndc[..., 2]
  fp = point_footprints(ndc, image_size=image_size, reach=radius)
  valid = jnp.isfinite(ndc).all(-1) & (z >= 0) & mask[:, None, :]
  covered = fp.inside & (fp.dist2 < jnp.float32(radius) * jnp.float32(radius)) & valid[..., None, None]
  if zbuffer == "dense":
    return zbuffers.dense_min(covered, fp.rows[..., 0], fp.cols[..., 0], z, image_size=image_size)
  flat = jnp.where(covered, fp.flat, pixels).reshape(b, -1)  # Out of range: dropped.
  depth = jnp.broadcast_to(z[..., None, None], covered.shape).astype(jnp.float32).reshape(b, -1)
  if zbuffer == "sort":
    zbuf = zbuffers.sort_min(flat, depth, pixels)
  else:
    zbuf = scatter.nonnegative_min(flat, depth, pixels)  # Covered depths are >= 0.
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
                 sigma: float = SOFT_SIGMA, gamma: float = SOFT_GAMMA,
                 camera: cameras.Camera = cameras.ORTHOGRAPHIC,
                 zbuffer: str = "auto") -> jax.Array:
  """Multi-view depth maps of point clouds, as CLIP2Point renders them.

  Jit-able and batched: no Python loop runs over points or views. Points are
  used as given (call `normalize_points` first).

  mode="hard" is CLIP2Point's z-buffer; gradients reach only the depth of each
  pixel's winning point. mode="soft" is `render_soft_depth`: smooth discs and
  a soft z-buffer, so points, views and distance all get gradients; it tends
  to the hard images as sigma and gamma go to 0, and computes in the points'
  dtype (float64 allowed).

  Args:
    points: float32[B, N, 3]. Non-finite points are skipped, like masked ones
      (reject them with an error at the input boundary).
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
    camera: CLIP2Point's orthographic camera (the default) or a
      `cameras.PerspectiveCamera`.
    zbuffer: hard mode only: one of `ZBUFFER_MODES` (`rasterize_zbuffer`);
      "auto" scatters on GPUs and CPUs and avoids scatters on TPUs. The
      images do not depend on it.

  Returns:
    float32[B, V, image_size, image_size] in [0, 1]; background is 1.0.
  """
  if mode not in RENDER_MODES:
    raise InputError(f"render mode must be one of {RENDER_MODES}, got {mode!r}")
  if mode == "soft":
    return render_soft_depth(points, views, image_size=image_size, radius=radius, sigma=sigma,
                             gamma=gamma, distance=distance, mask=mask, camera=camera)
  points = jnp.asarray(points, jnp.float32)
  if points.ndim != 3 or points.shape[-1] != 3:
    raise InputError(f"points must have shape [B, N, 3], got {points.shape}")
  if mask is None:
    mask = jnp.ones(points.shape[:2], bool)
  if zbuffer not in ZBUFFER_MODES:
    raise InputError(f"zbuffer must be one of {ZBUFFER_MODES}, got {zbuffer!r}")
  return _render_hard(points, jnp.asarray(views, jnp.float32), distance, mask,
                      image_size=image_size, radius=radius, camera=camera, zbuffer=zbuffer)


# Jitted as a whole, so eager calls compile once instead of op by op.
@functools.partial(jax.jit, static_argnames=("image_size", "radius", "camera", "zbuffer"))
def _render_hard(points, views, distance, mask, *, image_size, radius, camera, zbuffer):
  ndc = cameras.project(points, views, distance, camera)
  zbuf = rasterize_zbuffer(ndc, mask, image_size=image_size, radius=radius, zbuffer=zbuffer)
  return normalize_depth(zbuf)


def _smootherstep(t: jax.Array) -> jax.Array:
  t = jnp.clip(t, 0.0, 1.0)
  return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


def rasterize_soft(ndc: jax.Array, mask: jax.Array, *, image_size: int,
                   radius: float, sigma: float, gamma: float | jax.Array):
  """Soft depth and soft silhouette per pixel (formulas in the module doc).

  Args:
    ndc: float[B, V, N, 3] from `cameras.project` (float32 or float64).
    mask: bool[B, N]; False points are skipped.
    image_size: H = W.
    radius: disc radius r in NDC units.
    sigma: half-width s of the disc's smoothed edge, NDC units; static.
    gamma: depth temperature g of the softmin.

  Returns:
    (depth, alpha), each float[B, V, H, W] in the dtype of `ndc`: the softmin
    depth D (0 where nothing covers the pixel) and the silhouette in [0, 1].
    Points behind the camera (z < 0) and non-finite points are skipped.
  """
  b, v = ndc.shape[:2]
  dtype = ndc.dtype
  outer = radius + sigma
  inner = max(radius - sigma, 0.0)
  valid = jnp.isfinite(ndc).all(-1) & (ndc[..., 2] >= 0) & mask[:, None, :]
  # Zeroed so a skipped point's NaN can't leak into anyone's gradient.
  ndc = jnp.where(valid[..., None], ndc, 0.0)
  z = ndc[..., 2]
  fp = point_footprints(ndc, image_size=image_size, reach=outer)
  cover = _smootherstep((outer * outer - fp.dist2) / (outer * outer - inner * inner))
  covered = fp.inside & (cover > 0) & valid[..., None, None]
  pixels = v * image_size * image_size  # per cloud
  flat = jnp.where(covered, fp.flat, pixels).reshape(b, -1)  # Out of range: dropped.

  # Log-weights, with the double `where` keeping log(0) out of the gradient.
  log_cover = jnp.where(covered, jnp.log(jnp.where(covered, cover, 1.0)), -jnp.inf)
  log_w = (log_cover - (z / gamma)[..., None, None]).reshape(b, -1)
  top = scatter.per_cloud("max", -jnp.inf, pixels, flat, jax.lax.stop_gradient(log_w))
  top = jnp.take_along_axis(top, flat, axis=1, mode="fill", fill_value=0.0)
  w = jnp.exp(jnp.where(covered.reshape(b, -1), log_w - top, -jnp.inf))
  z_cand = jnp.broadcast_to(z[..., None, None], covered.shape).reshape(b, -1)
  # alpha = 1 - prod(1 - c). A full cover (c = 1) adds log(1e-30) rather than
  # -inf, so sums stay finite and alpha is still exactly 1; the double `where`
  # keeps log1p(-1) out of the gradient.
  partial = covered & (cover < 1.0)
  log_miss = jnp.where(partial, jnp.log1p(-jnp.where(partial, cover, 0.0)),
                       jnp.where(covered, jnp.log(1e-30), 0.0)).reshape(b, -1)
  # Three scalar scatters: on XLA:CPU they beat one scatter of 3-vectors.
  w_sum = scatter.per_cloud("add", 0.0, pixels, flat, w)
  wz_sum = scatter.per_cloud("add", 0.0, pixels, flat, w * z_cand)
  log_miss = scatter.per_cloud("add", 0.0, pixels, flat, log_miss)
  # w_sum >= 1 wherever something covers the pixel (its top weight is 1).
  depth = jnp.where(w_sum > 0, wz_sum / jnp.where(w_sum > 0, w_sum, 1.0), 0.0)
  alpha = -jnp.expm1(log_miss)
  shape = (b, v, image_size, image_size)
  return depth.reshape(shape), alpha.reshape(shape)


def normalize_soft_depth(depth: jax.Array, alpha: jax.Array) -> jax.Array:
  """`normalize_depth` with the foreground blended by alpha.

  Args:
    depth: float[..., H, W] soft depth D.
    alpha: float[..., H, W] soft silhouette in [0, 1].

  Returns:
    float[..., H, W] in [0, 1]; 1.0 (background) where alpha is 0. Equals the
    hard normalisation wherever alpha is 0 or 1.
  """
  background = BACKGROUND
  fore = alpha * depth
  z_max = jnp.max(fore, axis=(-2, -1), keepdims=True)
  z_min = jnp.min(fore + (1.0 - alpha) * background, axis=(-2, -1), keepdims=True)
  scale = jnp.where(z_max > 0, z_max, 1.0)
  scaled = (depth - z_min) / scale * FOREGROUND_SCALE
  return alpha * scaled + (1.0 - alpha) * background


def render_soft_depth(points: jax.Array, views, *,
                      image_size: int = IMAGE_SIZE,
                      radius: float = POINT_RADIUS,
                      sigma: float = SOFT_SIGMA,
                      gamma: float | jax.Array = SOFT_GAMMA,
                      distance: jax.Array | float = 1.0,
                      mask: jax.Array | None = None,
                      camera: cameras.Camera = cameras.ORTHOGRAPHIC) -> jax.Array:
  """Differentiable multi-view depth maps; `render_depth(..., mode="soft")`.

  Jit-able, vmap-able, static shapes; gradients flow to points, views
  (elevation and azimuth in degrees) and distance.

  Args:
    points: float[B, N, 3]. float64 stays float64 when x64 is enabled (for
      gradient checks); anything else computes in float32.
    views: float[V, 2] or float[B, V, 2], (elevation, azimuth) in degrees.
    image_size: side of the square images.
    radius: disc radius in NDC units.
    sigma: half-width of the discs' smoothed edge in NDC units; a static
      Python float > 0, as it sizes the footprint.
    gamma: depth temperature of the soft z-buffer, > 0.
    distance: camera distance: scalar, float[V] or float[B, V].
    mask: optional bool[B, N]; False marks padding.
    camera: as for `render_depth`.

  Returns:
    float[B, V, image_size, image_size] in [0, 1]; background is 1.0.
  """
  points = jnp.asarray(points)
  if points.ndim != 3 or points.shape[-1] != 3:
    raise InputError(f"points must have shape [B, N, 3], got {points.shape}")
  if not sigma > 0:
    raise InputError(f"soft rendering needs sigma > 0, got {sigma!r}")
  if isinstance(gamma, (int, float)) and not gamma > 0:
    raise InputError(f"soft rendering needs gamma > 0, got {gamma!r}")
  dtype = points.dtype if points.dtype == jnp.float64 else jnp.float32
  if mask is None:
    mask = jnp.ones(points.shape[:2], bool)
  return _render_soft(points.astype(dtype), jnp.asarray(views, dtype), distance, mask, gamma,
                      image_size=image_size, radius=radius, sigma=sigma, camera=camera)


# Jitted as a whole, so eager calls compile once instead of op by op.
@functools.partial(jax.jit, static_argnames=("image_size", "radius", "sigma", "camera"))
def _render_soft(points, views, distance, mask, gamma, *, image_size, radius, sigma, camera):
  ndc = cameras.project(points, views, distance, camera, dtype=points.dtype)
  depth, alpha = rasterize_soft(ndc, mask, image_size=image_size, radius=radius,
                                sigma=sigma, gamma=gamma)
  return normalize_soft_depth(depth, alpha)
