"""A trained GDPA as a points -> logits classifier (zero-shot-style evaluation, `classify`).

    python -m clip2point_jax.main --config configs/zeroshot.py:dataset=modelnet40 \
        --config.gdpa=runs/fewshot_modelnet40_16/seed_0 --workdir runs/eval

`config.gdpa` names a few-shot / fine-tuning workdir holding one seed, or one
of its `seed_<s>` folders. The checkpoint decides the model: its CLIP and
depth encoder (checked against their fingerprints), views, render settings
and prompts replace the evaluation config's; the data settings (dataset,
points, ModelNet alignment) stay the evaluation's.

A trained linear probe (`model.kind="linear_probe"`) loads the same way, but
knows only the classes it was trained on: it classifies into those of the
evaluation's class names it knows (by name, any order), and refuses others.
"""

import os
from typing import Any

import jax
import ml_collections
import numpy as np

from clip2point_jax.core import checkpoints, parallel, paths, rules
from clip2point_jax.errors import UserError
from clip2point_jax.models import gdpa
from clip2point_jax.projection import dual_path, encode as encode_lib, zeroshot
from clip2point_jax.projection import settings as render_settings

MODEL_FILE = "gdpa.json"  # written by training/gdpa_run.py beside each seed's checkpoints


def seed_dir(path: str) -> str:
  """The seed folder that `path` (a workdir with one seed, or a seed folder) names."""
  path = paths.absolute(path)
  if paths.path(os.path.join(path, MODEL_FILE)).exists():
    return path
  seeds = sorted(os.fspath(p.parent) for p in paths.path(path).glob(os.path.join("seed_*", MODEL_FILE)))
  if len(seeds) == 1:
    return seeds[0]
  if not seeds:
    raise UserError(f"config.gdpa={path!r} holds no trained GDPA (no {MODEL_FILE}); give a few-shot "
                    "or fine-tuning workdir, or one of its seed_<s> folders")
  names = ", ".join(os.path.basename(s) for s in seeds)
  raise UserError(f"config.gdpa={path!r} holds {len(seeds)} seeds ({names}); pick one, e.g. "
                  f"--config.gdpa={seeds[0]}")


# What gdpa.json must hold for the loaders: top-level keys, and keys of its "config".
_DESCRIPTION_KEYS = ("config", "class_names", "feature_dim", "fingerprints")
_CONFIG_KEYS = ("clip", "views", "prompts", "render", "model")
_RERUN = ("rerun the few-shot or fine-tuning command that wrote it (same workdir: it resumes and "
          "rewrites it), or give another trained GDPA")


def read_description(path: str) -> dict:
  """The trained model's description (config, class names, fingerprints).

  Raises:
    UserError naming the file when it is unreadable, not JSON or lacks a key.
  """
  file = os.path.join(seed_dir(path), MODEL_FILE)
  try:
    description = paths.read_json(file)
  except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8
    raise UserError(f"{file}: not a readable GDPA description ({type(e).__name__}: "
                    f"{str(e).splitlines()[0][:200] if str(e) else ''}); {_RERUN}") from e
  trained = description.get("config") if isinstance(description, dict) else None
  missing = ([k for k in _DESCRIPTION_KEYS if k not in description] if isinstance(description, dict)
             else ["a JSON object"])
  missing += [f"config.{k}" for k in _CONFIG_KEYS if isinstance(trained, dict) and k not in trained]
  if isinstance(description, dict) and "config" in description and not isinstance(trained, dict):
    missing.append("config (an object)")
  if missing:
    raise UserError(f"{file}: not a complete GDPA description (no {', '.join(missing)}); {_RERUN}")
  return description


def adopt_settings(config) -> dict:
  """Replaces `config`'s model settings by the checkpoint's; returns its description.

  CLIP, views, view weights, render settings and prompts come from the
  checkpoint, since the adapters were trained on exactly those:
  `trained_settings.fill_in(config, frozenset())`, which the command line
  calls with the fields the user set.
  """
  from clip2point_jax.loading import trained_settings  # pylint: disable=g-import-not-at-top

  trained_settings.fill_in(config, frozenset())
  return read_description(config.gdpa)


def _step_dir(directory: str) -> str:
  """The latest step folder of a seed's checkpoints (few-shot keeps one)."""
  folder = os.path.join(directory, "checkpoints")
  steps = (sorted(int(d.name) for d in paths.path(folder).iterdir() if d.name.isdigit())
           if paths.path(folder).is_dir() else [])
  # Orbax marks a finished step; a step without it was cut short.
  done = [s for s in steps if paths.path(os.path.join(folder, str(s), checkpoints.STATE)).is_dir()]
  if not done:
    raise UserError(f"{folder}: no GDPA checkpoint beside {MODEL_FILE} (no <step>/state folder); "
                    f"{_RERUN}")
  return os.path.join(folder, str(done[-1]))


