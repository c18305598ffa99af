"""GDPA's two frozen encoders and the points -> per-view features function.

Path P is the CLIP2Point pre-trained depth encoder, path C CLIP's own image
tower; both are CLIP vision towers (`clip.CLIPVisionEncoder`), so one
function encodes with either parameter set. The clouds are rendered once and
both encoders read the same depth maps.

An empty `depth_encoder` source lets CLIP's own image tower fill path P too;
the two paths then share one set of weights and the features are computed
once.
"""

import dataclasses
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp

from clip2point_jax.core import feature_cache
from clip2point_jax.projection import preprocess
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.loading import depth_encoder, hf_clip
from renderers import cameras
from renderers import points as projector

def load_depth_encoder(source: str, loaded: hf_clip.LoadedCLIP):
  """Path P's weights: a full CLIP param tree whose vision tower is the depth encoder.

  Args:
    source: `config.depth_encoder`: a pre-training workdir, a checkpoint or a
      converted release (see `depth_encoder.load_params`); empty means CLIP's
      own image tower.
    loaded: the CLIP whose text tower and path C the run uses.

  Returns:
    A `clip.CLIP` param tree (nested dict of arrays).
  """
  if not source:
    return loaded.params
  return depth_encoder.load_params(source, loaded)


def put_encoders(paths: "FrozenPaths", sharding) -> dict[str, Any]:
  """Both paths' params on the devices; shared weights are put there once."""
  clip = jax.device_put(paths.params["clip_encoder"], sharding)
  depth = clip if paths.shared else jax.device_put(paths.params["depth_encoder"], sharding)
  return {"depth_encoder": depth, "clip_encoder": clip}


@dataclasses.dataclass
class FrozenPaths:
  """The loaded CLIP, both paths' vision params and their fingerprints."""
  loaded: hf_clip.LoadedCLIP
  params: dict[str, Any]  # {"depth_encoder": vision params, "clip_encoder": vision params}
  fingerprints: dict[str, str]  # same keys
  shared: bool  # path P uses CLIP's own weights: one set of features serves both

  @property
  def feature_dim(self) -> int:
    return self.loaded.config.projection_dim


def load_frozen_paths(clip_config, depth_encoder: str = "") -> FrozenPaths:
  """Loads CLIP (a config's `clip` block) and the depth encoder; keeps their vision towers' params."""
  loaded = hf_clip.load_configured(clip_config)
  clip_params = clip_lib.vision_params(loaded.params)
  depth_params = clip_lib.vision_params(load_depth_encoder(depth_encoder, loaded))
  clip_fp = feature_cache.fingerprint(clip_params)
  depth_fp = clip_fp if not depth_encoder else feature_cache.fingerprint(depth_params)
  shared = depth_fp == clip_fp
  return FrozenPaths(loaded, {"depth_encoder": clip_params if shared else depth_params,
                              "clip_encoder": clip_params},
                     {"depth_encoder": depth_fp, "clip_encoder": clip_fp}, shared)


def vision_encoder(loaded: hf_clip.LoadedCLIP) -> Callable:
  """`(vision params, depth float32[M, S, S] in [0, 1]) -> float32[M, projection_dim]`.

  The vision tower of `loaded` with its compute settings, fed depth maps
  directly (`encode_depth`'s folded grey-to-RGB copy).
  """
  m = loaded.model
  model = clip_lib.CLIPVisionEncoder(loaded.config, dtype=m.dtype, attention=m.attention,
                                     residual_dtype=m.residual_dtype)
  return lambda params, depth: model.apply({"params": params}, grey=depth)


def make_view_encoder(encode_depth: Callable, *, views: Sequence[Sequence[float]],
                      image_size: int = projector.IMAGE_SIZE, radius: float = projector.POINT_RADIUS,
                      distance: float = 1.0, align_modelnet: bool = False,
                      shared: bool = False) -> Callable:
  """Builds `(frozen params, points, mask) -> per-view features of both paths` (not jitted).

  Args:
    encode_depth: `(vision params, depth float32[M, S, S]) -> features`, e.g.
      `vision_encoder`.
    views: V (elevation, azimuth) pairs in degrees.
    image_size, radius, distance: the projector's settings.
    align_modelnet: turn z-up ModelNet clouds y-up first.
    shared: both paths use the same weights; encode once.

  Returns:
    `encode(frozen {"depth_encoder", "clip_encoder"}, points float32[B, N, 3],
    mask bool[B, N] | None) -> {"depth": float32[B, V, D], "clip": float32[B, V, D]}`.
  """
  views = cameras.views_array(views)

  def encode(frozen, points, mask=None):
    mask = jnp.ones(points.shape[:2], bool) if mask is None else mask
    points = preprocess.prepare_points(points, mask, align_modelnet)
    depth = projector.render_depth(points, jnp.asarray(views), image_size=image_size, radius=radius,
                                   distance=distance, mask=mask)
    b, v = depth.shape[:2]
    maps = depth.reshape((b * v,) + depth.shape[2:])
    clip_features = encode_depth(frozen["clip_encoder"], maps).reshape(b, v, -1)
    if shared:
      return {"depth": clip_features, "clip": clip_features}
    depth_features = encode_depth(frozen["depth_encoder"], maps).reshape(b, v, -1)
    return {"depth": depth_features, "clip": clip_features}

  return encode
