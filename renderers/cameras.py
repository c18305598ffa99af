"""Cameras shared by the point projector and the mesh renderer.

PyTorch3D's conventions throughout, so both renderers show view k of a shape
from exactly the same pose:

* A view is (elevation, azimuth) in degrees on a sphere around the origin, as
  `look_at_view_transform(dist, elev, azim)` places it: the camera sits at
  distance * (cos e sin a, sin e, cos e cos a), looks at the origin, up is +y.
* View space: +X left, +Y up, +Z from the camera into the scene; a world
  point p has view coordinates axes @ p + (0, 0, distance).
* NDC: +X left, +Y up, the image spans [-1, 1] on both axes; pixel (row i,
  column j) of an HxW image has its centre at (1 - (2j+1)/W, 1 - (2i+1)/H).
* The rasterizers keep view-space z as each pixel's depth (PyTorch3D replaces
  NDC z by it too) and skip what lies behind the camera.

Two projections:

* `OrthographicCamera` (`FoVOrthographicCameras` with the default [-1, 1]
  extent): NDC x, y are the view x, y. As in CLIP2Point's renderer, the scene
  is first scaled by 1/distance, so distance acts as a zoom; depth is then
  p . z_axis / distance + distance.
* `PerspectiveCamera` (`FoVPerspectiveCameras`, square images): NDC x, y are
  view x, y times cot(fov / 2) / z; the scene is not scaled.
"""

import dataclasses
import math
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from renderers.errors import InputError

# (elevation, azimuth) in degrees. Front, right, back, left, top, bottom.
VIEWS_ZERO_SHOT = ((0, 0), (0, 90), (0, 180), (0, 270), (90, 0), (-90, 180))
# The six orthogonal views plus four corner views, as CLIP2Point pre-trains.
VIEWS_PRETRAIN = tuple(zip(
    (0, 90, 180, 270, 225, 225, 315, 315, 0, 0),
    (0, 0, 0, 0, -45, 45, -45, 45, -90, 90)))


def views_array(views: Sequence[Sequence[float]]) -> np.ndarray:
  """float32[V, 2] (elevation, azimuth) in degrees from a list of pairs."""
  array = np.asarray(views, np.float32)
  if array.ndim != 2 or array.shape[1] != 2 or len(array) == 0:
    raise InputError(f"views must be a non-empty list of (elevation, azimuth) pairs, got {views!r}")
  return array


@dataclasses.dataclass(frozen=True)
class OrthographicCamera:
  """`FoVOrthographicCameras` semantics, with CLIP2Point's 1/distance zoom.

  znear and zfar only set `ndc_z` (PyTorch3D's NDC depth); the rasterizers use
  view depth, as PyTorch3D's do, and so does not clip at them.
  """
  znear: float = 1.0
  zfar: float = 100.0

  def ndc_z(self, z: jax.Array) -> jax.Array:
    """PyTorch3D's NDC depth of view depth z: (z - znear) / (zfar - znear)."""
    return (z - self.znear) / (self.zfar - self.znear)


@dataclasses.dataclass(frozen=True)
class PerspectiveCamera:
  """`FoVPerspectiveCameras` semantics (square images, aspect ratio 1).

  fov is the full vertical field of view in degrees. znear and zfar only set
  `ndc_z`; the rasterizers use view depth and skip points with z <= 0.
  """
  fov: float = 60.0
  znear: float = 1.0
  zfar: float = 100.0

  def __post_init__(self):
    if not 0.0 < self.fov < 180.0:
      raise InputError(f"PerspectiveCamera: fov must be in (0, 180) degrees, got {self.fov!r}")

  def ndc_z(self, z: jax.Array) -> jax.Array:
    """PyTorch3D's NDC depth of view depth z: zfar (z - znear) / ((zfar - znear) z)."""
    return self.zfar * (z - self.znear) / ((self.zfar - self.znear) * z)


Camera = OrthographicCamera | PerspectiveCamera
ORTHOGRAPHIC = OrthographicCamera()


def _normalize(v: jax.Array, eps: float = 1e-5) -> jax.Array:
  # torch.nn.functional.normalize: divide by max(norm, eps), never by zero.
  return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), eps)


