"""The one path from points to per-view features: normalise, project, encode.

Zero-shot, GDPA (both of its paths), pre-training and detection all go
through these functions, so a projector setting (`projection.settings`)
means the same everywhere:

    views = encode.view_images(points, settings, mask=mask)     # CLIP's input per view
    features = encode.view_features(encode_depth, params, views) # float32[B, V, D]

A view reaches CLIP in one of three forms, and every encoder here takes them all:

* float32[..., S, S] grey depth in [0, 1]: CLIP2Point's modes with CLIP's
  normalisation (the default). The encoder folds the grey-to-RGB copy and
  CLIP's mean/std into its patch embedding (`clip.CLIP.encode_depth`).
* float32[..., S, S, 1] one channel CLIP reads unnormalised, as its RGB copy
  (the encoder sums its patch kernel over the colours instead of reading a
  copy 3 times the size): the PointCLIP modes as their official code feeds
  CLIP (`renderers.pointclip*.clip_input` of their maps, one channel of it),
  and CLIP2Point's modes with `render.clip_normalize=False`.
* float32[..., S, S, 3] images exactly as CLIP sees them: the PointCLIP modes
  with `render.clip_normalize=True` (their `clip_input`, normalised).

`encode_depth(params, views float32[M, S, S] or [M, S, S, C]) -> float32[M, D]`
is any image tower that reads them (`clip_depth_encoder`, `vision_encoder`).
"""

from typing import Callable

import jax
import jax.numpy as jnp

from clip2point_jax.errors import UserError
from clip2point_jax.loading import hf_clip
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import preprocess
from clip2point_jax.projection import settings as settings_lib
from clip2point_jax.projection.settings import RenderSettings
from renderers import cameras
from renderers import points as projector


def depth_maps(points: jax.Array, settings: RenderSettings, *, mask: jax.Array | None = None,
               views: jax.Array | None = None, distance: jax.Array | float | None = None) -> jax.Array:
  """Depth maps of every view of every cloud, at CLIP's input size S.

  Args:
    points: float32[B, N, 3], in the source's coordinates (CLIP2Point's modes
      centre and scale them here; the PointCLIPs use them as given, as their
      official code does).
    settings: the projector's settings.
    mask: optional bool[B, N]; False marks padding.
    views: overrides `settings.views`: float32[V, 2] or per cloud [B, V, 2]
      (CLIP2Point's modes only).
    distance: overrides `settings.distance`: scalar, float32[V] or [B, V]
      (CLIP2Point's modes only).

  Returns:
    float32[B, V, S, S]. CLIP2Point's modes: in [0, 1], background 1.0. The
    PointCLIPs: one channel of their unnormalised CLIP input (`clip_input`
    of the native maps: PointCLIP raw depths on 0, V2 [0, 1] on 1.0).
  """
  if mask is None:
    mask = jnp.ones(points.shape[:2], bool)
  if settings.pointclip:
    if views is not None or distance is not None:
      raise UserError(f"render.mode={settings.mode!r} renders its own fixed views; per-cloud views and "
                      "camera distances (pre-training's) need render.mode hard or soft")
    return _pointclip_images(points, mask, settings, normalize=False)[..., 0]
  points = preprocess.prepare_points(points, mask, settings.align_modelnet)
  if views is None:
    views = jnp.asarray(cameras.views_array(settings.views))
  return projector.render_depth(points, views, distance=settings.distance if distance is None else distance,
                                mask=mask, **settings.projector_kwargs())


def _pointclip_images(points, mask, settings: RenderSettings, normalize: bool) -> jax.Array:
  """A PointCLIP projector's maps as CLIP images: its `clip_input`, float32[B, V, S, S, 3]
  normalised, or unnormalised its one channel, float32[B, V, S, S, 1]."""
  projector_module = settings_lib.POINTCLIP_PROJECTORS[settings.mode]
  maps = projector_module.depth_maps(points, mask)
  images = projector_module.clip_input(maps, image_size=settings.image_size, normalize=normalize)
  # XLA drops the copies the slice does not read: no 3-channel image is written.
  return images if normalize else images[..., :1]


def view_images(points: jax.Array, settings: RenderSettings, *, mask: jax.Array | None = None,
                **projection) -> jax.Array:
  """What CLIP reads of every view of every cloud (the module doc's two forms).

  Args:
    points, settings, mask, projection (views, distance): as `depth_maps`.

  Returns:
    float32[B, V, S, S] grey depth (CLIP2Point's modes, normalised by the
    encoder); float32[B, V, S, S, 1], read unnormalised as its RGB copy: a
    PointCLIP mode's `clip_input(depth_maps(points))[..., :1]`, exactly, or
    CLIP2Point's depth with `settings.clip_normalize` False; or float32[B, V,
    S, S, 3], a PointCLIP mode's normalised `clip_input`, exactly.
  """
  if mask is None:
    mask = jnp.ones(points.shape[:2], bool)
  if settings.pointclip:
    if projection.get("views") is not None or projection.get("distance") is not None:
      depth_maps(points, settings, **projection)  # Raises the error.
    return _pointclip_images(points, mask, settings, normalize=settings.clip_normalize)
  depth = depth_maps(points, settings, mask=mask, **projection)
  return depth if settings.clip_normalize else depth[..., None]


def view_features(encode_depth: Callable, params, views: jax.Array) -> jax.Array:
  """float32[B, V, S, S] or [B, V, S, S, C] views -> float32[B, V, D] features, every view in one batch."""
  b, v = views.shape[:2]
  return encode_depth(params, views.reshape((b * v,) + views.shape[2:])).reshape(b, v, -1)


def points_to_features(encode_depth: Callable, params, points: jax.Array, settings: RenderSettings,
                       **projection) -> jax.Array:
  """`view_features` of `view_images`: float32[B, N, 3] -> float32[B, V, D]."""
  return view_features(encode_depth, params, view_images(points, settings, **projection))


def vision_encoder(loaded: hf_clip.LoadedCLIP) -> Callable:
  """`(vision params, views float32[M, S, S] or [M, S, S, C]) -> float32[M, projection_dim]`.

  The image tower of `loaded` alone (`clip.vision_params` of its params), with
  its compute settings. Grey depth in [0, 1] is read directly (the
  grey-to-RGB copy and CLIP's normalisation folded into the patch
  embedding); views with channels are CLIP's input as they are (one
  channel: its RGB copy).
  """
  tower = clip_lib.vision_tower(loaded.model)

  def encode(params, views):
    if views.ndim == 4:
      return tower.apply({"params": params}, images=views)
    return tower.apply({"params": params}, grey=views)

  return encode


def clip_depth_encoder(loaded: hf_clip.LoadedCLIP) -> Callable:
  """`(whole CLIP params, views float32[M, S, S] or [M, S, S, C]) -> features` of a loaded CLIP.

  As `vision_encoder`: grey depth through `encode_depth`, images through `encode_image`.
  """
  model = loaded.model

  def encode(params, views):
    method = model.encode_image if views.ndim == 4 else model.encode_depth
    return model.apply({"params": params}, views, method=method)

  return encode
