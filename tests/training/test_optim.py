"""Regex parameter rules: trainable split, learning-rate multipliers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from clip2point_jax.core import rules
from clip2point_jax.training import optim
from clip2point_jax.errors import UserError


def _params(rng):
  return {
      "encoder": {"layers_0": {"kernel": rng.normal(size=(3, 2)), "bias": rng.normal(size=2)},
                  "layers_1": {"kernel": rng.normal(size=(2, 2)), "bias": rng.normal(size=2)}},
      "adapter": {"dense": {"kernel": rng.normal(size=(2, 4))}, "view_weights": rng.normal(size=10)},
  }


def test_paths_and_first_matching_rule_wins():
  params = _params(np.random.default_rng(0))
  assert rules.param_paths(params)["encoder"]["layers_1"]["bias"] == "encoder/layers_1/bias"
  mults = rules.match_rules(params, [(r"encoder/layers_0/.*", 0.5), (r"encoder/.*", 2.0),
                                     (r".*kernel", 3.0)], default=1.0)
  assert mults["encoder"]["layers_0"]["kernel"] == 0.5
  assert mults["encoder"]["layers_1"]["kernel"] == 2.0
  assert mults["adapter"]["dense"]["kernel"] == 3.0
  assert mults["adapter"]["view_weights"] == 1.0
  # fullmatch, not search: "adapter" alone matches nothing.
  mask = rules.trainable_mask(params, ["adapter"])
  assert not any(jax.tree.leaves(mask))


def test_split_merge_round_trip_and_frozen_get_no_state():
  params = _params(np.random.default_rng(1))
  trainable, frozen = rules.split(params, ["adapter/.*"])
  assert set(trainable) == {"adapter"} and set(frozen) == {"encoder"}
  merged = rules.merge(trainable, frozen)
  jax.tree.map(np.testing.assert_array_equal, merged, params)
  state = optax.adam(1e-3).init(trainable)
  sizes = sum(x.size for x in jax.tree.leaves(state))
  # Adam keeps mu and nu (plus a count) for the 18 trainable numbers only.
  assert sizes == 2 * (8 + 10) + 1


def test_split_rejects_patterns_that_match_nothing_and_bad_regex():
  params = _params(np.random.default_rng(2))
  with pytest.raises(UserError, match=r"matches no parameter; paths look like 'encoder/layers_0/kernel'"):
    rules.split(params, ["adaptr/.*"])
  with pytest.raises(UserError, match=r"config.optim.lr_mults: '\(' is not a valid regular"):
    optim.with_lr_mults(optax.sgd(1.0), params, [("(", 2.0)])


def test_lr_multipliers_scale_each_parameter_update():
  rng = np.random.default_rng(3)
  params = jax.tree.map(jnp.asarray, _params(rng))
  grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape)), params)
  tx = optim.with_lr_mults(optax.sgd(0.1), params, [("adapter/.*", 10.0), ("encoder/layers_1/.*", 0.0)])
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["adapter"]["dense"]["kernel"], -1.0 * grads["adapter"]["dense"]["kernel"],
                             rtol=1e-6)
  np.testing.assert_allclose(updates["encoder"]["layers_0"]["bias"], -0.1 * grads["encoder"]["layers_0"]["bias"],
                             rtol=1e-6)
  np.testing.assert_array_equal(updates["encoder"]["layers_1"]["kernel"], 0.0)


def test_sharding_rules_give_a_named_sharding_per_parameter():
  from clip2point_jax.core import parallel
  params = _params(np.random.default_rng(4))
  mesh = parallel.make_mesh()
  shardings = parallel.param_shardings(mesh, params, [(r".*layers_0/kernel", ("data", None))])
  assert shardings["encoder"]["layers_0"]["kernel"].spec == jax.sharding.PartitionSpec("data", None)
  assert shardings["adapter"]["view_weights"].spec == jax.sharding.PartitionSpec()
