"""The linear probe: logits against a NumPy transcription, `model.kind` dispatch, default trainability."""

import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from clip2point_jax.core import rules
from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.errors import UserError
from clip2point_jax.models import gdpa, linear_probe
from clip2point_jax.validation import fields

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def _fewshot_config():
  return load_sibling(os.path.join(CONFIGS, "x.py"), "fewshot").get_config("dataset=modelnet40,shots=16")


def _numpy_probe(kernel, bias, features: dict, paths):
  """The docstring's formula, in float64: each path's views' mean, unit-normalised, concatenated, again."""
  means = []
  for path in paths:
    m = np.asarray(features[path], np.float64).mean(axis=1)
    means.append(m / np.linalg.norm(m, axis=-1, keepdims=True))
  x = np.concatenate(means, axis=-1)
  x /= np.linalg.norm(x, axis=-1, keepdims=True)
  return x @ np.asarray(kernel, np.float64) + np.asarray(bias, np.float64)


@pytest.mark.parametrize("paths", [("clip",), ("depth", "clip")])
def test_logits_match_a_numpy_transcription(paths):
  b, v, d, c = 5, 3, 8, 4
  rng = np.random.default_rng(0)
  # Path P ten times larger: per-path normalisation must keep it from swamping path C.
  features = {"depth": 10 * rng.normal(size=(b, v, d)).astype(np.float32),
              "clip": rng.normal(size=(b, v, d)).astype(np.float32)}
  model = linear_probe.LinearProbe(num_views=v, paths=paths)
  variables = gdpa.init_variables(model, jax.random.key(0), v, d, num_classes=c)
  assert variables["batch_stats"] == {}
  assert jax.tree.map(jnp.shape, variables["params"]) == {
      "adapter_probe": {"kernel": (len(paths) * d, c), "bias": (c,)}}
  # Random weights, not the initialisation's: a wrong formula cannot pass by symmetry.
  kernel = rng.normal(size=(len(paths) * d, c)).astype(np.float32)
  bias = rng.normal(size=(c,)).astype(np.float32)
  params = {"params": {"adapter_probe": {"kernel": kernel, "bias": bias}}}
  text = rng.normal(size=(c, d)).astype(np.float32)
  logits = model.apply(params, features["depth"], features["clip"], text, train=True)
  assert logits.shape == (b, c) and logits.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(logits), _numpy_probe(kernel, bias, features, paths), atol=1e-5)
  # The text features size the layer only; their values are not read.
  np.testing.assert_array_equal(np.asarray(model.apply(params, features["depth"], features["clip"], 0 * text)),
                                np.asarray(logits))
  with pytest.raises(ValueError, match="built for 3 views, got 2"):
    model.apply(params, features["depth"][:, :2], features["clip"][:, :2], text)


def test_from_config_dispatches_on_kind_and_old_configs_are_gdpas():
  config = _fewshot_config()
  assert config.model.kind == "gdpa" and isinstance(gdpa.from_config(config.model, 10), gdpa.GDPA)
  old = ml_collections.ConfigDict({k: v for k, v in config.model.items() if k != "kind"})  # gdpa.json before kind
  assert isinstance(gdpa.from_config(old, 10), gdpa.GDPA)
  with config.unlocked():
    config.model.kind = "linear_probe"
  assert gdpa.from_config(config.model, 10).paths == ("clip",)  # path P is CLIP's tower again
  assert gdpa.from_config(config.model, 10, "runs/pretrain").paths == ("depth", "clip")
  with config.unlocked():
    config.model.kind = "probe"
  with pytest.raises(UserError, match="config.model.kind='probe'; use one of gdpa, linear_probe"):
    gdpa.from_config(config.model, 10)
  with pytest.raises(UserError, match=r"config.model.kind='probe': use one of gdpa, linear_probe"):
    fields.check_fields(config)


@pytest.mark.parametrize("kind,depth_encoder", [("gdpa", ""), ("linear_probe", ""), ("linear_probe", "p")])
def test_the_default_trainable_rules_train_every_parameter_of_either_kind(kind, depth_encoder):
  config = _fewshot_config()
  with config.unlocked():
    config.model.kind = kind
  model = gdpa.from_config(config.model, 10, depth_encoder)
  shapes = jax.eval_shape(lambda: gdpa.init_variables(model, jax.random.key(0), 10, 16, num_classes=40))
  trainable, frozen = rules.split(shapes["params"], tuple(config.optim.trainable))
  assert not jax.tree.leaves(frozen) and gdpa.count_params(trainable) == gdpa.count_params(shapes["params"])
  if kind == "linear_probe":
    assert gdpa.count_params(trainable) == (2 if depth_encoder else 1) * 16 * 40 + 40
