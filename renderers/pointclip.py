"""PointCLIP's zero-shot projector (V1): six perspective depth maps, no occlusion.

Follows ZrrSkywalker/PointCLIP at commit 8656f2c0b275962da5efa6b56c691572e564b5b0:
`trainers/mv_utils_zs.py` (`PCViews`, `euler2mat`, `points2depth` and
`distribute` with size_x = size_y = 1) for the maps and `trainers/zeroshot.py`
(`PointCLIP_ZS.mv_proj`) for the CLIP input. Our own code, same float32
formulas, batched over clouds and views with one scatter per cloud.

For a cloud p (used as given: no centring or scaling) and view v:

  camera:  q = R_v p + (0, 0, 1.6)            (R_v = Rx Ry Rz of VIEW_ANGLES[v];
                                               the official `points - TRANS`, TRANS = -1.6)
  pixel:   u = (q_x / (q_z + 1e-12) + 1) * 128 / 2,   row = ceil(u - 0.5)
           w = (q_y / (q_z + 1e-12) + 1) * 128 / 2,   col = ceil(w - 0.5)
  kept:    0 <= row, col <= 127 and q_z >= 0
  map:     sum_i q_z,i / (q_z,i + 1e-12)  /  sum_i 1 / (q_z,i + 1e-12)
           over the kept points i on the pixel: the harmonic mean of their
           depths; 0 where none lands.

Quirks of the official code kept here:

* No occlusion: every point on a pixel counts, near or far (the harmonic
  mean leans to the nearer ones, nothing hides them).
* Rows come from the camera's x and columns from its y (the official
  `coordinates = x * W + y`), so maps are transposed against the usual
  image convention.
* Pixel centres sit at integer u: pixel i takes u in (i - 0.5, i + 0.5]. The
  projected square [-1, 1] spans u in [0, 128], so NDC -1 is kept (row 0)
  while NDC +1 (u = 128) and the last half pixel before it are dropped.
* The camera sits 1.6 from the origin with a focal length of 1 (a 90 degree
  field of view) and the cloud is not normalised: a cloud larger than the
  unit ball reaches behind the camera (dropped) or out of the image, and the
  maps change with the cloud's scale and position.
* The rotations are float32 `cos`/`sin` of float32 angles, so pi/2 leaves
  entries of about 4e-8 where an exact rotation has 0.
* Background is 0 and foreground the raw depth (about 0.6 to 2.6 for a unit
  cloud); CLIP gets these values with no mean/std normalisation.

Deviations: masked points (padding) are skipped; a skipped point whose
q_z + 1e-12 is exactly 0 adds NaN to some pixel in the official code and
nothing here.

`clip_input` is `mv_proj`: the grey map copied to three channels and resized
to 224 x 224 by bilinear interpolation with align_corners=True; the official
code feeds that to CLIP unnormalised (`normalize=False`). It then casts to
CLIP's dtype (float16 on GPU); the cast is left to the model.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from renderers import scatter
from renderers.errors import InputError

RESOLUTION = 128  # mv_utils_zs.RESOLUTION
CAMERA_OFFSET = 1.6  # -mv_utils_zs.TRANS: the camera sits at z = -1.6
EPSILON = 1e-12  # points2depth's and distribute's epsilon
CLIP_IMAGE_SIZE = 224  # mv_proj's upsample size
# (x, y, z) Euler angles in radians of PCViews' six views, R = Rx @ Ry @ Rz.
VIEW_ANGLES = (
    (0 * math.pi / 2, 0.0, math.pi / 2),
    (1 * math.pi / 2, 0.0, math.pi / 2),
    (2 * math.pi / 2, 0.0, math.pi / 2),
    (3 * math.pi / 2, 0.0, math.pi / 2),
    (0.0, -math.pi / 2, math.pi / 2),
    (0.0, math.pi / 2, math.pi / 2),
)
NUM_VIEWS = len(VIEW_ANGLES)
# OpenAI CLIP's image statistics (clip/clip.py `_transform`), for normalize=True.
# Duplicated from clip2point_jax.models.clip: renderers stands alone.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def euler_matrices(angles) -> np.ndarray:
  """Rotations Rx(a) @ Ry(b) @ Rz(c) as the official `euler2mat` builds them.

  Args:
    angles: [V, 3] (x, y, z) angles in radians; rounded to float32 first, as
      the official code does, and their cos/sin taken in float32.

  Returns:
    float32[V, 3, 3]; camera coordinates are R @ p (the official code
    multiplies row vectors by R^T).
  """
  a = np.asarray(angles, np.float64).astype(np.float32)
  cos, sin = np.cos(a), np.sin(a)
  zero, one = np.zeros_like(a[:, 0]), np.ones_like(a[:, 0])

  def stack(*rows):
    return np.stack(rows, -1).reshape(-1, 3, 3)

  cx, cy, cz = cos.T
  sx, sy, sz = sin.T
  zmat = stack(cz, -sz, zero, sz, cz, zero, zero, zero, one)
  ymat = stack(cy, zero, sy, zero, one, zero, -sy, zero, cy)
  xmat = stack(one, zero, zero, zero, cx, -sx, zero, sx, cx)
  return np.matmul(np.matmul(xmat, ymat), zmat).astype(np.float32)


def views() -> np.ndarray:
  """float32[6, 3, 3]: each view's rotation R_v (camera = R_v p + (0, 0, 1.6))."""
  return euler_matrices(VIEW_ANGLES)


