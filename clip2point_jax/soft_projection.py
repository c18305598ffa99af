"""A differentiable (soft) version of the depth projector.

The hard projector of `projection` keeps, per pixel, the depth of the nearest
point whose disc covers the pixel centre, so gradients reach only that depth.
Here both decisions are smoothed, in the spirit of SoftRas and PyTorch3D's
softmax blending, with static shapes so it runs wherever the hard mode does:

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
candidates (K from r + s), against the hard mode's single scatter-min.
"""

import functools

import jax
import jax.numpy as jnp

from clip2point_jax import projection
from clip2point_jax.errors import UserError


def _smootherstep(t: jax.Array) -> jax.Array:
  t = jnp.clip(t, 0.0, 1.0)
  return t * t * t * (t * (6.0 * t - 15.0) + 10.0)


def rasterize_soft(ndc: jax.Array, mask: jax.Array, *, image_size: int,
                   radius: float, sigma: float, gamma: float | jax.Array):
  """Soft depth and soft silhouette per pixel (formulas in the module doc).

  Args:
    ndc: float[B, V, N, 3] from `project_points` (float32 or float64).
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
  fp = projection.point_footprints(ndc, image_size=image_size, reach=outer)
  cover = _smootherstep((outer * outer - fp.dist2) / (outer * outer - inner * inner))
  covered = fp.inside & (cover > 0) & valid[..., None, None]
  pixels = b * v * image_size * image_size
  flat = jnp.where(covered, fp.flat, pixels).reshape(-1)  # Out of range: dropped.

  # Log-weights, with the double `where` keeping log(0) out of the gradient.
  log_cover = jnp.where(covered, jnp.log(jnp.where(covered, cover, 1.0)), -jnp.inf)
  log_w = (log_cover - (z / gamma)[..., None, None]).reshape(-1)
  top = jnp.full((pixels,), -jnp.inf, dtype).at[flat].max(jax.lax.stop_gradient(log_w), mode="drop")
  top = top.at[flat].get(mode="fill", fill_value=0.0)
  w = jnp.exp(jnp.where(covered.reshape(-1), log_w - top, -jnp.inf))
  z_cand = jnp.broadcast_to(z[..., None, None], covered.shape).reshape(-1)
  # alpha = 1 - prod(1 - c). A full cover (c = 1) adds log(1e-30) rather than
  # -inf, so sums stay finite and alpha is still exactly 1; the double `where`
  # keeps log1p(-1) out of the gradient.
  partial = covered & (cover < 1.0)
  log_miss = jnp.where(partial, jnp.log1p(-jnp.where(partial, cover, 0.0)),
                       jnp.where(covered, jnp.log(1e-30), 0.0)).reshape(-1)
  # Three scalar scatters: on XLA:CPU they beat one scatter of 3-vectors.
  w_sum = jnp.zeros((pixels,), dtype).at[flat].add(w, mode="drop")
  wz_sum = jnp.zeros((pixels,), dtype).at[flat].add(w * z_cand, mode="drop")
  log_miss = jnp.zeros((pixels,), dtype).at[flat].add(log_miss, mode="drop")
  # w_sum >= 1 wherever something covers the pixel (its top weight is 1).
  depth = jnp.where(w_sum > 0, wz_sum / jnp.where(w_sum > 0, w_sum, 1.0), 0.0)
  alpha = -jnp.expm1(log_miss)
  shape = (b, v, image_size, image_size)
  return depth.reshape(shape), alpha.reshape(shape)


def normalize_soft_depth(depth: jax.Array, alpha: jax.Array) -> jax.Array:
  """`projection.normalize_depth` with the foreground blended by alpha.

  Args:
    depth: float[..., H, W] soft depth D.
    alpha: float[..., H, W] soft silhouette in [0, 1].

  Returns:
    float[..., H, W] in [0, 1]; 1.0 (background) where alpha is 0. Equals the
    hard normalisation wherever alpha is 0 or 1.
  """
  background = projection.BACKGROUND
  fore = alpha * depth
  z_max = jnp.max(fore, axis=(-2, -1), keepdims=True)
  z_min = jnp.min(fore + (1.0 - alpha) * background, axis=(-2, -1), keepdims=True)
  scale = jnp.where(z_max > 0, z_max, 1.0)
  scaled = (depth - z_min) / scale * projection.FOREGROUND_SCALE
  return alpha * scaled + (1.0 - alpha) * background


def render_soft_depth(points: jax.Array, views, *,
                      image_size: int = projection.IMAGE_SIZE,
                      radius: float = projection.POINT_RADIUS,
                      sigma: float = projection.SOFT_SIGMA,
                      gamma: float | jax.Array = projection.SOFT_GAMMA,
                      distance: jax.Array | float = 1.0,
                      mask: jax.Array | None = None) -> jax.Array:
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

  Returns:
    float[B, V, image_size, image_size] in [0, 1]; background is 1.0.
  """
  points = jnp.asarray(points)
  if points.ndim != 3 or points.shape[-1] != 3:
    raise UserError(f"points must have shape [B, N, 3], got {points.shape}")
  if not sigma > 0:
    raise UserError(f"soft rendering needs sigma > 0, got {sigma!r}")
  if isinstance(gamma, (int, float)) and not gamma > 0:
    raise UserError(f"soft rendering needs gamma > 0, got {gamma!r}")
  dtype = points.dtype if points.dtype == jnp.float64 else jnp.float32
  if mask is None:
    mask = jnp.ones(points.shape[:2], bool)
  return _render_soft(points.astype(dtype), jnp.asarray(views, dtype), distance, mask, gamma,
                      image_size=image_size, radius=radius, sigma=sigma)


# Jitted as a whole, so eager calls compile once instead of op by op.
@functools.partial(jax.jit, static_argnames=("image_size", "radius", "sigma"))
def _render_soft(points, views, distance, mask, gamma, *, image_size, radius, sigma):
  ndc = projection.project_points(points, views, distance, dtype=points.dtype)
  depth, alpha = rasterize_soft(ndc, mask, image_size=image_size, radius=radius,
                                sigma=sigma, gamma=gamma)
  return normalize_soft_depth(depth, alpha)
