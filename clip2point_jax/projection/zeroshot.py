"""Zero-shot point-cloud classification: depth maps against text prompts.

Text features are computed once per class list. The point -> logits path
(normalise, project to depth, encode every view, compare) is one jitted
function, so the data stays on the device between those stages.
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.projection import preprocess
from clip2point_jax.errors import UserError
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.loading import hf_clip
from renderers import cameras
from renderers import points as projector

DEFAULT_TEMPLATES = ("image of a {}",)  # CLIP2Point's single prompt.


def class_text_features(loaded: hf_clip.LoadedCLIP, class_names: Sequence[str],
                        templates: Sequence[str] = DEFAULT_TEMPLATES) -> jax.Array:
  """Prompt-ensembled text features, one row per class.

  Each prompt's feature is L2-normalised, the templates are averaged per class
  and the mean is normalised again (CLIP's ensembling).

  Returns:
    float32[C, D], unit rows.
  """
  if not class_names:
    raise UserError("no class names given")
  bad = [t for t in templates if "{}" not in t]
  if not templates or bad:
    raise UserError(f"prompt templates must contain '{{}}' for the class name, got {list(templates)!r}")
  texts = [t.format(name) for t in templates for name in class_names]
  tokens = hf_clip.tokenize(loaded.tokenizer, texts, loaded.config.text.max_position_embeddings)
  model = loaded.model
  encode = jax.jit(lambda p, t: model.apply({"params": p}, t, method=model.encode_text))
  features = clip_lib.l2_normalize(encode(loaded.params, jnp.asarray(tokens)))
  features = features.reshape(len(templates), len(class_names), -1)
  return clip_lib.l2_normalize(features.mean(0))


def depth_to_clip_images(depth: jax.Array) -> jax.Array:
  """float32[..., H, W] depth in [0, 1] -> float32[..., H, W, 3] CLIP input."""
  return clip_lib.normalize_images(jnp.repeat(depth[..., None], 3, axis=-1))


def view_similarities(image_features: jax.Array, text_features: jax.Array,
                      view_weights: jax.Array | None = None) -> jax.Array:
  """Sum over views of cosine similarities to each class.

  Args:
    image_features: float32[B, V, D], un-normalised.
    text_features: float32[C, D], unit rows.
    view_weights: optional float32[V].

  Returns:
    float32[B, C] logits.
  """
  per_view = jnp.einsum("bvd,cd->bvc", clip_lib.l2_normalize(image_features), text_features)
  if view_weights is not None:
    per_view = per_view * view_weights[:, None]
  return per_view.sum(1)


def make_classifier(encode_depth: Callable, *, views, view_weights=None,
                    image_size: int = projector.IMAGE_SIZE,
                    radius: float = projector.POINT_RADIUS, distance: float = 1.0,
                    align_modelnet: bool = False) -> Callable:
  """Builds the jitted points -> logits function.

  Args:
    encode_depth: `(params, depth float32[M, H, W] in [0, 1]) -> float32[M, D]`,
      e.g. `clip_depth_encoder(loaded)`.
    views: V (elevation, azimuth) pairs in degrees.
    view_weights: optional V weights for the per-view similarities.
    image_size, radius, distance: the projector's settings.
    align_modelnet: whether clouds are z-up ModelNet clouds.

  Returns:
    `classify(params, text_features float32[C, D], points float32[B, N, 3],
    point_mask bool[B, N] | None) -> float32[B, C]`, jitted. A None mask
    keeps every point.
  """
  views = jnp.asarray(cameras.views_array(views))
  if view_weights is not None and len(view_weights):
    view_weights = jnp.asarray(view_weights, jnp.float32)
    if view_weights.shape != (len(views),):
      raise UserError(f"view_weights has {view_weights.shape[0]} entries for {len(views)} views")
  else:
    view_weights = None

  @jax.jit
  def classify(params, text_features, points, point_mask=None):
    mask = jnp.ones(points.shape[:2], bool) if point_mask is None else point_mask
    points = preprocess.prepare_points(points, mask, align_modelnet)
    depth = projector.render_depth(points, views, image_size=image_size, radius=radius,
                                    distance=distance, mask=mask)
    b, v = depth.shape[:2]
    features = encode_depth(params, depth.reshape((b * v,) + depth.shape[2:])).reshape(b, v, -1)
    return view_similarities(features, text_features, view_weights)

  return classify


def clip_image_encoder(loaded: hf_clip.LoadedCLIP) -> Callable:
  """`(params, images float32[M, H, W, 3] normalised) -> features` of a loaded CLIP."""
  model = loaded.model
  return lambda params, images: model.apply({"params": params}, images, method=model.encode_image)


def clip_depth_encoder(loaded: hf_clip.LoadedCLIP) -> Callable:
  """`(params, depth float32[M, H, W] in [0, 1]) -> features` of a loaded CLIP.

  The features of `depth_to_clip_images(depth)`, with the grey-to-RGB copy
  and the normalisation folded into the patch embedding.
  """
  model = loaded.model
  return lambda params, depth: model.apply({"params": params}, depth, method=model.encode_depth)


def top_predictions(logits: np.ndarray, class_names: Sequence[str], k: int = 3):
  """Per row, the k best (class name, softmax probability) pairs."""
  logits = np.asarray(logits, np.float64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  order = np.argsort(-probs, axis=-1)[:, :k]
  return [[(class_names[c], float(p[c])) for c in row] for p, row in zip(probs, order)]
