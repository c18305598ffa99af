"""The built-in procedural shapes: deterministic, labelled, and really different."""

import numpy as np

from clip2point_jax.data import primitives


def test_generate_is_deterministic_and_class_major():
  a, labels = primitives.generate(num_per_class=2, num_points=300, seed=7)
  b, _ = primitives.generate(num_per_class=2, num_points=300, seed=7)
  c, _ = primitives.generate(num_per_class=2, num_points=300, seed=8)
  n = len(primitives.CLASS_NAMES)
  assert a.shape == (2 * n, 300, 3) and a.dtype == np.float32
  np.testing.assert_array_equal(labels, np.repeat(np.arange(n), 2))
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)
  assert np.isfinite(a).all()
  # A shape does not change when more shapes are asked for.
  more, _ = primitives.generate(num_per_class=3, num_points=300, seed=7)
  np.testing.assert_array_equal(more[0], a[0])


def test_sphere_points_lie_on_a_sphere_like_surface():
  rng = np.random.default_rng(0)
  sphere = primitives.make_cloud("sphere", 2000, rng, noise=0.0)
  box = primitives.make_cloud("box", 2000, rng, noise=0.0)
  radius = lambda p: np.linalg.norm(p - p.mean(0), axis=1)
  # Scaled by at most +-15% per axis: radii stay within that band.
  r = radius(sphere)
  assert r.max() / r.min() < 1.45
  assert radius(box).std() / radius(box).mean() > r.std() / r.mean()