def rotate(points: jax.Array, rotations) -> jax.Array:
  """float32[B, N, 3] or [B, V, N, 3] x float32[V, 3, 3] -> float32[B, V, N, 3], R @ p per view.

  Written out as (R_j0 x + R_j1 y) + R_j2 z, element by element, rather than
  as a matmul: a matmul's summation order (and on accelerators its default
  bfloat16/TF32 rounding) depends on the batch's size, which moved points of
  one cloud across pixel boundaries when other clouds joined its batch.
  """
  r = jnp.asarray(rotations, jnp.float32)
  if points.ndim == 3:
    points = points[:, None]
  terms = [points[..., k:k + 1] * r[:, None, :, k] for k in range(3)]
  return (terms[0] + terms[1]) + terms[2]


def check_points(points, mask):
  """(float32[B, N, 3] points, bool[B, N] mask), all True when None; InputError on bad shapes."""
  points = jnp.asarray(points, jnp.float32)
  if points.ndim != 3 or points.shape[-1] != 3:
    raise InputError(f"points must have shape [B, N, 3], got {points.shape}")
  if mask is None:
    mask = jnp.ones(points.shape[:2], bool)
  mask = jnp.asarray(mask, bool)
  if mask.shape != points.shape[:2]:
    raise InputError(f"mask must have shape {points.shape[:2]}, got {mask.shape}")
  return points, mask


