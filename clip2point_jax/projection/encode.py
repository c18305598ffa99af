"""The one path from points to per-view features: normalise, project, encode.

Zero-shot, GDPA (both of its paths), pre-training and detection all go
through these functions, so a projector setting (`projection.settings`)
means the same everywhere:

    depth = encode.depth_maps(points, settings, mask=mask)          # float32[B, V, S, S]
    features = encode.view_features(encode_depth, params, depth)     # float32[B, V, D]

`encode_depth(params, depth float32[M, S, S]) -> float32[M, D]` is any image
tower that reads depth maps (`clip_depth_encoder`, `vision_encoder`).
"""

from typing import Callable

import jax
import jax.numpy as jnp

from clip2point_jax.loading import hf_clip
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import preprocess
from clip2point_jax.projection.settings import RenderSettings
from renderers import cameras
from renderers import points as projector


def depth_maps(points: jax.Array, settings: RenderSettings, *, mask: jax.Array | None = None,
               views: jax.Array | None = None, distance: jax.Array | float | None = None) -> jax.Array:
  """Depth maps of every view of every cloud.

  Args:
    points: float32[B, N, 3], in the source's coordinates (centred and scaled here).
    settings: the projector's settings.
    mask: optional bool[B, N]; False marks padding.
    views: overrides `settings.views`: float32[V, 2] or per cloud [B, V, 2].
    distance: overrides `settings.distance`: scalar, float32[V] or [B, V].

  Returns:
    float32[B, V, S, S] in [0, 1], background 1.0.
  """
  if mask is None:
    mask = jnp.ones(points.shape[:2], bool)
  points = preprocess.prepare_points(points, mask, settings.align_modelnet)
  if views is None:
    views = jnp.asarray(cameras.views_array(settings.views))
  return projector.render_depth(points, views, distance=settings.distance if distance is None else distance,
                                mask=mask, **settings.projector_kwargs())


def view_features(encode_depth: Callable, params, depth: jax.Array) -> jax.Array:
  """float32[B, V, S, S] depth maps -> float32[B, V, D] features, every view in one batch."""
  b, v = depth.shape[:2]
  return encode_depth(params, depth.reshape((b * v,) + depth.shape[2:])).reshape(b, v, -1)


def points_to_features(encode_depth: Callable, params, points: jax.Array, settings: RenderSettings,
                       **projection) -> jax.Array:
  """`view_features` of `depth_maps`: float32[B, N, 3] -> float32[B, V, D]."""
  return view_features(encode_depth, params, depth_maps(points, settings, **projection))


def vision_encoder(loaded: hf_clip.LoadedCLIP) -> Callable:
  """`(vision params, depth float32[M, S, S] in [0, 1]) -> float32[M, projection_dim]`.

  The image tower of `loaded` alone (`clip.vision_params` of its params), with
  its compute settings, fed depth maps directly (the grey-to-RGB copy and
  CLIP's normalisation folded into the patch embedding).
  """
  tower = clip_lib.vision_tower(loaded.model)
  return lambda params, depth: tower.apply({"params": params}, grey=depth)


def clip_depth_encoder(loaded: hf_clip.LoadedCLIP) -> Callable:
  """`(whole CLIP params, depth float32[M, S, S] in [0, 1]) -> features` of a loaded CLIP."""
  model = loaded.model
  return lambda params, depth: model.apply({"params": params}, depth, method=model.encode_depth)
