"""A classifier as the zero-shot, classify and pre-training evaluation paths use it.

    classify, params, text = classifier.load_classifier(config, class_names, mesh)
    logits = classify(params, text, points)          # float32[B, N, 3] -> float32[B, C]

The frozen CLIP by default; with `config.depth_encoder` its image tower is a
pre-trained depth encoder, or, where that workdir holds a pre-trained 3D
encoder (`loading/point_encoder.py`), the 3D encoder's one feature per cloud
against CLIP's text features (`point_classifier`); with `config.gdpa` a
trained GDPA, whose own CLIP, views, render settings and prompts then
replace the config's.

The zero-shot scoring follows the method `config.render.mode` reproduces
(`zero_shot_recipe`): CLIP2Point's (hard, soft) is the config's `prompts` and
`view_weights` with plain sums of cosines; a PointCLIP mode takes its
method's published prompts, view weights and logit scale
(`projection.recipes`), except where the config sets its own prompts or
view weights.
"""

import dataclasses

import jax
import numpy as np

from clip2point_jax.core import parallel
from clip2point_jax.features import text
from clip2point_jax.loading import depth_encoder, hf_clip, point_encoder, trained_gdpa
from clip2point_jax.models import gdpa
from clip2point_jax.projection import encode, point_encode, recipes, settings, zeroshot


def render_settings(config) -> settings.RenderSettings:
  """How a zero-shot-style config projects its clouds: `render`, `views`,
  `view_weights` and `data.align_modelnet` (errors name the field)."""
  return settings.from_config(config.render, config.views, config.view_weights,
                              align_modelnet=config.data.align_modelnet)


def zero_shot_recipe(config) -> recipes.Recipe:
  """How `config`'s zero-shot logits are scored: its render mode's method's recipe.

  CLIP2Point's modes: the config's own prompts and view weights, scale 1 (what
  the package always did). PointCLIP modes: the published recipe for
  `config.data.name` and `config.clip.name`; where V2 has none, an error, or
  with `config.untuned_recipe` its labelled untuned stand-in. A config's own
  `view_weights` (non-empty) or `prompts` (other than CLIP2Point's default)
  replace the recipe's, and the record's source says so.

  Raises:
    UserError: an unknown mode or dataset, or no published entry.
  """
  method = recipes.method_of_mode(config.render.get("mode", "hard"))
  dataset = config.data.name
  if method == "clip2point":
    found = recipes.recipe(method, dataset if dataset in recipes.DATASETS else "files")
    return dataclasses.replace(found, templates=tuple(config.prompts),
                               view_weights=tuple(float(w) for w in config.view_weights))
  found = recipes.recipe(method, dataset, backbone=config.clip.name,
                         untuned_fallback=bool(config.get("untuned_recipe", False)))
  own_weights = tuple(float(w) for w in config.view_weights)
  own_prompts = tuple(config.prompts) != tuple(text.DEFAULT_TEMPLATES)
  if own_weights:
    found = dataclasses.replace(found, view_weights=own_weights,
                                source=found.source + "; view weights from config.view_weights")
  if own_prompts:
    found = dataclasses.replace(found, templates=tuple(config.prompts), class_prompts=(),
                                underscores_to_spaces=False,
                                source=found.source + "; prompts from config.prompts")
  if own_weights and own_prompts:
    found = dataclasses.replace(found, tuned_on_test_set=False)
  return found


def load_classifier(config, class_names, mesh, loaded=None):
  """The classifier of `config` as a jitted points -> logits function.

  Args:
    config: a zero-shot-style config (`clip`, `render`, `views`,
      `view_weights`, `prompts`, `data.align_modelnet`, optional
      `depth_encoder` and `gdpa`).
    class_names: C names, in label order.
    mesh: params and text features are replicated over it.
    loaded: the CLIP to use (default: load `config.clip`).

  Returns:
    classify: `(params, text_features float32[C, D], points float32[B, N, 3],
      point_mask bool[B, N] | None = None) -> float32[B, C]`.
    params, text_features: replicated over the mesh; the text features are
      computed once here.
  """
  if config.get("gdpa"):
    trained_gdpa.adopt_settings(config)
    return trained_gdpa.load_classifier(config, class_names, mesh)
  if config.get("depth_encoder") and point_encoder.is_point_encoder(config.depth_encoder):
    model, variables = point_encoder.load(config.depth_encoder)
    return point_classifier(config, class_names, mesh, model, variables, loaded=loaded)
  # A PointCLIP mode's own views replace the default list, so what the task
  # records and draws (config.views) names the views it renders.
  settings.adopt_mode_views(config)
  projection = render_settings(config)
  recipe = zero_shot_recipe(config)
  loaded = loaded or hf_clip.load_configured(config.clip, config.render.image_size)
  if recipe.method == "clip2point":
    text_features = text.class_text_features(loaded, class_names, tuple(config.prompts))
    classify = zeroshot.make_classifier(encode.clip_depth_encoder(loaded), projection)
  else:
    text_features = zeroshot.recipe_text_features(loaded, recipe, class_names)
    classify = zeroshot.make_classifier(encode.clip_depth_encoder(loaded), projection,
                                        view_weights=recipe.view_weights, scale=recipe.similarity_scale)
  params = loaded.params
  if config.get("depth_encoder"):
    params = depth_encoder.load_params(config.depth_encoder, loaded)
  replicated = parallel.replicated(mesh)
  return classify, jax.device_put(params, replicated), jax.device_put(text_features, replicated)


