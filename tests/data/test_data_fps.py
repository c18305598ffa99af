"""Farthest point sampling: brute-force reference, prefixes, numpy vs JAX."""

import jax
import numpy as np
import pytest

from clip2point_jax.data import fps


def _brute_force(points, k):
  """Greedy FPS from the full distance matrix, one candidate at a time."""
  d = ((points[:, None, :].astype(np.float64) - points[None]) ** 2).sum(-1)
  chosen = [0]
  while len(chosen) < k:
    nearest = d[:, chosen].min(axis=1)
    chosen.append(int(np.argmax(nearest)))
  return np.array(chosen)


def _clouds(b, p, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.normal(size=(b, p, 3)) * rng.uniform(0.2, 2, (b, 1, 3))
          ).astype(np.float32)


def test_matches_brute_force():
  clouds = _clouds(3, 257)
  for cloud in clouds:
    np.testing.assert_array_equal(fps.farthest_point_indices(cloud, 64),
                                  _brute_force(cloud, 64))


def test_batched_equals_one_by_one_and_is_deterministic():
  clouds = _clouds(5, 200, seed=1)
  batched = fps.farthest_point_indices(clouds, 50)
  assert batched.shape == (5, 50) and batched.dtype == np.int32
  for b in range(5):
    np.testing.assert_array_equal(batched[b],
                                  fps.farthest_point_indices(clouds[b], 50))
  np.testing.assert_array_equal(batched,
                                fps.farthest_point_indices(clouds, 50))
  # Indices are distinct and start at point 0.
  assert all(len(set(row)) == 50 for row in batched.tolist())
  assert (batched[:, 0] == 0).all()


def test_prefix_of_full_order_is_fps_of_fewer():
  cloud = _clouds(1, 128, seed=2)[0]
  full = fps.farthest_point_indices(cloud, 128)
  assert sorted(full.tolist()) == list(range(128))  # A permutation.
  for k in (1, 7, 32, 100):
    np.testing.assert_array_equal(full[:k],
                                  fps.farthest_point_indices(cloud, k))


def test_sample_gathers_points():
  clouds = _clouds(2, 100, seed=3)
  idx = fps.farthest_point_indices(clouds, 10)
  sampled = fps.farthest_point_sample(clouds, 10)
  np.testing.assert_array_equal(sampled[1], clouds[1][idx[1]])


def test_jax_agrees_with_numpy():
  clouds = _clouds(4, 300, seed=4)
  got = jax.jit(fps.farthest_point_indices_jax, static_argnums=1)(clouds, 80)
  np.testing.assert_array_equal(np.asarray(got),
                                fps.farthest_point_indices(clouds, 80))
  one = fps.farthest_point_indices_jax(clouds[0], 80)
  np.testing.assert_array_equal(np.asarray(one), np.asarray(got)[0])


def test_too_many_samples():
  with pytest.raises(ValueError, match="cannot take 11"):
    fps.farthest_point_indices(_clouds(1, 10)[0], 11)
