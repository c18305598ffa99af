"""Feature caches: round trip, stale identities refused, interrupted writes ignored."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.core import feature_cache
from clip2point_jax.errors import UserError


def test_round_trip_and_stale_identity_is_refused(tmp_path):
  rng = np.random.default_rng(0)
  arrays = {"features": rng.normal(size=(5, 10, 8)).astype(np.float16),
            "labels": rng.integers(0, 3, 5).astype(np.int32)}
  identity = {"encoder": "abc", "views": [(0, 0), (90, 0)], "split": "train"}
  directory = str(tmp_path / "cache")
  assert feature_cache.load(directory, identity) is None
  feature_cache.save(directory, arrays, identity)
  loaded = feature_cache.load(directory, identity)
  for k in arrays:
    np.testing.assert_array_equal(loaded[k], arrays[k])
    assert loaded[k].dtype == arrays[k].dtype
  with pytest.raises(UserError, match=r"stale \(encoder: cached 'abc', now 'xyz'\)"):
    feature_cache.load(directory, {**identity, "encoder": "xyz"})
  with pytest.raises(UserError, match=r"stale \(views:"):
    feature_cache.load(directory, {**identity, "views": [(0, 0)]})


def test_interrupted_cache_counts_as_missing(tmp_path):
  directory = str(tmp_path / "cache")
  feature_cache.save(directory, {"a": np.arange(3)}, {"k": 1})
  os.remove(os.path.join(directory, feature_cache.INDEX))  # As if killed before the index.
  assert feature_cache.load(directory, {"k": 1}) is None


def test_fingerprint_changes_with_any_value_and_ignores_dict_order():
  rng = np.random.default_rng(1)
  params = {"a": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32), "b": {"c": jnp.arange(4.0)}}
  same = {"b": {"c": jnp.arange(4.0)}, "a": params["a"]}
  assert feature_cache.fingerprint(params) == feature_cache.fingerprint(same)
  nudged = {"a": params["a"].at[1, 1].add(1e-6), "b": params["b"]}
  assert feature_cache.fingerprint(nudged) != feature_cache.fingerprint(params)
