"""The one line the CLI prints for a config mistake, out of the exceptions wrapped around it."""

import ml_collections
import pytest

from clip2point_jax.core import config_errors
from clip2point_jax.errors import UserError


def _raised(fn) -> BaseException:
  with pytest.raises(Exception) as info:
    fn()
  return info.value


def test_a_typo_in_a_locked_config_names_the_field_and_the_suggestion():
  config = ml_collections.ConfigDict({"learning_rate": 0.1})
  config.lock()
  error = _raised(lambda: setattr(config, "lerning_rate", 0.2))
  assert config_errors.one_line(error) == (
      "the config has no field 'lerning_rate'; did you mean 'learning_rate'?")


def test_our_own_error_is_found_under_the_wrappers():
  def load():
    try:
      raise UserError("dataset=modelnet41 is not a prepared dataset")
    except UserError as e:
      raise ValueError("Failed to execute get_config\nTraceback ...") from e

  assert config_errors.one_line(_raised(load)) == "dataset=modelnet41 is not a prepared dataset"


def test_a_missing_nested_field_is_named_by_the_override_that_set_it():
  argv = ["main", "--config.optim.warmup_stepz=3"]
  error = KeyError("warmup_stepz")
  assert config_errors.overrides(argv) == ["optim.warmup_stepz"]
  assert config_errors.one_line(error, argv).startswith("the config has no field 'optim.warmup_stepz'")
