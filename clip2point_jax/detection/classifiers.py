"""The box-classifier seam: what turns cropped points into class logits.

Detection needs one function,

    classify(points: float32[B, N, 3], mask: bool[B, N]) -> logits float32[B, C]

with C the number of classes, in the order of the class list. It receives
crops as `boxes.crop_boxes` makes them: each box's points in the box's own
frame (x along its heading, z up as in ScanNet), centred at their mean and
scaled into the unit ball, N per crop with False on padding; whole rows are
False where a batch is padded (their logits are ignored). The batch size B
is fixed, so a jitted function compiles once. The detector turns logits
into probabilities with a softmax, so their scale is the classifier's
temperature (CLIP's `logit_scale` for zero-shot).

Any classifier with that signature plugs in: zero-shot CLIP (with CLIP's
image tower or a pre-trained depth encoder, `config.depth_encoder`; where
that names a pre-trained 3D encoder, its one feature per crop against the
prompts, `point_classifier`) and a trained GDPA adapter (`classifier.kind=gdpa`). To add another, write `build_<kind>(config, prompt_names, mesh)`
returning such a function (restore its checkpoint there) and register it in
`BUILDERS`; `config.classifier.kind` then selects it. Nothing else in
detection changes.
"""

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from clip2point_jax.core import parallel
from clip2point_jax.detection import boxes as box_lib
from clip2point_jax.errors import UserError
from clip2point_jax.features import text
from clip2point_jax.loading import depth_encoder, hf_clip, point_encoder, trained_gdpa
from clip2point_jax.projection import encode, point_encode, zeroshot
from clip2point_jax.projection import settings as settings_lib

BoxClassifier = Callable[[jax.Array, jax.Array], jax.Array]

# CLIP clips its learned temperature at 100.
MAX_LOGIT_SCALE = 100.0


def zeroshot_classifier(loaded: hf_clip.LoadedCLIP, prompt_names: Sequence[str], *,
                        templates: Sequence[str], settings: settings_lib.RenderSettings,
                        mesh=None) -> BoxClassifier:
  """Zero-shot CLIP2Point on crops: depth maps of every view against the prompts.

  The logits are CLIP's: logit_scale x the (weighted) mean over views of the
  cosine similarity between a view's image feature and each class's text
  feature (`zeroshot.make_classifier` sums them; this divides by the weights).

  Args:
    loaded: a CLIP from `hf_clip.load_clip`; its params are the image tower's
      (a depth encoder's, where one replaced CLIP's).
    prompt_names: the words put into the prompt templates, one per class.
    templates: prompt templates, each with one "{}".
    settings: the projector, views and view weights
      (`projection.settings.from_config`); `align_modelnet` turns the z-up
      crops (ScanNet's) y-up before rendering, as CLIP2Point does with z-up
      ModelNet.
    mesh: params and text features are replicated over it (default: all devices).
  """
  mesh = mesh or parallel.make_mesh()
  settings = zeroshot.with_views(settings)
  text_features = text.class_text_features(loaded, list(prompt_names), tuple(templates))
  points_to_logits = zeroshot.make_classifier(encode.clip_depth_encoder(loaded), settings)
  total_weight = float(np.sum(settings.view_weights)) if settings.view_weights else float(len(settings.views))
  scale = min(float(np.exp(np.asarray(loaded.params["logit_scale"]))), MAX_LOGIT_SCALE) / total_weight
  return _scaled_on_mesh(points_to_logits, loaded.params, text_features, scale, mesh)


def point_classifier(loaded: hf_clip.LoadedCLIP, model, variables, prompt_names: Sequence[str], *,
                     templates: Sequence[str], align_modelnet: bool, mesh=None) -> BoxClassifier:
  """Zero-shot with a pre-trained 3D encoder on crops: one feature per crop against the prompts.

  The logits are CLIP's logit_scale x the cosine between the crop's feature
  (`point_encode`; padded points masked out) and each class's text feature:
  the depth path's with one view of weight 1.

  Args:
    loaded: the CLIP whose text tower scores the classes (the encoder's own).
    model, variables: the 3D encoder (`point_encoder.load`).
    prompt_names, templates: as `zeroshot_classifier`.
    align_modelnet: turn the z-up crops y-up first (as the encoder was trained).
    mesh: params and text features are replicated over it (default: all devices).
  """
  mesh = mesh or parallel.make_mesh()
  text_features = text.class_text_features(loaded, list(prompt_names), tuple(templates))
  points_to_logits = point_encode.make_classifier(model, align_modelnet=align_modelnet)
  scale = min(float(np.exp(np.asarray(loaded.params["logit_scale"]))), MAX_LOGIT_SCALE)
  return _scaled_on_mesh(points_to_logits, {point_encoder.PARAMS_KEY: variables}, text_features, scale, mesh)