def point_classifier(config, class_names, mesh, model, variables=None, loaded=None):
  """`load_classifier`'s three for a 3D encoder: one feature per cloud, no views or projector.

  Args:
    config: a zero-shot-style config (`clip`, `prompts`, `data.align_modelnet`).
    class_names: C names, in label order.
    mesh: params and text features are replicated over it.
    model: the `PointTransformer` ("clip" head).
    variables: its {"params", "batch_stats"}, or None when the caller adds
      them to params["point_encoder"] itself (pre-training's evaluations).
    loaded: the CLIP whose text tower scores the classes (default: load `config.clip`).

  Returns:
    classify (`point_encode.make_classifier`: cosines float32[B, C]), params
    ({"point_encoder": variables, "logit_scale": CLIP's}) and the text features.
  """
  # Only the text tower is used: no image size to match.
  loaded = loaded or hf_clip.load_configured(config.clip)
  text_features = text.class_text_features(loaded, class_names, tuple(config.prompts))
  classify = point_encode.make_classifier(model, align_modelnet=bool(config.data.align_modelnet))
  params = {"logit_scale": loaded.params["logit_scale"]}
  if variables is not None:
    params[point_encoder.PARAMS_KEY] = variables
  replicated = parallel.replicated(mesh)
  return classify, jax.device_put(params, replicated), jax.device_put(text_features, replicated)


# CLIP clips its learned temperature at 100.
MAX_LOGIT_SCALE = 100.0


def _host_scalar(x) -> float:
  # Replicated over a multi-host mesh an array is not fully addressable; any shard holds it all.
  return float(np.asarray(x.addressable_data(0) if hasattr(x, "addressable_data") else x))


def probability_scale(config, params) -> float:
  """What `load_classifier`'s logits are multiplied by before a softmax gives class probabilities.

  The logits rank classes as trained, but are sums or plain cosines; the
  probabilities need the temperature the model was trained with.

  Zero-shot: CLIP's own `logit_scale` (exp, clipped at 100 as CLIP does) per
  view, since the logits sum the views' cosines; a PointCLIP mode's recipe
  logits are the official ones, with their scale: 1. A GDPA with its own scale
  (`model.logit_scale` != 1 or learned) has it in its logits already, and a
  linear probe was trained on its logits as they are: 1. A
  GDPA without one (1.0, as released) was trained on unscaled cosines, whose
  softmax is near uniform (about 1/C each) however sure it is; its fused
  feature and the text features are unit vectors compared as CLIP compares
  them, so CLIP's temperature is the one that makes those cosines
  probabilities, and the ranking is unchanged.

  Args:
    config: the config `load_classifier` was given (after it).
    params: the params it returned.
  """
  if not config.get("gdpa") and recipes.method_of_mode(config.render.get("mode", "hard")) != "clip2point":
    return 1.0  # A PointCLIP recipe's logits carry its published logit scale already.
  if config.get("gdpa"):
    model = trained_gdpa.read_description(config.gdpa)["config"]["model"]
    # A linear probe's logits were trained by cross-entropy as they are.
    if (gdpa.kind_of(model) == "linear_probe" or model.get("learn_logit_scale")
        or float(model.get("logit_scale", 1.0)) != 1.0):
      return 1.0
    clip_scale = hf_clip.read_logit_scale(config.clip.name)
  else:
    clip_scale = _host_scalar(params["logit_scale"])
    num_views = (float(np.sum(config.view_weights)) if config.view_weights
                 else float(len(config.views)))
    if point_encoder.PARAMS_KEY in params:
      num_views = 1.0  # A 3D encoder's logits are one cosine per class.
  scale = min(float(np.exp(clip_scale)), MAX_LOGIT_SCALE)
  return scale if config.get("gdpa") else scale / num_views
