"""CLIP2Point's depth encoder: CLIP's image tower after image-depth pre-training.

The encoder is `clip.CLIPVisionEncoder`: the `vision_model` and
`visual_projection` subtrees of a CLIP param tree. Pre-training checkpoints
(orbax, see `core/checkpoints.py`) hold it in their state at

    state["params"]["depth_encoder"] = {"vision_model": ..., "visual_projection": ...}
    state["params"]["w"]              the loss's balance weight

and `tools/convert_official_checkpoint.py` writes the authors' released
weights in the same layout. `load_params` turns any of them into a whole CLIP
param tree whose image tower is the depth encoder, so everything that encodes
images with CLIP (zero-shot, classify) uses it unchanged:

    params = depth_encoder.load_params("runs/pretrain", loaded_clip)
    features = zeroshot.clip_image_encoder(loaded_clip)(params, depth_images)
"""

import os
from typing import Any, Optional

from absl import logging
import jax
import numpy as np

from clip2point_jax.core import checkpoints, layer_stack, paths
from clip2point_jax.errors import UserError
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.loading import hf_clip

PARAMS = "params"
ENCODER = "depth_encoder"
BALANCE_WEIGHT = "w"
# The validation metric pre-training selects its best checkpoint by.
BEST_METRIC = "val_top1"
CHECKPOINTS = "checkpoints"  # The checkpoint folder inside a pre-training workdir.


def initial_params(clip_params) -> dict[str, Any]:
  """A fresh copy of CLIP's image tower and projection: the encoder to train."""
  return jax.tree.map(np.array, clip_lib.vision_params(clip_params))


def with_encoder(clip_params, encoder_params) -> dict[str, Any]:
  """The CLIP tree with its image tower replaced (no copy of the rest)."""
  return {**clip_params, **encoder_params}


def _is_step_dir(path: str) -> bool:
  return paths.path(os.path.join(path, checkpoints.STATE)).is_dir()


def find_step_dir(source: str) -> str:
  """The checkpoint step folder `source` names.

  `source` is a pre-training workdir (its best checkpoint by validation, else
  its latest), a checkpoint folder (the same choice), or one step's folder;
  local or remote (gs://...).
  """
  path = paths.absolute(source)
  if not paths.path(path).is_dir():
    raise UserError(f"depth encoder {source!r}: no such folder; give a pre-training workdir, its "
                    "checkpoints/ folder or a converted official checkpoint")
  if _is_step_dir(path):
    return path
  if paths.path(os.path.join(path, CHECKPOINTS)).is_dir():
    path = os.path.join(path, CHECKPOINTS)
  steps = [d.name for d in paths.path(path).iterdir()
           if d.name.isdigit() and _is_step_dir(os.path.join(path, d.name))]
  if not steps:
    raise UserError(f"depth encoder {source!r}: {path} holds no checkpoint (no <step>/state "
                    "folder); give a pre-training workdir or a converted official checkpoint")
  manager = checkpoints.Checkpointer(path, best_metric=BEST_METRIC, async_save=False)
  try:
    step = manager.best_step()
    step = manager.latest_step() if step is None else step
  finally:
    manager.close()
  return os.path.join(path, str(step))


def read_encoder(step_dir: str) -> tuple[dict[str, Any], Optional[float]]:
  """(depth encoder params as float32 numpy, w or None) stored in a step folder."""
  def select(tree):
    stored = tree[PARAMS]
    if not isinstance(stored, dict) or ENCODER not in stored:
      raise UserError(f"depth encoder {step_dir}: the checkpoint has no {PARAMS}/{ENCODER}; it is "
                      "not from CLIP2Point pre-training")
    return {PARAMS: {k: stored[k] for k in (ENCODER, BALANCE_WEIGHT) if k in stored}}

  restored = checkpoints.read_part(step_dir, select, name=f"depth encoder {step_dir}",
                                   kind="pre-training checkpoint", what="the checkpoint")[PARAMS]
  # Pre-training may have held the layers stacked (config.optim.stack_layers).
  encoder = layer_stack.unstack(jax.tree.map(lambda x: np.asarray(x, np.float32), restored[ENCODER]))
  w = restored.get(BALANCE_WEIGHT)
  return encoder, (None if w is None else float(w))


def _paths(tree) -> dict[str, Any]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {"/".join(str(getattr(k, "key", k)) for k in path): leaf for path, leaf in leaves}


def check_fits(encoder_params, clip_params, where: str) -> None:
  """UserError unless every stored leaf exists in CLIP's image tower with its shape."""
  want = _paths(clip_lib.vision_params(clip_params))
  have = _paths(encoder_params)
  unknown = sorted(set(have) - set(want))
  misshaped = sorted(k for k in set(have) & set(want)
                     if np.shape(have[k]) != np.shape(want[k]))
  if unknown or misshaped or not have:
    details = []
    if not have:
      details.append("it stores no encoder weights")
    if unknown:
      details.append(f"{len(unknown)} parameters this CLIP lacks, e.g. {unknown[0]}")
    if misshaped:
      k = misshaped[0]
      details.append(f"{len(misshaped)} with other shapes, e.g. {k} {np.shape(have[k])} "
                     f"(this CLIP: {np.shape(want[k])})")
    raise UserError(f"depth encoder {where} does not fit the CLIP it is loaded into: "
                    + "; ".join(details) + ". Use the CLIP it was trained from (config.clip.name)")


def load_params(source: str, loaded: hf_clip.LoadedCLIP) -> dict[str, Any]:
  """CLIP's params with the depth encoder of `source` as the image tower.

  Args:
    source: a pre-training workdir or its checkpoint folder (the best
      checkpoint by validation accuracy, else the latest), one checkpoint step
      folder, or the output of `tools.convert_official_checkpoint`.
    loaded: the CLIP the encoder was trained from (its text tower is kept).

  Returns:
    A CLIP param tree (float32 numpy leaves for the encoder). Encoder
    parameters the checkpoint does not hold (frozen during training) are
    CLIP's own.

  Raises:
    UserError naming `source` when it is missing, unreadable or does not fit.
  """
  step_dir = find_step_dir(source)
  encoder, _ = read_encoder(step_dir)
  check_fits(encoder, loaded.params, step_dir)
  flat = _paths(encoder)
  merged = jax.tree_util.tree_map_with_path(
      lambda path, leaf: flat.get("/".join(str(getattr(k, "key", k)) for k in path), leaf),
      clip_lib.vision_params(loaded.params))
  logging.info("Depth encoder from %s (%d of %d tensors stored).", step_dir, len(flat),
               len(jax.tree.leaves(merged)))
  return with_encoder(loaded.params, merged)


def save(directory: str, encoder_params, w: float = 1.0, meta: Optional[dict[str, Any]] = None) -> str:
  """Writes an encoder-only checkpoint (step 0) that `load_params` reads."""
  directory = paths.absolute(directory)
  if paths.path(directory).is_dir() and any(paths.path(directory).iterdir()):
    raise UserError(f"{directory} exists and is not empty; choose a new output folder")
  state = {PARAMS: {ENCODER: jax.tree.map(lambda x: np.asarray(x, np.float32), encoder_params),
                    BALANCE_WEIGHT: np.float32(w)}}
  manager = checkpoints.Checkpointer(directory, async_save=False)
  try:
    manager.save(0, state, meta=dict(meta or {}))
  finally:
    manager.close()
  return directory
