"""Rules every task's config obeys, keyed by field name.

The tasks share field names (`batch_size`, `data.num_points`, the `render`
and `clip` blocks...), so one table checks them all, wherever the field sits
(the demo nests whole task configs). Each rule names the field by its dotted
path and says what it accepts; `check_fields` raises the first broken rule.
Choices come from the code that consumes them, so they cannot drift.
"""

import re
from typing import Any, Callable, Iterator, Optional

from clip2point_jax.data import pipeline
from clip2point_jax.errors import UserError
from clip2point_jax.features import image_features
from clip2point_jax.kernels import dispatch
from clip2point_jax.loading import hf_clip, point_encoder
from clip2point_jax.models import gdpa, point_transformer
from clip2point_jax.projection import settings as render_settings
from clip2point_jax.training import pretrain
from renderers import mesh

# Returns what is wrong with a value ("must be at least 1"), or None.
Check = Callable[[Any], Optional[str]]


def at_least(low) -> Check:
  return lambda v: None if v >= low else f"must be at least {low}"


def positive(v) -> Optional[str]:
  return None if v > 0 else "must be positive"


def in_interval(low, high, *, closed_low=True) -> Check:
  def check(v):
    if (v >= low if closed_low else v > low) and v < high:
      return None
    return f"must be in {'[' if closed_low else '('}{low}, {high})"
  return check


def one_of(*choices) -> Check:
  return lambda v: None if v in choices else f"use one of {', '.join(map(str, choices))}"


def not_empty(v) -> Optional[str]:
  return None if len(v) else "is empty; give at least one"


def prompt_templates(v) -> Optional[str]:
  if not v:
    return "is empty; give at least one template such as 'image of a {}'"
  missing = [p for p in v if "{}" not in p]
  return f"template {missing[0]!r} has no '{{}}' for the class name" if missing else None


def regexes(v) -> Optional[str]:
  """Regex rules: plain strings, or (regex, value) pairs."""
  for rule in v:
    pattern = rule if isinstance(rule, str) else (rule[0] if len(rule) else "")
    try:
      re.compile(pattern)
    except (re.error, TypeError) as e:
      return f"has an invalid regex {pattern!r} ({e})"
  return None


_ANY = r"(^|.*\.)"
_CLIP_DTYPES = tuple(hf_clip.DTYPES)
# (regex over the dotted path, check); the first match decides.
RULES: tuple[tuple[str, Check], ...] = (
    (_ANY + r"(batch_size|eval_batch_size|encode_batch_size|max_batch|top_k|log_every|"
     r"epochs|num_epochs|every_steps|keep|workers|load_workers|write_workers|faces_per_batch|"
     r"atlas_size|image_size|tiny_patch_size|num_scenes|num_objects|points_per_object|"
     r"num_classes)$", at_least(1)),
    (_ANY + r"data\.num_points$|" + _ANY + r"crop\.num_points$|^num_points$", at_least(1)),
    (_ANY + r"(num_points_stored|num_per_class_train|num_per_class_test|num_steps|shots|prefetch|"
     r"eval_every_epochs|eval_every_steps|checkpoint_every_epochs|restart_steps|restart_epochs|"
     r"max_scenes|num_grid_clouds|min_points|floor_points|num_plot_scenes|max_classes|"
     r"negatives_group|shape|view|plot_max_boxes)$", at_least(0)),
    (_ANY + r"render\.mode$", one_of(*render_settings.MODES)),
    (_ANY + r"render\.zbuffer$", one_of(*render_settings.projector.ZBUFFER_MODES)),
    (_ANY + r"render\.camera$|^camera$", one_of(*render_settings.CAMERAS)),
    (_ANY + r"(render\.)?fov$", in_interval(0, 180, closed_low=False)),
    (_ANY + r"(radius|distance|sigma|gamma|temperature|clamp_value|eps)$", positive),
    (_ANY + r"render\.distance_jitter$", in_interval(0, 1)),
    # A learning rate of 0 is a frozen baseline, run through the same loop.
    (_ANY + r"(learning_rate|weight_decay|eta_min)$", at_least(0)),
    (_ANY + r"(b1|b2|dropout|val_fraction)$", in_interval(0, 1)),
    (_ANY + r"clip\.dtype$", one_of(*_CLIP_DTYPES)),
    (_ANY + r"clip\.residual_dtype$", one_of("auto", *_CLIP_DTYPES)),
    (_ANY + r"clip\.attention$", one_of(*dispatch.ATTENTION_IMPLEMENTATIONS)),
    (_ANY + r"image_cache\.dtype$", one_of(*image_features.DTYPES)),
    (r"^image_features$", one_of(*pretrain.IMAGE_FEATURE_MODES)),
    (r"^encoder$", one_of(*point_encoder.ENCODERS)),
    (_ANY + r"point_transformer\.preset$", one_of(*point_transformer.PRESETS)),
    (_ANY + r"point_transformer\.dtype$", one_of(*point_encoder.DTYPES)),
    (_ANY + r"point_transformer\.missing_neighbours$", one_of(*point_transformer.MISSING_NEIGHBOURS)),
    (_ANY + r"augment\.(jitter_sigma|jitter_clip)$", at_least(0)),
    (_ANY + r"data\.sampling$", one_of(*pipeline.SAMPLINGS)),
    (_ANY + r"model\.fusion$", one_of(*gdpa.FUSIONS)),
    (_ANY + r"model\.kind$", one_of(*gdpa.KINDS)),
    (r"^edge_rule$", one_of(*mesh.EDGE_RULES)),
    (_ANY + r"seeds$", not_empty),
    (_ANY + r"prompts$", prompt_templates),
    (_ANY + r"(trainable|lr_mults|sharding_rules)$", regexes),
)

def leaves(config, prefix: str = "") -> Iterator[tuple[str, Any]]:
  """(dotted path, value) of every leaf of a ConfigDict, depth first."""
  for key, value in config.items():
    path = f"{prefix}{key}"
    if hasattr(value, "items"):
      yield from leaves(value, path + ".")
    else:
      yield path, value


def _rule_for(path: str) -> Optional[Check]:
  for pattern, check in RULES:
    if re.match(pattern, path):
      return check
  return None


def check_fields(config, prefix: str = "") -> None:
  """UserError for the first field whose value no task accepts.

  Args:
    config: a task's ConfigDict (or a block of one).
    prefix: the dotted path of `config` inside the whole config, for messages.
  """
  for path, value in leaves(config):
    full = prefix + path
    if value is None or isinstance(value, bool):
      continue
    check = _rule_for(full)
    if check is None:
      continue
    try:
      problem = check(value)
    except TypeError:
      problem = f"has the wrong type ({type(value).__name__})"
    if problem:
      raise UserError(f"config.{full}={value!r}: {problem}")
