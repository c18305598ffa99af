"""The settings a trained model was trained with, filled into the config that loads it.

A pre-training checkpoint records its whole config (`training/pretrain.py:
checkpoint_meta`), a trained GDPA its config in `seed_<s>/gdpa.json`. A
config that loads one (`depth_encoder`; `gdpa`; detection's
`classifier.checkpoint` with `classifier.kind=gdpa`) gets from it the CLIP
and render settings it must match, so the user need not repeat them:

    filled = trained_settings.fill_in(config, explicit=frozenset({"render.radius"}))

Fields the user set on the command line (`explicit`, dotted as `--config.`
overrides name them) are kept, and one that differs from the recorded value
is a UserError: a model gives its accuracy only with the settings it was
trained with. Only JSON is read (no weights), so it is cheap to call early.
"""

import json
import os
from typing import Any, Optional

from clip2point_jax.core import paths
from clip2point_jax.core.config_args import get_field
from clip2point_jax.errors import UserError
from clip2point_jax.loading import depth_encoder, trained_gdpa
from clip2point_jax.projection import settings as render_settings

# The compute settings a GDPA records with its CLIP (its features were cached with them).
GDPA_CLIP_FIELDS = ("name", "dtype", "attention", "residual_dtype")


def _plain(value):
  """JSON-comparable: tuples as lists, ConfigDicts as dicts."""
  if hasattr(value, "to_dict"):
    value = value.to_dict()
  return json.loads(json.dumps(value))


def _tuples(value):
  """Lists as tuples, as configs hold sequences (views, prompts)."""
  return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def gdpa_settings(trained: dict) -> dict[str, Any]:
  """Dotted field -> value a GDPA's recorded config (gdpa.json's "config") fixes.

  Render fields the trained config predates (written before the projector
  gained mode, camera...) take the values those versions rendered with.
  """
  found = {f"clip.{k}": trained["clip"][k] for k in GDPA_CLIP_FIELDS if k in trained["clip"]}
  found["views"] = trained["views"]
  found["view_weights"] = []  # The GDPA weighs its views itself.
  found["prompts"] = trained["prompts"]
  for key, value in {**render_settings.ADDED_DEFAULTS, **trained["render"]}.items():
    if key not in render_settings.IMPLEMENTATION_FIELDS:  # They change no image: the user's choice.
      found[f"render.{key}"] = value
  return found


def _clip_name(recorded: str, workdir: str) -> str:
  """A recorded CLIP name that still resolves: older runs recorded a workdir-relative tiny CLIP."""
  if (not recorded or paths.is_remote(recorded) or os.path.isabs(recorded)
      or os.path.isdir(os.path.expanduser(recorded))):
    return recorded
  beside = os.path.join(workdir, os.path.basename(os.path.normpath(recorded)))
  return beside if paths.path(beside).is_dir() else recorded


def read_step_meta(step_dir: str) -> dict:
  """A checkpoint step's "meta" JSON ({} where it has none or it is unreadable)."""
  path = os.path.join(step_dir, "meta", "metadata")
  try:
    meta = paths.read_json(path)
  except (OSError, ValueError):
    return {}
  return meta if isinstance(meta, dict) else {}


def depth_encoder_settings(source: str) -> dict[str, Any]:
  """Dotted field -> value a pre-trained depth encoder fixes: its CLIP and render block.

  A 3D encoder (pre-trained with encoder=point_transformer) renders nothing:
  its CLIP alone, whose text tower its features were trained against. The
  authors' converted release records no config: nothing then.
  """
  step_dir = depth_encoder.find_step_dir(source)
  trained = read_step_meta(step_dir).get("config")
  if not isinstance(trained, dict):
    return {}
  found = {}
  name = (trained.get("clip") or {}).get("name")
  if name:
    # <workdir>/checkpoints/<step>: a relative tiny CLIP sat in <workdir>.
    found["clip.name"] = _clip_name(name, os.path.dirname(os.path.dirname(step_dir)))
  if trained.get("encoder", "depth") != "depth":
    return found
  for key, value in (trained.get("render") or {}).items():
    if key not in render_settings.IMPLEMENTATION_FIELDS:
      found[f"render.{key}"] = value
  return found


def _artefact(config) -> Optional[tuple[str, str, str]]:
  """(kind, config field, path) of the trained model `config` loads, or None."""
  if config.get("gdpa"):
    return "gdpa", "gdpa", config.gdpa
  classifier = config.get("classifier")
  if classifier is not None and classifier.get("kind") == "gdpa" and classifier.get("checkpoint"):
    return "gdpa", "classifier.checkpoint", classifier.checkpoint
  if config.get("depth_encoder") and (classifier is None or classifier.get("kind") == "zeroshot"):
    return "depth_encoder", "depth_encoder", config.depth_encoder
  return None


def recorded_settings(config) -> tuple[str, dict[str, Any]]:
  """(how errors name the artefact, dotted field -> recorded value) for `config`'s trained model."""
  found = _artefact(config)
  if found is None:
    return "", {}
  kind, field, path = found
  if kind == "gdpa":
    description = trained_gdpa.read_description(path)
    where = os.path.join(trained_gdpa.seed_dir(path), trained_gdpa.MODEL_FILE)
    return f"the GDPA of config.{field} ({where})", gdpa_settings(description["config"])
  return f"the depth encoder of config.depth_encoder ({path})", depth_encoder_settings(path)


def _is_explicit(field: str, explicit: frozenset[str]) -> bool:
  parts = field.split(".")
  return any(".".join(parts[:i]) in explicit for i in range(1, len(parts) + 1))


_MISSING = object()  # get_field's default: a field the config lacks


def fill_in(config, explicit: frozenset[str] = frozenset()) -> list[str]:
  """Copies the trained model's recorded settings into `config`; returns "field=value" of each change.

  A no-op (returns []) for configs that load no trained model. Fields the
  config does not have are skipped (a detection config has no `data.views`).

  Args:
    config: a task config (zeroshot, fewshot, finetune, classify, detect).
    explicit: dotted fields the user set (`--config.clip.name=...` gives
      "clip.name"); a block name ("render") covers its fields.

  Raises:
    UserError naming the field, both values and what to do, when an explicit
    field differs from the recorded one; or when the artefact is unreadable.
  """
  where, recorded = recorded_settings(config)
  filled = []
  for field, value in recorded.items():
    current = get_field(config, field, _MISSING)
    parent = get_field(config, field.rpartition(".")[0], _MISSING) if "." in field else config
    if parent is _MISSING or (current is _MISSING and "." not in field):
      continue
    if current is not _MISSING and _plain(current) == _plain(value):
      continue
    if _is_explicit(field, explicit):
      raise UserError(f"--config.{field}={_plain(current)!r} but {where} was trained with "
                      f"{field}={_plain(value)!r}; drop the override (the trained model's value is used)")
    block, _, leaf = field.rpartition(".")
    with config.unlocked():
      (parent if block else config)[leaf] = _tuples(value)
    filled.append(f"{field}={_plain(value)!r}")
  return filled