def restore_variables(step_dir: str) -> dict[str, Any]:
  """The GDPA's {"params", "batch_stats"} (numpy) from a few-shot checkpoint step folder.

  Only the "train/params", "train/batch_stats" and "frozen" subtrees are read
  (orbax partial restore), with the shapes the checkpoint records: the
  optimiser state and best-validation record are skipped, so no optimiser is
  built to learn their layout.
  """
  restored = checkpoints.read_part(
      # A linear probe has no BatchNorm: its "batch_stats" is empty, and may not be stored.
      step_dir, lambda stored: {"train": {k: stored["train"].get(k) or {} for k in ("params", "batch_stats")},
                                "frozen": stored.get("frozen") or {}},
      name=step_dir, kind="GDPA checkpoint", what="the GDPA")
  if not isinstance(restored, dict) or "train" not in restored:
    raise UserError(f"{step_dir}: not a readable GDPA checkpoint; {_RERUN}")
  # Nothing frozen: orbax may give the empty subtree back as None.
  frozen = restored.get("frozen") or {}
  return {"params": rules.merge(restored["train"]["params"], frozen),
          "batch_stats": restored["train"]["batch_stats"] or {}}


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
  model = gdpa.from_config(config.model, len(config.views), config.get("depth_encoder", ""),
                           paths.point_path)
  expected = jax.eval_shape(lambda: gdpa.init_variables(
      model, jax.random.key(0), len(config.views), description["feature_dim"],
      len(description["class_names"])))
  step_dir = _step_dir(directory)
  variables = restore_variables(step_dir)
  shapes = lambda tree: jax.tree.map(lambda x: (tuple(x.shape), np.dtype(x.dtype).name), tree)
  if shapes(variables) != shapes(expected):
    raise UserError(f"{step_dir} does not hold the GDPA its {MODEL_FILE} describes (other parameter "
                    "names or shapes); use the folder the few-shot run wrote")
  return model, jax.device_put(variables, parallel.replicated(mesh)), description, paths


def probe_columns(description: dict, class_names, where: str) -> np.ndarray:
  """int32[C]: the trained linear probe's logit column of each of `class_names`.

  Raises:
    UserError naming `where` (the config field) when a class was not trained.
  """
  trained = list(description["class_names"])
  unknown = [name for name in class_names if name not in trained]
  if unknown:
    raise UserError(f"{where}: a linear probe classifies only into the {len(trained)} classes it was "
                    f"trained on ({', '.join(trained[:10])}{'...' if len(trained) > 10 else ''}); it "
                    f"does not know {', '.join(map(repr, unknown[:10]))}. Evaluate it on data of those "
                    "classes, or train a GDPA, which compares with any class's text features")
  return np.asarray([trained.index(name) for name in class_names], np.int32)


def load_classifier(config, class_names, mesh):
  """The trained GDPA of `config.gdpa` as `loading.classifier.load_classifier` returns a CLIP.

  A linear probe's logits are its columns of `class_names` (`probe_columns`);
  the text features returned are still those of `class_names`, unused by it.

  Returns:
    classify: jitted `(params, text_features, points float32[B, N, 3],
      point_mask=None) -> float32[B, C]`.
    params: {"encoders": ..., "gdpa": ...}, replicated over the mesh.
    text_features: float32[C, D] of `class_names` with the checkpoint's prompts.
  """
  model, variables, description, paths = load(config.gdpa, mesh)
  trained = description["config"]
  columns = None
  if gdpa.kind_of(trained["model"]) == "linear_probe":
    columns = probe_columns(description, list(class_names), f"config.gdpa={config.gdpa!r}")
    # The probe reads only the count of its text features: that of its training classes.
    sizing = np.zeros((len(description["class_names"]), 1), np.float32)
  settings = render_settings.from_config(trained["render"], trained["views"],
                                         align_modelnet=config.data.align_modelnet)
  encode = dual_path.make_view_encoder(encode_lib.vision_encoder(paths.loaded), settings,
                                       shared=paths.shared, point_model=paths.point_model)

  @jax.jit
  def classify(params, text_features, points, point_mask=None):
    features = encode(params["encoders"], points, point_mask)
    if columns is not None:
      logits = model.apply(params["gdpa"], features["depth"], features["clip"], sizing, train=False)
      return logits[:, columns]
    return model.apply(params["gdpa"], features["depth"], features["clip"], text_features, train=False)

  text = zeroshot.class_text_features(paths.loaded, list(class_names), tuple(trained["prompts"]))
  replicated = parallel.replicated(mesh)
  params = {"encoders": dual_path.put_encoders(paths, replicated), "gdpa": variables}
  return classify, params, jax.device_put(np.asarray(text), replicated)
