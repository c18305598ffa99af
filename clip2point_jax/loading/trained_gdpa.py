"""A trained GDPA as a points -> logits classifier (zero-shot-style evaluation, `classify`).

    python -m clip2point_jax.main --config configs/zeroshot.py:dataset=modelnet40 \
        --config.gdpa=runs/fewshot_modelnet40_16/seed_0 --workdir runs/eval

`config.gdpa` names a few-shot / fine-tuning workdir holding one seed, or one
of its `seed_<s>` folders. The checkpoint decides the model: its CLIP and
depth encoder (checked against their fingerprints), views, render settings
and prompts replace the evaluation config's; the data settings (dataset,
points, ModelNet alignment) stay the evaluation's.
"""

import glob
import json
import os

import jax
import ml_collections
import numpy as np

from clip2point_jax.core import checkpoints, parallel
from clip2point_jax.training import gdpa as training
from clip2point_jax.errors import UserError
from clip2point_jax.projection import dual_path, zeroshot

MODEL_FILE = "gdpa.json"  # written by tasks/fewshot.py beside each seed's checkpoints


def seed_dir(path: str) -> str:
  """The seed folder that `path` (a workdir with one seed, or a seed folder) names."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.exists(os.path.join(path, MODEL_FILE)):
    return path
  seeds = sorted(os.path.dirname(p) for p in glob.glob(os.path.join(path, "seed_*", MODEL_FILE)))
  if len(seeds) == 1:
    return seeds[0]
  if not seeds:
    raise UserError(f"config.gdpa={path!r} holds no trained GDPA (no {MODEL_FILE}); give a few-shot "
                    "or fine-tuning workdir, or one of its seed_<s> folders")
  names = ", ".join(os.path.basename(s) for s in seeds)
  raise UserError(f"config.gdpa={path!r} holds {len(seeds)} seeds ({names}); pick one, e.g. "
                  f"--config.gdpa={seeds[0]}")


def read_description(path: str) -> dict:
  """The trained model's description (config, class names, fingerprints)."""
  with open(os.path.join(seed_dir(path), MODEL_FILE)) as f:
    return json.load(f)


def adopt_settings(config) -> dict:
  """Replaces `config`'s model settings by the checkpoint's; returns its description.

  CLIP, depth encoder, views, view weights, render settings and prompts
  come from the checkpoint, since the adapters were trained on exactly those.
  """
  description = read_description(config.gdpa)
  trained = description["config"]
  with config.unlocked():
    for key in ("name", "dtype", "attention", "residual_dtype"):
      config.clip[key] = trained["clip"][key]
    config.views = tuple(tuple(v) for v in trained["views"])
    config.view_weights = ()
    config.prompts = tuple(trained["prompts"])
    for key in ("image_size", "radius", "distance"):
      config.render[key] = trained["render"][key]
  return description


def load(path: str, mesh):
  """Restores a trained GDPA.

  Returns:
    (model, variables {"params", "batch_stats"} replicated over `mesh`,
    description dict, frozen encoder paths `dual_path.FrozenPaths`).
  """
  directory = seed_dir(path)
  description = read_description(directory)
  config = ml_collections.ConfigDict(description["config"])
  paths = dual_path.load_frozen_paths(config.clip, config.get("depth_encoder", ""))
  if paths.fingerprints != description["fingerprints"]:
    raise UserError(f"{directory}: the encoders at clip.name={config.clip.name!r} / depth_encoder="
                    f"{config.get('depth_encoder', '')!r} are not the ones this GDPA was trained with "
                    "(their weights changed)")
  model, tx, _ = training.build(config, description["feature_dim"])
  state, frozen = jax.eval_shape(lambda: training.init_state(
      model, tx, mesh, seed=0, num_views=len(config.views), features=description["feature_dim"],
      trainable_patterns=config.optim.trainable))
  best = jax.eval_shape(training.best_slot, state, frozen) if description.get("has_best") else None
  replicated = parallel.replicated(mesh)
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated),
                        training.checkpoint_tree(state, frozen, best))
  ckpt = checkpoints.Checkpointer(os.path.join(directory, "checkpoints"))
  restored, _ = ckpt.restore(target)
  ckpt.close()
  variables = training.variables_of(restored["train"], restored["frozen"])
  return model, variables, description, paths


def load_classifier(config, class_names, mesh):
  """The trained GDPA of `config.gdpa` as zero-shot's `load_classifier` returns a CLIP.

  Returns:
    classify: jitted `(params, text_features, points float32[B, N, 3],
      point_mask=None) -> float32[B, C]`.
    params: {"encoders": ..., "gdpa": ...}, replicated over the mesh.
    text_features: float32[C, D] of `class_names` with the checkpoint's prompts.
  """
  model, variables, description, paths = load(config.gdpa, mesh)
  trained = description["config"]
  encode = dual_path.make_view_encoder(
      dual_path.vision_encoder(paths.loaded),
      views=trained["views"], image_size=trained["render"]["image_size"],
      radius=trained["render"]["radius"], distance=trained["render"]["distance"],
      align_modelnet=config.data.align_modelnet, shared=paths.shared)

  @jax.jit
  def classify(params, text_features, points, point_mask=None):
    features = encode(params["encoders"], points, point_mask)
    return model.apply(params["gdpa"], features["depth"], features["clip"], text_features, train=False)

  text = zeroshot.class_text_features(paths.loaded, list(class_names), tuple(trained["prompts"]))
  replicated = parallel.replicated(mesh)
  params = {"encoders": dual_path.put_encoders(paths, replicated), "gdpa": variables}
  return classify, params, jax.device_put(np.asarray(text), replicated)
