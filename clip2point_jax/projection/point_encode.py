"""The one path from points to a 3D encoder's features: normalise, encode, no views.

`projection/encode.py`'s counterpart for the 3D encoder (`loading/point_encoder.py`,
supplementary Sec. 4). Pre-training, its zero-shot evaluations, zero-shot,
GDPA and detection all get a cloud's feature here, so the preprocessing is
the depth path's (`preprocess.prepare_points`: ModelNet turned y-up where
asked, each cloud centred in the unit ball) everywhere:

    features = point_encode.cloud_features(model, variables, points, mask=mask)  # float32[B, D]
    classify = point_encode.make_classifier(model, align_modelnet=True)
    logits = classify({"point_encoder": variables}, text, points)   # float32[B, C] cosines

One feature per cloud where the depth path has one per view: a classifier
scores the cosine between it and each class's text feature (the depth path's
sum over views with one view of weight 1).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from clip2point_jax.loading import point_encoder
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.models import point_transformer as pt
from clip2point_jax.projection import preprocess


def prepare_points(points: jax.Array, mask: jax.Array | None = None,
                   align_modelnet: bool = False) -> jax.Array:
  """float32[B, N, 3] as the encoder reads them: y-up (ModelNet turned if asked), in the unit ball."""
  points = jnp.asarray(points, jnp.float32)
  full = jnp.ones(points.shape[:2], bool) if mask is None else mask
  return preprocess.prepare_points(points, full, align_modelnet)


def cloud_features(model: pt.PointTransformer, variables: dict[str, Any], points: jax.Array, *,
                   mask: jax.Array | None = None, align_modelnet: bool = False) -> jax.Array:
  """The encoder's feature of every cloud, BatchNorm on its running statistics.

  Args:
    model: a `PointTransformer` with the "clip" head.
    variables: {"params": ..., "batch_stats": ...}.
    points: float32[B, N, 3] in the source's coordinates.
    mask: optional bool[B, N], False for padding.
    align_modelnet: turn z-up ModelNet clouds y-up first.

  Returns:
    float32[B, D], not normalised.
  """
  prepared = prepare_points(points, mask, align_modelnet)
  return model.apply(variables, prepared, mask=mask, train=False)


def make_classifier(model: pt.PointTransformer, *, align_modelnet: bool = False) -> Callable:
  """The jitted points -> logits function of a 3D encoder.

  Returns:
    `classify(params, text_features float32[C, D] unit rows, points float32[B, N, 3],
    point_mask bool[B, N] | None = None) -> float32[B, C]`: cosines between
    each cloud's feature and each class's text feature. `params` is
    {"point_encoder": {"params": ..., "batch_stats": ...}} (other keys, such
    as CLIP's "logit_scale", are not read).
  """

  @jax.jit
  def classify(params, text_features, points, point_mask=None):
    features = cloud_features(model, params[point_encoder.PARAMS_KEY], points, mask=point_mask,
                              align_modelnet=align_modelnet)
    return clip_lib.l2_normalize(features) @ text_features.T

  return classify