def depth_maps(points: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """PointCLIP's six depth maps of each cloud, at its native 128 x 128.

  Args:
    points: float32[B, N, 3], used as given (the official code does not
      normalise; ModelNet40's h5 clouds come in the unit ball, z-up).
    mask: optional bool[B, N]; False marks padding, which is skipped.

  Returns:
    float32[B, 6, 128, 128]: per pixel the harmonic mean of the depths of
    every point on it, 0 where none lands (formulas in the module doc).
    Rows follow the camera's x axis, columns its y axis.
  """
  points, mask = check_points(points, mask)
  return _depth_maps(points, mask)


@jax.jit
def _depth_maps(points, mask):
  b = points.shape[0]
  size = RESOLUTION
  cam = rotate(points, views())
  # The official `points - translation` with translation (0, 0, -1.6).
  depth = cam[..., 2] - jnp.float32(-CAMERA_OFFSET)
  denom = depth + jnp.float32(EPSILON)
  u = (cam[..., 0] / denom + 1.0) * size / 2.0
  w = (cam[..., 1] / denom + 1.0) * size / 2.0
  row = jnp.ceil(u + (-0.5))
  col = jnp.ceil(w + (-0.5))
  kept = ((row >= 0) & (row <= size - 1) & (col >= 0) & (col <= size - 1)
          & (depth >= 0) & mask[:, None, :])
  weight = jnp.where(kept, 1.0 / denom, 0.0)
  weighted = depth * weight
  image = jnp.arange(NUM_VIEWS, dtype=jnp.int32)[None, :, None] * (size * size)
  pixels = NUM_VIEWS * size * size
  flat = jnp.where(kept, image + jnp.where(kept, row, 0).astype(jnp.int32) * size
                   + jnp.where(kept, col, 0).astype(jnp.int32), pixels)
  flat = flat.reshape(b, -1)
  weight_sum = scatter.per_cloud("add", 0.0, pixels, flat, weight.reshape(b, -1))
  value_sum = scatter.per_cloud("add", 0.0, pixels, flat, weighted.reshape(b, -1))
  # distribute: empty pixels divide by 1 instead of 0.
  maps = value_sum / jnp.where(weight_sum == 0.0, 1.0, weight_sum)
  return maps.reshape(b, NUM_VIEWS, size, size)


def _resize_axis(in_size: int, out_size: int):
  """Source indices and weights of torch's bilinear align_corners=True along one axis.

  As the CUDA kernel computes them in float32: scale = (in - 1) / (out - 1),
  src = scale * i, i0 = floor(src), i1 = i0 + 1 unless at the last index,
  weights (1 - (src - i0), src - i0).
  """
  scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else np.float32(0)
  src = (scale * np.arange(out_size, dtype=np.float32)).astype(np.float32)
  i0 = src.astype(np.int32)
  i1 = i0 + (i0 < in_size - 1).astype(np.int32)
  l1 = (src - i0.astype(np.float32)).astype(np.float32)
  l0 = (np.float32(1) - l1).astype(np.float32)
  return i0, i1, l0, l1


def resize_align_corners(images: jax.Array, size: int) -> jax.Array:
  """float32[..., H, W] -> float32[..., size, size], torch's bilinear with align_corners=True.

  `jax.image.resize` samples at pixel centres (align_corners=False), which
  shifts and blurs the maps differently; this is the official `upsample` /
  `interpolate(mode='bilinear', align_corners=True)`, value for value:
  h0 (w0 a + w1 b) + h1 (w0 c + w1 d).
  """
  images = jnp.asarray(images, jnp.float32)
  r0, r1, h0, h1 = _resize_axis(images.shape[-2], size)
  c0, c1, w0, w1 = _resize_axis(images.shape[-1], size)

  def across(rows):
    return w0 * jnp.take(rows, c0, axis=-1) + w1 * jnp.take(rows, c1, axis=-1)

  top = across(jnp.take(images, r0, axis=-2))
  bottom = across(jnp.take(images, r1, axis=-2))
  return h0[:, None] * top + h1[:, None] * bottom


def to_clip_input(grey: jax.Array, image_size: int, normalize: bool) -> jax.Array:
  """float32[..., H, W] -> float32[..., S, S, 3]: resized, copied to RGB, optionally mean/std normalised."""
  if not isinstance(image_size, int) or image_size < 1:
    raise InputError(f"image_size must be a positive int, got {image_size!r}")
  resized = resize_align_corners(grey, image_size)
  rgb = jnp.repeat(resized[..., None], 3, axis=-1)
  if normalize:
    rgb = (rgb - jnp.asarray(CLIP_MEAN, jnp.float32)) / jnp.asarray(CLIP_STD, jnp.float32)
  return rgb


@functools.partial(jax.jit, static_argnames=("image_size", "normalize"))
def clip_input(maps: jax.Array, image_size: int = CLIP_IMAGE_SIZE,
               normalize: bool = False) -> jax.Array:
  """PointCLIP's maps as CLIP images (`PointCLIP_ZS.mv_proj`).

  Args:
    maps: float32[B, V, H, W] from `depth_maps`.
    image_size: CLIP's input side S (224 in the official code).
    normalize: subtract CLIP's mean and divide by its std per channel. The
      official code does not (False): CLIP sees raw depths, background 0.

  Returns:
    float32[B, V, S, S, 3], channels last like the package's CLIP images
    (`encode_image` takes them reshaped to [B * V, S, S, 3]).
  """
  return to_clip_input(maps, image_size, normalize)
