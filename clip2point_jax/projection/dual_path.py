"""GDPA's two frozen encoders and the points -> per-view features function.

Path P is the CLIP2Point pre-trained depth encoder, path C CLIP's own image
tower; both are CLIP vision towers (`clip.CLIPVisionEncoder`), so one
function (`encode.vision_encoder`) encodes with either parameter set. The
clouds are rendered once (`encode.view_images`: any `render.mode`, CLIP2Point's
or a PointCLIP's) and both encoders read the same views.

An empty `depth_encoder` source lets CLIP's own image tower fill path P too;
the two paths then share one set of weights and the features are computed
once.

A `depth_encoder` that names a 3D encoder's pre-training workdir
(`loading/point_encoder.py`, supplementary Sec. 4) makes path P that
network: one feature per cloud from the points (`projection/point_encode.py`,
"depth" float32[B, 1, D]) while path C still reads the V views; the GDPA's
3D path (`models/gdpa.py`) adapts it.
"""

import dataclasses
from typing import Any, Callable

import jax

from clip2point_jax.core import feature_cache
from clip2point_jax.loading import depth_encoder, hf_clip, point_encoder
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import encode as encode_lib
from clip2point_jax.projection import point_encode
from clip2point_jax.projection import settings as settings_lib


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
  # {"depth_encoder": vision params (a 3D encoder's variables), "clip_encoder": vision params}
  params: dict[str, Any]
  fingerprints: dict[str, str]  # same keys
  shared: bool  # path P uses CLIP's own weights: one set of features serves both
  point_model: Any = None  # path P's 3D encoder (a PointTransformer), or None: a depth encoder

  @property
  def point_path(self) -> bool:
    return self.point_model is not None

  @property
  def feature_dim(self) -> int:
    return self.loaded.config.projection_dim


def load_frozen_paths(clip_config, depth_encoder_source: str = "",
                      image_size: int | None = None) -> FrozenPaths:
  """Loads CLIP (a config's `clip` block) and the depth encoder; keeps their vision towers' params.

  Args:
    clip_config: the `clip` block (name, dtype, attention, residual_dtype).
    depth_encoder_source: `config.depth_encoder`; empty: CLIP's own tower fills path P.
    image_size: `config.render.image_size`, checked against the CLIP's input size.
  """
  loaded = hf_clip.load_configured(clip_config, image_size)
  clip_params = clip_lib.vision_params(loaded.params)
  if depth_encoder_source and point_encoder.is_point_encoder(depth_encoder_source):
    model, variables = point_encoder.load(depth_encoder_source)
    return FrozenPaths(loaded, {"depth_encoder": variables, "clip_encoder": clip_params},
                       {"depth_encoder": feature_cache.fingerprint(variables),
                        "clip_encoder": feature_cache.fingerprint(clip_params)},
                       shared=False, point_model=model)
  depth_params = clip_lib.vision_params(load_depth_encoder(depth_encoder_source, loaded))
  clip_fp = feature_cache.fingerprint(clip_params)
  depth_fp = clip_fp if not depth_encoder_source else feature_cache.fingerprint(depth_params)
  shared = depth_fp == clip_fp
  return FrozenPaths(loaded, {"depth_encoder": clip_params if shared else depth_params,
                              "clip_encoder": clip_params},
                     {"depth_encoder": depth_fp, "clip_encoder": clip_fp}, shared)


def make_view_encoder(encode_depth: Callable, settings: settings_lib.RenderSettings, *,
                      shared: bool = False, point_model=None) -> Callable:
  """Builds `(frozen params, points, mask) -> per-view features of both paths` (not jitted).

  Args:
    encode_depth: `(vision params, views float32[M, S, S] or [M, S, S, 3]) -> float32[M, D]`,
      e.g. `encode.vision_encoder`.
    settings: the views and every projector setting, e.g.
      `settings.from_config(config.render, config.views, align_modelnet=...)`.
    shared: both paths use the same weights; encode once.
    point_model: path P's 3D encoder (`FrozenPaths.point_model`), which reads
      the points (turned y-up as `settings.align_modelnet` says) instead of the views.

  Returns:
    `encode(frozen {"depth_encoder", "clip_encoder"}, points float32[B, N, 3],
    mask bool[B, N] | None) -> {"depth": float32[B, V, D] ([B, 1, D] with
    point_model), "clip": float32[B, V, D]}`.
  """

  def encode(frozen, points, mask=None):
    views = encode_lib.view_images(points, settings, mask=mask)
    clip_features = encode_lib.view_features(encode_depth, frozen["clip_encoder"], views)
    if point_model is not None:
      depth = point_encode.cloud_features(point_model, frozen["depth_encoder"], points, mask=mask,
                                          align_modelnet=settings.align_modelnet)
      return {"depth": depth[:, None], "clip": clip_features}
    if shared:
      return {"depth": clip_features, "clip": clip_features}
    return {"depth": encode_lib.view_features(encode_depth, frozen["depth_encoder"], views),
            "clip": clip_features}

  return encode
