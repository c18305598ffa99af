"""Regex rules over parameter paths: which parameters train, their multipliers, their sharding.

A parameter's path is its keys joined by "/", e.g.
`vision_model/encoder/layers_3/mlp/fc1/kernel`. Configs name parameters with
regular expressions that must match a whole path (`re.fullmatch`):

    config.optim.trainable = ("adapter_.*", "gate/.*")      # the rest is frozen
    config.optim.lr_mults = (("gate/.*", 10.0),)             # first match wins
    config.sharding_rules = ((".*kernel", (None, "data")),)

Frozen parameters are split off before the optimiser sees the tree, so they
get no optimiser state and no gradient is taken with respect to them:

    trainable, frozen = rules.split(params, config.optim.trainable)
    loss = lambda t: loss_fn(rules.merge(t, frozen), batch)
"""

import re
from typing import Any, Sequence

import flax.traverse_util
import jax

from clip2point_jax.errors import UserError

SEPARATOR = "/"


def _key_name(key) -> str:
  for attribute in ("key", "name", "idx"):
    if hasattr(key, attribute):
      return str(getattr(key, attribute))
  return str(key)


def param_paths(tree) -> Any:
  """The tree with every leaf replaced by its "a/b/c" path string."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: SEPARATOR.join(_key_name(k) for k in path), tree)


def _compile(pattern: str, what: str) -> re.Pattern:
  try:
    return re.compile(pattern)
  except re.error as e:
    raise UserError(f"{what}: {pattern!r} is not a valid regular expression ({e})") from e


def match_rules(tree, rules: Sequence[tuple[str, Any]], default: Any = None,
                what: str = "parameter rules") -> Any:
  """Per leaf, the value of the first (pattern, value) rule whose pattern fullmatches its path.

  Args:
    tree: a parameter pytree.
    rules: (regex, value) pairs.
    default: the value of leaves no rule matches.
    what: the config field, named in errors.

  Returns:
    A tree of the same structure holding the values.
  """
  compiled = [(_compile(pattern, what), value) for pattern, value in rules]

  def value_of(path):
    return next((value for pattern, value in compiled if pattern.fullmatch(path)), default)

  return jax.tree.map(value_of, param_paths(tree))


def trainable_mask(params, patterns: Sequence[str], what: str = "config.optim.trainable") -> Any:
  """bool tree: True where a path fullmatches one of `patterns`."""
  return match_rules(params, [(p, True) for p in patterns], False, what)


def split(params, patterns: Sequence[str], what: str = "config.optim.trainable"):
  """Splits nested-dict params into (trainable, frozen) nested dicts.

  Raises:
    UserError if the patterns match no parameter at all (a typo, most likely).
  """
  flat = flax.traverse_util.flatten_dict(params, sep=SEPARATOR)
  compiled = [_compile(p, what) for p in patterns]
  is_trainable = {k: any(c.fullmatch(k) for c in compiled) for k in flat}
  if flat and not any(is_trainable.values()):
    example = next(iter(flat))
    raise UserError(f"{what}={tuple(patterns)!r} matches no parameter; paths look like {example!r}")
  trainable = {k: v for k, v in flat.items() if is_trainable[k]}
  frozen = {k: v for k, v in flat.items() if not is_trainable[k]}
  return (flax.traverse_util.unflatten_dict(trainable, sep=SEPARATOR),
          flax.traverse_util.unflatten_dict(frozen, sep=SEPARATOR))


def merge(trainable, frozen):
  """The inverse of `split`: one nested dict holding both parts."""
  flat = flax.traverse_util.flatten_dict(frozen, sep=SEPARATOR)
  flat.update(flax.traverse_util.flatten_dict(trainable, sep=SEPARATOR))
  return flax.traverse_util.unflatten_dict(flat, sep=SEPARATOR)
