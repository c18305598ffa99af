"""Tests of the soft (differentiable) depth renderer."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from renderers import cameras
from renderers import points as projector
from clip2point_jax.data import primitives
from renderers.errors import InputError

VIEWS = cameras.views_array(cameras.VIEWS_ZERO_SHOT)


def _render(**kwargs):
  # Jitted: eager mode compiles every op on its own, which is far slower here.
  return jax.jit(functools.partial(projector.render_depth, **kwargs))


def _clouds(count=2, num_points=512):
  points, _ = primitives.generate(1, num_points, seed=0)
  return projector.normalize_points(jnp.asarray(points[:count]))


def _random_cloud(num_points, dtype, seed=0):
  # Well inside the image and in front of the camera, none on a pixel centre.
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(1, num_points, 3))
  return jnp.asarray(0.6 * points / np.abs(points).max(), dtype)


def test_approaches_hard_mode_as_sigma_and_gamma_shrink():
  points = _clouds()
  kwargs = dict(image_size=48, radius=0.05)
  hard = _render(**kwargs)(points, VIEWS)
  errors = []
  for scale in (0.02, 0.005, 0.001):
    soft = _render(mode="soft", sigma=scale, gamma=scale, **kwargs)(points, VIEWS)
    errors.append(float(jnp.mean(jnp.abs(soft - hard))))
  assert errors[0] > errors[1] > errors[2], errors
  assert errors[2] < 0.005, errors


def test_shape_dtype_range_and_background():
  points = _clouds()
  render = _render(image_size=32, mode="soft")
  image = render(points, VIEWS)
  assert image.shape == (2, len(VIEWS), 32, 32) and image.dtype == jnp.float32
  assert bool(jnp.all((image >= 0) & (image <= 1)))
  assert float(image.min()) < 0.5  # There is a foreground.
  empty = render(points, VIEWS, mask=jnp.zeros(points.shape[:2], bool))
  np.testing.assert_array_equal(empty, 1.0)


def test_masked_and_non_finite_points_are_skipped():
  points = _clouds(count=1, num_points=256)
  padded = jnp.concatenate([points, jnp.full((1, 8, 3), jnp.nan), jnp.zeros((1, 8, 3))], axis=1)
  mask = jnp.arange(padded.shape[1])[None] < 256 + 8  # NaNs unmasked, zeros masked.
  render = _render(image_size=32, radius=0.05, mode="soft", sigma=0.02, gamma=0.02)
  expected = render(points, VIEWS)
  np.testing.assert_allclose(render(padded, VIEWS, mask=mask), expected, atol=1e-5)
  grad = jax.jit(jax.grad(lambda p: render(p, VIEWS, mask=mask).sum()))(padded)
  assert bool(jnp.isfinite(grad[:, :256]).all())


def test_vmap_over_clouds_agrees_with_the_batch():
  points = _clouds()
  render = lambda p: projector.render_depth(p, VIEWS, image_size=32, mode="soft")
  batched = jax.jit(render)(points)
  per_cloud = jax.jit(jax.vmap(lambda p: render(p[None])[0]))(points)
  np.testing.assert_allclose(per_cloud, batched, atol=1e-5)


def test_gradients_reach_every_coordinate_and_are_finite():
  points = _random_cloud(32, jnp.float32)
  weights = jax.random.uniform(jax.random.key(0), (1, 2, 16, 16))

  def loss(p, views, distance):
    image = projector.render_depth(p, views, image_size=16, radius=0.15, distance=distance,
                                    mode="soft", sigma=0.08, gamma=0.05)
    return jnp.sum(image * weights)

  views = jnp.asarray([[15.0, 30.0], [-20.0, 140.0]])
  grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(points, views, jnp.float32(1.1))
  for grad in grads:
    assert bool(jnp.all(jnp.isfinite(grad)))
  assert bool(jnp.all(jnp.abs(grads[0]).sum(axis=(0, 1)) > 1e-3)), grads[0]  # x, y and z.
  assert bool(jnp.all(jnp.abs(grads[1]) > 0)) and float(jnp.abs(grads[2])) > 0


def test_gradients_match_finite_differences_in_float64():
  with jax.enable_x64(True):
    points = _random_cloud(6, jnp.float64)
    views = jnp.asarray([[10.0, 20.0], [-25.0, 130.0]], jnp.float64)
    distance = jnp.asarray([1.2, 0.9], jnp.float64)

    @jax.jit
    def render(p, v, d):
      return projector.render_depth(p, v, image_size=16, radius=0.15, distance=d,
                                     mode="soft", sigma=0.1, gamma=0.1)

    assert render(points, views, distance).dtype == jnp.float64
    check_grads(render, (points, views, distance), order=1, modes=("fwd", "rev"),
                eps=1e-6, atol=1e-5, rtol=1e-5)
  assert jnp.ones(1).dtype == jnp.float32  # x64 is off again.


def test_soft_z_buffer_prefers_the_nearer_point():
  # Two points on the same pixel: the softmin depth sits near the nearer one
  # and moves to it as gamma shrinks.
  ndc = jnp.asarray([[[[0.0, 0.0, 1.0], [0.0, 0.0, 1.5]]]])
  mask = jnp.ones((1, 2), bool)
  rasterize = jax.jit(functools.partial(projector.rasterize_soft, image_size=8,
                                        radius=0.3, sigma=0.1))
  centre = []
  for gamma in (0.5, 0.05):
    depth, alpha = rasterize(ndc, mask, gamma=gamma)
    centre.append(float(depth[0, 0, 4, 4]))
    assert float(alpha[0, 0, 4, 4]) == 1.0 and float(alpha[0, 0, 0, 0]) == 0.0
  assert 1.0 < centre[1] < centre[0] < 1.25 and centre[1] < 1.001, centre


def test_bad_arguments_raise_user_errors():
  points = _clouds(count=1, num_points=16)
  with pytest.raises(InputError, match="mode"):
    projector.render_depth(points, VIEWS, mode="fuzzy")
  with pytest.raises(InputError, match="sigma"):
    projector.render_depth(points, VIEWS, mode="soft", sigma=0.0)
  with pytest.raises(InputError, match="gamma"):
    projector.render_depth(points, VIEWS, mode="soft", gamma=-1.0)
