"""Parsing of config-file arguments, `configs/x.py:key=value,flag`."""

import importlib.util
import os

from clip2point_jax.errors import UserError


def default_data_dir() -> str:
  """Where prepared datasets live, by TFDS's convention: $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
  return os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"


def parse_arg(arg: str | None, **defaults) -> dict:
  """Reads `key=value,key2=value2,flag` into a dict over `defaults`.

  Values take the type of their default (a bare `flag` means True); unknown
  keys are an error that lists the known ones.
  """
  result = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, sep, value = item.partition("=")
    key = key.strip()
    if key not in defaults:
      raise UserError(f"unknown config argument {key!r}; known: {', '.join(sorted(defaults))}")
    default = defaults[key]
    if not sep:
      value = "True"
    if isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise UserError(f"config argument {key}={value!r} must be true or false")
      result[key] = value.lower() in ("true", "1")
    elif default is not None:
      try:
        result[key] = type(default)(value)
      except ValueError:
        raise UserError(f"config argument {key}={value!r} must be a {type(default).__name__}") from None
    else:
      result[key] = value
  return result


def get_field(config, dotted: str, default=None):
  """config["a"]["b"]... for `dotted` "a.b"; `default` where a block lacks the field."""
  node = config
  for key in dotted.split("."):
    if not hasattr(node, "get") or key not in node:
      return default
    node = node[key]
  return node


def load_sibling(config_file: str, name: str):
  """Imports the config file `name`.py that sits beside `config_file`.

  Config files are loaded by path, not as a package, so one that builds on
  another finds it this way wherever the command runs from.
  """
  path = os.path.join(os.path.dirname(os.path.abspath(config_file)), f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"clip2point_config_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module
