"""A 3D encoder pre-trained by CLIP2Point's recipe (supplementary Sec. 4): Point Transformer.

`configs/pretrain.py:encoder=point_transformer` trains a `models.point_transformer`
network with the "clip" head from scratch. Its checkpoints (orbax, see
`core/checkpoints.py`) hold

    state["params"]["point_encoder"]   the network's params (all trained)
    state["params"]["w"]               the loss's balance weight
    state["batch_stats"]               its BatchNorm statistics

and record the whole config in their meta ("encoder": "point_transformer"
and the "point_transformer" block), from which the network is built again.
A workdir is recognised as a 3D encoder's by that record alone:

    if point_encoder.is_point_encoder(workdir):
      model, variables = point_encoder.load(workdir)
      features = point_encode.cloud_features(model, variables, points)
"""

import os
from typing import Any, Optional

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.core import checkpoints
from clip2point_jax.errors import UserError
from clip2point_jax.loading import depth_encoder, trained_settings
from clip2point_jax.models import point_transformer as pt

# config.encoder of configs/pretrain.py: CLIP2Point's depth encoder or the 3D one.
DEPTH = "depth"
POINT_TRANSFORMER = "point_transformer"
ENCODERS = (DEPTH, POINT_TRANSFORMER)
PARAMS_KEY = "point_encoder"  # its subtree of state["params"]
BATCH_STATS = "batch_stats"  # its BatchNorm statistics in the state
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def model_from_config(block, embed_dim: int) -> pt.PointTransformer:
  """The network of a `point_transformer` config block (a ConfigDict or its recorded dict).

  Args:
    block: preset, dtype, missing_neighbours, and blocks (empty: the
      preset's), planes, strides, neighbours (empty: the references').
    embed_dim: the "clip" head's width, CLIP's embedding width.

  Raises:
    UserError naming the field for values the network cannot be built with.
  """
  get = block.get
  if get("dtype", "float32") not in DTYPES:
    raise UserError(f"config.point_transformer.dtype={get('dtype')!r}; use one of "
                    f"{', '.join(DTYPES)}")
  if get("preset", "authors") not in pt.PRESETS:
    raise UserError(f"config.point_transformer.preset={get('preset')!r}; use one of "
                    f"{', '.join(pt.PRESETS)}")
  fields = {}
  for name in ("blocks", "planes", "strides", "neighbours"):
    if get(name):
      fields[name] = tuple(int(v) for v in get(name))
  try:
    fields.setdefault("blocks", pt.PRESETS[get("preset", "authors")])
    model = pt.PointTransformer(head="clip", embed_dim=int(embed_dim),
                                dtype=DTYPES[get("dtype", "float32")],
                                missing_neighbours=get("missing_neighbours", "pointcept"), **fields)
    model.check()
  except UserError as e:
    raise UserError(f"config.point_transformer: {e}") from None
  return model


def recorded_config(step_dir: str) -> Optional[dict]:
  """The config a checkpoint step recorded, or None (converted official weights record none)."""
  found = trained_settings.read_step_meta(step_dir).get("config")
  return found if isinstance(found, dict) else None


def encoder_kind(config_dict: Optional[dict]) -> str:
  """DEPTH or POINT_TRANSFORMER for a recorded pre-training config (runs before the field: depth)."""
  return (config_dict or {}).get("encoder", DEPTH) or DEPTH


def is_point_encoder(source: str) -> bool:
  """Whether `source` (a pre-training workdir, its checkpoints/ or a step folder) holds a 3D encoder."""
  return encoder_kind(recorded_config(depth_encoder.find_step_dir(source))) == POINT_TRANSFORMER


def read_variables(step_dir: str) -> dict[str, Any]:
  """{"params": ..., "batch_stats": ...} of the 3D encoder stored in a step folder, float32 numpy."""
  def select(tree):
    if PARAMS_KEY not in tree[depth_encoder.PARAMS] or BATCH_STATS not in tree:
      raise UserError(f"3D encoder {step_dir}: the checkpoint has no {depth_encoder.PARAMS}/"
                      f"{PARAMS_KEY} and {BATCH_STATS}; it is not from pre-training with "
                      f"encoder={POINT_TRANSFORMER}")
    # The stored paths, kept: orbax restores a partial target by its paths.
    return {depth_encoder.PARAMS: {PARAMS_KEY: tree[depth_encoder.PARAMS][PARAMS_KEY]},
            BATCH_STATS: tree[BATCH_STATS]}

  restored = checkpoints.read_part(step_dir, select, name=f"3D encoder {step_dir}",
                                   kind="pre-training checkpoint", what="the 3D encoder")
  return {"params": restored[depth_encoder.PARAMS][PARAMS_KEY], BATCH_STATS: restored[BATCH_STATS]}


def load(source: str) -> tuple[pt.PointTransformer, dict[str, Any]]:
  """(model, variables) of the 3D encoder in `source`, built from its recorded config.

  Args:
    source: a pre-training workdir or its checkpoint folder (the best
      checkpoint by validation accuracy, else the latest) or one step folder.

  Raises:
    UserError naming `source` when it holds no 3D encoder or does not fit its config.
  """
  step_dir = depth_encoder.find_step_dir(source)
  recorded = recorded_config(step_dir)
  if encoder_kind(recorded) != POINT_TRANSFORMER:
    raise UserError(f"{source}: {step_dir} holds a depth encoder, not a 3D one")
  variables = read_variables(step_dir)
  embed_dim = np.shape(variables["params"]["proj"]["kernel"])[1]
  model = model_from_config(recorded.get("point_transformer") or {}, embed_dim)
  check_fits(model, variables, step_dir)
  logging.info("3D encoder from %s.", step_dir)
  return model, variables


def check_fits(model: pt.PointTransformer, variables, where: str) -> None:
  """UserError unless `variables` has exactly the layout and shapes `model` initialises."""
  want = jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))
  flat = lambda tree: {"/".join(str(getattr(k, "key", k)) for k in path): np.shape(leaf)
                       for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}
  have, need = flat(variables), flat(want)
  if have != need:
    differ = sorted(set(have) ^ set(need)) or sorted(k for k in have if have[k] != need[k])
    raise UserError(f"3D encoder {where} does not fit the network its config describes "
                    f"({os.path.basename(where)}: {len(differ)} parameters differ, e.g. {differ[0]})")
