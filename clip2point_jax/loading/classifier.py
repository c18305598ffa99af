"""A classifier as the zero-shot, classify and pre-training evaluation paths use it.

    classify, params, text = classifier.load_classifier(config, class_names, mesh)
    logits = classify(params, text, points)          # float32[B, N, 3] -> float32[B, C]

The frozen CLIP by default; with `config.depth_encoder` its image tower is a
pre-trained depth encoder; with `config.gdpa` a trained GDPA, whose own CLIP,
views, render settings and prompts then replace the config's.
"""

import jax

from clip2point_jax.core import parallel
from clip2point_jax.loading import depth_encoder, hf_clip, trained_gdpa
from clip2point_jax.projection import zeroshot


def load_classifier(config, class_names, mesh, loaded=None):
  """The classifier of `config` as a jitted points -> logits function.

  Args:
    config: a zero-shot-style config (`clip`, `render`, `views`,
      `view_weights`, `prompts`, `data.align_modelnet`, optional
      `depth_encoder` and `gdpa`).
    loaded: the CLIP to use (default: load `config.clip`).

  Returns:
    classify: `(params, text_features, points float32[B, N, 3], point_mask=None)
      -> float32[B, C]`.
    params, text_features: replicated over the mesh; the text features are
      computed once here.
  """
  if config.get("gdpa"):
    trained_gdpa.adopt_settings(config)
    return trained_gdpa.load_classifier(config, class_names, mesh)
  loaded = loaded or hf_clip.load_configured(config.clip, config.render.image_size)
  text_features = zeroshot.class_text_features(loaded, class_names, tuple(config.prompts))
  classify = zeroshot.make_classifier(
      zeroshot.clip_depth_encoder(loaded), views=config.views, view_weights=config.view_weights,
      image_size=config.render.image_size, radius=config.render.radius,
      distance=config.render.distance, align_modelnet=config.data.align_modelnet)
  params = loaded.params
  if config.get("depth_encoder"):
    params = depth_encoder.load_params(config.depth_encoder, loaded)
  replicated = parallel.replicated(mesh)
  return classify, jax.device_put(params, replicated), jax.device_put(text_features, replicated)