def camera_position(elevation: jax.Array, azimuth: jax.Array,
                    distance: jax.Array | float = 1.0, *,
                    dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """World position of the camera of a view: float32[..., 3] (or `dtype`)."""
  deg = jnp.asarray(math.pi / 180.0, dtype)
  elev = deg * jnp.asarray(elevation, dtype)
  azim = deg * jnp.asarray(azimuth, dtype)
  dist = jnp.asarray(distance, dtype)
  return jnp.stack(jnp.broadcast_arrays(
      dist * jnp.cos(elev) * jnp.sin(azim),
      dist * jnp.sin(elev),
      dist * jnp.cos(elev) * jnp.cos(azim)), axis=-1)


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
  position = camera_position(elevation, azimuth, distance, dtype=dtype)
  up = jnp.array([0.0, 1.0, 0.0], dtype)
  z_axis = _normalize(-position)
  x_axis = _normalize(jnp.cross(jnp.broadcast_to(up, z_axis.shape), z_axis))
  y_axis = _normalize(jnp.cross(z_axis, x_axis))
  degenerate = jnp.all(jnp.abs(x_axis) <= 5e-3, axis=-1, keepdims=True)
  x_axis = jnp.where(degenerate, _normalize(jnp.cross(y_axis, z_axis)), x_axis)
  return jnp.stack([x_axis, y_axis, z_axis], axis=-2)


def look_at_view_transform(elevation, azimuth, distance=1.0, *, dtype=jnp.float32):
  """PyTorch3D's (R, T): view = world @ R + T, for points as row vectors.

  Returns:
    R float32[..., 3, 3] (its columns are the camera axes) and T float32[..., 3].
  """
  axes = camera_axes(elevation, azimuth, distance, dtype=dtype)
  position = camera_position(elevation, azimuth, distance, dtype=dtype)
  return jnp.swapaxes(axes, -1, -2), -jnp.einsum("...ij,...j->...i", axes, position)


def _shift_depth(view: jax.Array, dist: jax.Array) -> jax.Array:
  """view float[B, V, N, 3] with dist float[B, V] added to z: by a concatenate, as
  `.at[..., 2].add` lowers to a scatter, which TPUs run as a serial loop."""
  return jnp.concatenate([view[..., :2], view[..., 2:] + dist[..., None, None]], axis=-1)


def project(points: jax.Array, views: jax.Array, distance: jax.Array | float = 1.0,
            camera: Camera = ORTHOGRAPHIC, *, dtype: jnp.dtype = jnp.float32) -> jax.Array:
  """Points in each view's NDC, with view-space depth.

  Args:
    points: float32[B, N, 3] world coordinates.
    views: float32[V, 2] or float32[B, V, 2], (elevation, azimuth) in degrees.
    distance: camera distance: scalar, float32[V] or float32[B, V].
    camera: `OrthographicCamera` (CLIP2Point's zoom by 1/distance) or
      `PerspectiveCamera`; a static Python object.
    dtype: compute dtype (float32 unless a float64 gradient check asks).

  Returns:
    float32[B, V, N, 3] (or `dtype`): NDC x, NDC y and view depth z. Points
    that a perspective camera cannot see (z <= 0) get NDC x = y = inf.
  """
  points = jnp.asarray(points, dtype)
  views = jnp.asarray(views, dtype)
  batch = points.shape[0]
  views = jnp.broadcast_to(views, (batch,) + views.shape[-2:])
  dist = jnp.broadcast_to(jnp.asarray(distance, dtype), views.shape[:-1])
  axes = camera_axes(views[..., 0], views[..., 1], dist, dtype=dtype)  # [B, V, 3, 3]
  if isinstance(camera, OrthographicCamera):
    scaled = points[:, None] / dist[..., None, None]  # [B, V, N, 3]
    view = jnp.einsum("bvnc,bvkc->bvnk", scaled, axes, precision="highest")
    return _shift_depth(view, dist)
  if not isinstance(camera, PerspectiveCamera):
    raise InputError(f"unknown camera {camera!r}; use OrthographicCamera or PerspectiveCamera")
  view = jnp.einsum("bnc,bvkc->bvnk", points, axes, precision="highest")
  view = _shift_depth(view, dist)
  z = view[..., 2:]
  visible = z > 0
  focal = jnp.asarray(1.0 / math.tan(math.radians(camera.fov) / 2.0), dtype)
  xy = jnp.where(visible, view[..., :2] * focal / jnp.where(visible, z, 1.0), jnp.inf)
  return jnp.concatenate([xy, z], axis=-1)


def pixel_ndc(index: jax.Array, image_size: int, dtype=jnp.float32) -> jax.Array:
  """NDC coordinate of the centre of pixel `index` along one image axis.

  Index i (a row counted from the top, or a column counted from the left) has
  its centre at 1 - (2i + 1) / image_size (PyTorch3D's PixToNonSquareNdc);
  indices outside [0, image_size) extrapolate.
  """
  flipped = (image_size - 1 - jnp.asarray(index)).astype(dtype)
  return -1.0 + (2.0 * flipped + 1.0) / jnp.asarray(image_size, dtype)
