"""Per-task rules: combinations of fields, datasets, views and input paths.

`check_task(config)` runs the field table (`fields.py`) and the rules of the
task `config.task` names; a config that nests whole task configs (the demo)
has each of them checked under its own path. Nothing here reads weights or
datasets: it runs in well under a second, before any work starts.
"""

from typing import Callable

from clip2point_jax.core import paths
from clip2point_jax.core.config_args import get_field
from clip2point_jax.data import pretrain_data, registry
from clip2point_jax.detection import classifiers as detection_classifiers
from clip2point_jax.detection import device_crops
from clip2point_jax.errors import UserError
from clip2point_jax.loading import point_encoder
from clip2point_jax.models import point_transformer
from clip2point_jax.projection import recipes
from clip2point_jax.projection import settings as render_settings
from clip2point_jax.validation import fields

# Read-only inputs: when set, they must exist.
INPUT_PATHS = ("depth_encoder", "gdpa", "classifier.checkpoint", "manual_dir", "shapenet_dir",
               "lists_dir", "renderings_dir", "data.scans_dir", "data.boxes_dir",
               "data.proposals_dir")
# Those of them that may be in a bucket (gs://...): orbax checkpoints and JSON, read through epath.
# The others are read by file name (archives, trimesh, PLY scans) and must be local.
REMOTE_OK = ("depth_encoder", "gdpa", "classifier.checkpoint")
COST_ANALYSES = ("compiled", "lowered")


def _check_inputs_exist(config, prefix: str) -> None:
  for field in INPUT_PATHS:
    value = get_field(config, field)
    if value and field not in REMOTE_OK:
      paths.require_local(value, f"config.{prefix}{field}", f"the {config.task} task")
    if value and not paths.path(value).exists():
      raise UserError(f"config.{prefix}{field}={value!r}: no such file or folder")
  name = get_field(config, "clip.name")
  # A Hub id is "org/name"; anything that reads as a path (or a bucket folder) must exist.
  if (name and (name.startswith(("/", "./", "../", "~")) or paths.is_remote(name))
      and not paths.path(name).exists()):
    raise UserError(f"config.{prefix}clip.name={name!r}: no such CLIP folder; give a local "
                    "Hugging Face CLIP folder or a Hub id such as openai/clip-vit-base-patch32")


def _dataset(config, prefix: str, *, files_ok: bool = False) -> None:
  names = registry.DATASETS + (("files",) if files_ok else ())
  for block_path in ("data",) + tuple(f"evals.{k}.data" for k in (get_field(config, "evals") or {})):
    data = get_field(config, block_path)
    if data is None or (block_path != "data" and not data.name):
      continue  # An evaluation without a dataset is off.
    if data.name not in names:
      raise UserError(f"config.{prefix}{block_path}.name={data.name!r}: no such dataset; use one of "
                      f"{', '.join(names)}")
    if data.name == "files" and not data.get("files"):
      raise UserError(f"config.{prefix}{block_path}.files is empty; give a glob of your files, one "
                      "folder per class, e.g. --config.data.files='clouds/*/*.ply'")


def _views(config, views=None) -> None:
  """The projector settings (render block, views and their weights) build."""
  data = config.get("data")
  align = bool(data.get("align_modelnet", False)) if data is not None else False
  render_settings.from_config(config.render, config.views if views is None else views,
                              config.get("view_weights", ()), align_modelnet=align)


def _zeroshot(config, prefix):
  _dataset(config, prefix, files_ok=True)
  _views(config)


def _classify(config, prefix):
  names = [c for c in config.classes.split(",") if c.strip()]
  if len(names) < 2:
    raise UserError(f"config.{prefix}classes={config.classes!r}: give at least two comma-separated "
                    "class names")
  if not config.inputs.strip():
    raise UserError(f"config.{prefix}inputs is empty; give a glob such as 'clouds/*.ply'")
  _views(config)


def _fewshot(config, prefix):
  if config.data.name == "files":
    raise UserError(f"config.{prefix}data.name='files' has no train/test splits; GDPA training needs a "
                    "prepared dataset (see docs/datasets.md)")
  _dataset(config, prefix)
  _views(config)


def _pretrain(config, prefix):
  _dataset(config, prefix)
  if render_settings.is_pointclip(config.render.mode):
    raise UserError(f"config.{prefix}render.mode={config.render.mode!r}: pre-training pairs CLIP2Point's "
                    "depth maps with rendered views at the same cameras; use hard or soft")
  group = config.loss.negatives_group
  if group and config.batch_size % group:
    raise UserError(f"config.{prefix}loss.negatives_group={group} must divide config.{prefix}batch_size="
                    f"{config.batch_size} (0: the whole batch)")
  render_settings.from_config(config.render, views=pretrain_data.VIEWS)
  for evaluation in config.evals.values():
    if evaluation.data.name:
      render_settings.from_config(config.render, evaluation.views, evaluation.view_weights,
                                  align_modelnet=evaluation.data.align_modelnet)
  if config.get("encoder") == point_encoder.POINT_TRANSFORMER:
    _point_transformer(config, prefix)