def _scaled_on_mesh(points_to_logits, params, text_features, scale: float, mesh) -> BoxClassifier:
  """`scale * points_to_logits(params, text_features, points, mask)`, jitted, its inputs replicated on `mesh`."""
  replicated = parallel.replicated(mesh)
  params, text_features, scale = jax.device_put((params, text_features, jnp.float32(scale)), replicated)

  # Params are arguments of the jitted function, not constants of a closure
  # traced into it, so a ViT-B/32 is not baked into the program.
  @jax.jit
  def scaled(params, text_features, scale, points, mask):
    return scale * points_to_logits(params, text_features, points, mask)

  return lambda points, mask: scaled(params, text_features, scale, points, mask)


def build_zeroshot(config, prompt_names, mesh) -> BoxClassifier:
  """The zero-shot classifier from a detect config (`config.clip`, views, render).

  A `config.depth_encoder` holding a 3D encoder classifies with it
  (`point_classifier`); the views and render block then go unused.
  """
  if config.get("depth_encoder") and point_encoder.is_point_encoder(config.depth_encoder):
    model, variables = point_encoder.load(config.depth_encoder)
    # Only the text tower is used: no image size to match.
    loaded = hf_clip.load_configured(config.clip)
    return point_classifier(loaded, model, variables, prompt_names, templates=tuple(config.prompts),
                            align_modelnet=bool(config.data.z_up), mesh=mesh)
  projection = settings_lib.from_config(config.render, config.views, config.view_weights,
                                        align_modelnet=config.data.z_up)
  loaded = hf_clip.load_configured(config.clip, config.render.image_size)
  if config.get("depth_encoder"):
    loaded = loaded._replace(params=depth_encoder.load_params(config.depth_encoder, loaded))
  return zeroshot_classifier(loaded, prompt_names, templates=tuple(config.prompts),
                             settings=projection, mesh=mesh)


def build_gdpa(config, prompt_names, mesh) -> BoxClassifier:
  """A trained GDPA adapter on the crops (`config.classifier.checkpoint`: a
  fewshot or finetune workdir, or one seed's folder in it).

  The CLIP, depth encoder, views, render settings and prompts are the
  checkpoint's, since the adapters were trained on exactly those. Its logits
  are the cosines of the fused feature with each class's text feature, as the
  adapter was trained (no logit scale), so its class probabilities are soft;
  detections are ranked by them all the same.
  """
  if not config.classifier.checkpoint:
    raise UserError("config.classifier.kind='gdpa' needs config.classifier.checkpoint=<a fewshot "
                    "or finetune workdir>")
  settings = ml_collections.ConfigDict({"gdpa": config.classifier.checkpoint,
                                        "data": {"align_modelnet": bool(config.data.z_up)}})
  classify, params, text = trained_gdpa.load_classifier(settings, list(prompt_names), mesh)
  return lambda points, mask: classify(params, text, points, mask)


# config.classifier.kind -> builder(config, prompt_names, mesh) -> BoxClassifier.
# A classifier of another kind registers its builder here.
BUILDERS = {"zeroshot": build_zeroshot, "gdpa": build_gdpa}
# Kinds that do not look at points (handled by the task, not through the seam).
ORACLE = "oracle"


def build(config, prompt_names, mesh) -> BoxClassifier:
  """The classifier `config.classifier.kind` names."""
  kind = config.classifier.kind
  if kind not in BUILDERS:
    raise UserError(f"config.classifier.kind={kind!r}; use one of {', '.join(sorted([*BUILDERS, ORACLE]))}")
  return BUILDERS[kind](config, prompt_names, mesh)


def oracle_logits(proposals: np.ndarray, gt_boxes: np.ndarray, gt_labels: np.ndarray,
                  num_classes: int, iou_threshold: float = 0.25,
                  confidence: float = 20.0) -> np.ndarray:
  """What a perfect classifier would say: each box's best-overlapping ground truth.

  A box whose best IoU with a ground-truth box exceeds `iou_threshold` gets
  logits `confidence` for that box's class and 0 elsewhere (a softmax near 1);
  any other box gets all zeros (uniform, the lowest confidence). It uses the
  ground truth, so it measures the proposals, not a classifier: the mAP a
  perfect classifier reaches with them.

  Returns:
    float32[K, num_classes].
  """
  logits = np.zeros((len(proposals), num_classes), np.float32)
  if not len(proposals) or not len(gt_boxes):
    return logits
  iou = box_lib.iou_3d(proposals, gt_boxes)
  best = iou.argmax(1)
  hit = iou.max(1) > iou_threshold
  logits[np.nonzero(hit)[0], np.asarray(gt_labels)[best[hit]]] = confidence
  return logits
