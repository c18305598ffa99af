"""Zero-shot point-cloud classification: depth maps against text prompts.

    classify = zeroshot.make_classifier(zeroshot.clip_depth_encoder(loaded), settings)
    logits = classify(loaded.params, text, points)    # float32[B, N, 3] -> float32[B, C]

The points -> logits path (normalise, project, encode every view, compare) is
one jitted function through `projection.encode`, so the data stays on the
device between those stages and every render setting (`projection.settings`:
hard, soft or a PointCLIP projector, orthographic or perspective) reaches it.
The class text features come from `features.text`, once per class list.

A published recipe (`projection.recipes`) scores as its method does:

    text = zeroshot.recipe_text_features(loaded, recipe, class_names)
    classify = zeroshot.make_classifier(encoder, settings, view_weights=recipe.view_weights,
                                        scale=recipe.similarity_scale)
    # logits = similarity_scale * sum_v w_v cos(f_v, t_c): the official logits
"""

import dataclasses
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.errors import UserError
from clip2point_jax.features.text import class_text_features  # noqa: F401  (re-exported)
from clip2point_jax.loading import hf_clip
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.features import text as text_lib
from clip2point_jax.projection import encode, recipes
from clip2point_jax.projection.encode import clip_depth_encoder  # noqa: F401  (re-exported)
from clip2point_jax.projection.settings import RenderSettings
from renderers import cameras


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


def with_views(settings: RenderSettings | None = None, views=None, view_weights=None) -> RenderSettings:
  """`settings` (default: CLIP2Point's projector, six views) with other views or weights.

  Raises:
    UserError: no views, or weights that are not one per view.
  """
  settings = settings or RenderSettings()
  if views is not None:
    settings = dataclasses.replace(settings, views=tuple(tuple(float(a) for a in v) for v in views))
  if view_weights is not None:
    settings = dataclasses.replace(settings, view_weights=tuple(float(w) for w in view_weights))
  if not settings.views:
    raise UserError("no views given; give (elevation, azimuth) pairs in degrees")
  cameras.views_array(settings.views)  # Malformed pairs fail here, not at the first call.
  if settings.view_weights and len(settings.view_weights) != len(settings.views):
    raise UserError(f"view_weights has {len(settings.view_weights)} entries for {len(settings.views)} views")
  return settings


def make_classifier(encode_depth: Callable, settings: RenderSettings | None = None, *,
                    views: Sequence[Sequence[float]] | None = None,
                    view_weights: Sequence[float] | None = None, scale: float = 1.0) -> Callable:
  """Builds the jitted points -> logits function.

  Args:
    encode_depth: `(params, views float32[M, S, S] or [M, S, S, 3]) -> float32[M, D]`,
      e.g. `clip_depth_encoder(loaded)` (`encode.view_images` gives the views).
    settings: the projector's settings, views and view weights
      (`projection.settings.from_config`); default: CLIP2Point's.
    views: V (elevation, azimuth) pairs in degrees, replacing the settings'.
    view_weights: V weights for the per-view similarities, replacing the
      settings'; empty: every view counts the same.
    scale: multiplies the logits (a recipe's `similarity_scale`; 1: CLIP2Point's
      plain sums of cosines).

  Returns:
    `classify(params, text_features float32[C, D], points float32[B, N, 3],
    point_mask bool[B, N] | None) -> float32[B, C]`, jitted. A None mask
    keeps every point. Pass `params` already on the device
    (`jax.device_put(loaded.params)` once): `load_clip` gives numpy arrays,
    which a jitted call would copy to the device again on every call.
  """
  settings = with_views(settings, views, view_weights)
  weights = jnp.asarray(settings.view_weights, jnp.float32) if settings.view_weights else None
  scale = float(scale)

  @jax.jit
  def classify(params, text_features, points, point_mask=None):
    features = encode.points_to_features(encode_depth, params, points, settings, mask=point_mask)
    logits = view_similarities(features, text_features, weights)
    return logits if scale == 1.0 else scale * logits

  return classify


def recipe_text_features(loaded: hf_clip.LoadedCLIP, recipe: recipes.Recipe,
                         class_names: Sequence[str]) -> jax.Array:
  """A recipe's class text features: float32[C, D], unit rows.

  Each prompt's feature is normalised, a class's prompts averaged and the mean
  normalised again (`features.text`); a searched recipe has one sentence per
  class, a template recipe its templates filled with the (underscore-free
  where it says so) class name. Repeating over the views and normalising, as
  the PointCLIPs do, is `recipe.similarity_scale`'s 1 / sqrt(V).

  Raises:
    UserError: a class without a searched prompt.
  """
  if recipe.class_prompts:
    sentences = [p for (p,) in recipe.prompts(class_names)]
    return text_lib.class_text_features(loaded, sentences, ("{}",))
  names = [c.replace("_", " ") if recipe.underscores_to_spaces else c for c in class_names]
  return text_lib.class_text_features(loaded, names, recipe.templates)


def clip_image_encoder(loaded: hf_clip.LoadedCLIP) -> Callable:
  """`(params, images float32[M, H, W, 3] normalised) -> features` of a loaded CLIP."""
  model = loaded.model
  return lambda params, images: model.apply({"params": params}, images, method=model.encode_image)


def top_predictions(logits: np.ndarray, class_names: Sequence[str], k: int = 3):
  """Per row, the k best (class name, softmax probability) pairs."""
  logits = np.asarray(logits, np.float64)
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  order = np.argsort(-probs, axis=-1)[:, :k]
  return [[(class_names[c], float(p[c])) for c in row] for p, row in zip(probs, order)]
