"""Class text features: CLIP's frozen text tower on the prompts, once per class list.

Zero-shot, classify, detection and the GDPA all compare per-view image
features with one unit row per class:

    text = text.class_text_features(loaded, ["chair", "table"], ("image of a {}",))
    # float32[2, D], unit rows
"""

from typing import Sequence

import jax
import jax.numpy as jnp

from clip2point_jax.errors import UserError
from clip2point_jax.loading import hf_clip
from clip2point_jax.models import clip as clip_lib

DEFAULT_TEMPLATES = ("image of a {}",)  # CLIP2Point's single prompt.


def class_text_features(loaded: hf_clip.LoadedCLIP, class_names: Sequence[str],
                        templates: Sequence[str] = DEFAULT_TEMPLATES) -> jax.Array:
  """Prompt-ensembled text features, one row per class.

  Each prompt's feature is L2-normalised, the templates are averaged per class
  and the mean is normalised again (CLIP's ensembling).

  Args:
    loaded: a CLIP from `hf_clip.load_clip`.
    class_names: C names, each put into every template's "{}".
    templates: prompt templates, each with one "{}".

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