def _point_transformer(config, prefix):
  """The 3D encoder builds, and every cloud it reads has enough points for its stages."""
  block = config.point_transformer
  scale = tuple(block.augment.scale)
  if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
    raise UserError(f"config.{prefix}point_transformer.augment.scale={scale}: give (low, high) with "
                    "0 < low <= high")
  try:
    model = point_encoder.model_from_config(block, embed_dim=1)
  except UserError as e:
    raise UserError(f"{e}".replace("config.", f"config.{prefix}", 1)) from None
  fewest = point_transformer.min_points(model)
  blocks = [("data", config.data)] + [(f"evals.{k}.data", e.data) for k, e in config.evals.items()
                                      if e.data.name]
  for path, data in blocks:
    if data.num_points < fewest:
      raise UserError(f"config.{prefix}{path}.num_points={data.num_points}: the Point Transformer's "
                      f"strides {model.strides} need at least {fewest} points per cloud")


def _detect(config, prefix):
  if config.crop.margin <= -1:
    raise UserError(f"config.{prefix}crop.margin={config.crop.margin} must be > -1")
  if config.crop.where not in device_crops.WHERE:
    raise UserError(f"config.{prefix}crop.where={config.crop.where!r}; use one of "
                    f"{', '.join(device_crops.WHERE)}")
  if config.data.name not in ("scannet", "synthetic"):
    raise UserError(f"config.{prefix}data.name={config.data.name!r}; use scannet or synthetic")
  if config.data.name != "synthetic" and not config.data.scans_dir:
    raise UserError(f"config.{prefix}data.scans_dir is empty: give the folder of the ScanNet scans "
                    "(and boxes_dir/proposals_dir if those files are elsewhere)")
  thresholds = tuple(config.eval.iou_thresholds)
  if not thresholds or any(not 0 <= t < 1 for t in thresholds):
    raise UserError(f"config.{prefix}eval.iou_thresholds={thresholds}: give thresholds in [0, 1)")
  kinds = sorted([*detection_classifiers.BUILDERS, detection_classifiers.ORACLE])
  if config.classifier.kind not in kinds:
    raise UserError(f"config.{prefix}classifier.kind={config.classifier.kind!r}; use one of "
                    f"{', '.join(kinds)}")
  if config.classifier.kind == "gdpa" and not config.classifier.checkpoint:
    raise UserError(f"config.{prefix}classifier.kind='gdpa' needs config.{prefix}classifier.checkpoint"
                    "=<a fewshot or finetune workdir>")
  _views(config)


def _prepare(config, prefix):
  if config.dataset not in registry.DATASETS:
    raise UserError(f"config.{prefix}dataset={config.dataset!r}: no such dataset; use one of "
                    f"{', '.join(registry.DATASETS)}")


def _render(config, prefix):
  for field in ("shapenet_dir", "lists_dir"):
    if not config[field]:
      raise UserError(f"config.{prefix}{field} is empty; see docs/rendering.md for the folders "
                      "rendering needs")
  index, sep, count = config.shard.partition("/")
  if not (sep and index.isdigit() and count.isdigit() and int(index) < int(count)):
    raise UserError(f"config.{prefix}shard={config.shard!r}: use i/n with 0 <= i < n, e.g. 0/1")


def _visualize(config, prefix):
  _dataset(config, prefix)
  _views(config)
  if config.view >= len(config.views):
    raise UserError(f"config.{prefix}view={config.view}: there are {len(config.views)} views "
                    f"(0..{len(config.views) - 1})")


def _complexity(config, prefix):
  if config.cost_analysis not in COST_ANALYSES:
    raise UserError(f"config.{prefix}cost_analysis={config.cost_analysis!r}; use one of "
                    f"{', '.join(COST_ANALYSES)}")


def _compare(config, prefix):
  _dataset(config, prefix, files_ok=True)
  methods = tuple(config.methods)
  if not methods or any(m not in recipes.METHODS for m in methods) or len(set(methods)) < len(methods):
    raise UserError(f"config.{prefix}methods={methods!r}; list each of {', '.join(recipes.METHODS)} "
                    "at most once")
  if render_settings.is_pointclip(config.render.mode):
    raise UserError(f"config.{prefix}render.mode={config.render.mode!r} sets CLIP2Point's row: use hard "
                    "or soft (the PointCLIP rows use their own modes)")
  _views(config)


TASK_RULES: dict[str, Callable] = {
    "zeroshot": _zeroshot, "classify": _classify, "fewshot": _fewshot, "finetune": _fewshot,
    "pretrain": _pretrain, "detect": _detect, "prepare": _prepare, "render": _render,
    "visualize": _visualize, "complexity": _complexity, "compare": _compare,
}


def check_task(config, prefix: str = "") -> None:
  """UserError for the first mistake in `config` (and in the task configs it nests).

  Args:
    config: a task config (its `task` field names the task).
    prefix: its dotted path inside the whole config, for messages.
  """
  fields.check_fields(config, prefix)
  rule = TASK_RULES.get(config.get("task"))
  if rule is not None:
    rule(config, prefix)
  _check_inputs_exist(config, prefix)
  for key, value in config.items():
    if hasattr(value, "get") and value.get("task"):
      check_task(value, f"{prefix}{key}.")
