"""Hard depth projector against hand-worked geometry and a brute-force rasteriser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from renderers import cameras
from renderers import points as pj
from tests.renderers.hand_geometry import HAND_AXES

ALL_VIEWS = list(cameras.VIEWS_ZERO_SHOT) + list(cameras.VIEWS_PRETRAIN)


def _hand_pixels(point, view, size=pj.IMAGE_SIZE, radius=pj.POINT_RADIUS):
  """Pixels covered by one point, from the hand axes, in float64."""
  x_axis, y_axis, _ = np.array(HAND_AXES[view], float)
  ndc_x, ndc_y = point @ x_axis, point @ y_axis
  centres = 1 - (2 * np.arange(size) + 1) / size
  d2 = (centres[:, None] - ndc_y) ** 2 + (centres[None, :] - ndc_x) ** 2
  return d2 < radius**2, np.abs(d2 - radius**2).min()


@pytest.mark.parametrize("view", ALL_VIEWS)
def test_single_point_lands_on_hand_worked_pixels(view):
  rng = np.random.default_rng(abs(hash(view)) % 2**32)
  while True:  # Keep clear of the radius boundary, where float32 may differ.
    point = rng.uniform(-0.8, 0.8, 3)
    expected, margin = _hand_pixels(point, view)
    if margin > 1e-5:
      break
  depth = np.asarray(pj.render_depth(point[None, None].astype(np.float32), [view]))[0, 0]
  np.testing.assert_array_equal(depth < 1.0, expected)
  assert 12 <= expected.sum() <= 21  # A disc of radius 2.24 pixels.
  # One point: z_min = min(z, 1) and z_max = z give its value.
  z = point @ np.array(HAND_AXES[view][2]) + 1.0
  np.testing.assert_allclose(depth[expected], (z - min(z, 1.0)) / z * 200 / 255, atol=1e-6)


def _plane(x_range, y_range, world_z, step=0.004):
  xs = np.arange(x_range[0], x_range[1] + 1e-9, step)
  ys = np.arange(y_range[0], y_range[1] + 1e-9, step)
  gx, gy = np.meshgrid(xs, ys)
  return np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, world_z)], -1)


def _pixel_at(ndc_x, ndc_y, size=pj.IMAGE_SIZE):
  return int(round(((1 - ndc_y) * size - 1) / 2)), int(round(((1 - ndc_x) * size - 1) / 2))


def test_planes_at_known_depths_and_occlusion():
  # Front view (0, 0): the camera sits on +z, so depth = 1 - world z and NDC x = -x.
  near = _plane((-0.5, 0.5), (-0.5, 0.5), 0.2)  # depth 0.8
  far = _plane((-0.8, 0.8), (-0.8, 0.8), -0.3)  # depth 1.3, half hidden
  cloud = np.concatenate([far, near]).astype(np.float32)[None]
  depth = np.asarray(pj.render_depth(cloud, [(0, 0)]))[0, 0]
  z_min, z_max = 0.8, 1.3
  assert depth[_pixel_at(0.0, 0.0)] == pytest.approx((0.8 - z_min) / z_max * 200 / 255, abs=1e-6)
  assert depth[_pixel_at(-0.3, 0.2)] == pytest.approx(0.0, abs=1e-6)
  assert depth[_pixel_at(0.7, -0.65)] == pytest.approx((1.3 - z_min) / z_max * 200 / 255, abs=1e-6)
  assert depth[_pixel_at(0.9, 0.9)] == 1.0


def test_per_cloud_view_distance_matches_scalar_calls():
  rng = np.random.default_rng(1)
  clouds = rng.normal(size=(2, 300, 3)).astype(np.float32)
  clouds = np.asarray(pj.normalize_points(clouds))
  views = cameras.VIEWS_ZERO_SHOT[:3]
  dist = rng.uniform(0.9, 1.1, (2, 3)).astype(np.float32)
  together = np.asarray(pj.render_depth(clouds, views, distance=dist))
  for b in range(2):
    for v in range(3):
      alone = np.asarray(pj.render_depth(clouds[b:b + 1], [views[v]], distance=float(dist[b, v])))
      np.testing.assert_array_equal(together[b, v], alone[0, 0])


def _brute_force_zbuf(ndc, size, radius):
  """PyTorch3D's CPU points kernel as loops over pixels, vectorised over points."""
  ndc = ndc.astype(np.float32)
  zbuf = np.full((size, size), np.inf, np.float32)
  r2 = np.float32(radius) * np.float32(radius)
  for yi in range(size):
    yf = np.float32(-1.0) + (np.float32(2) * np.float32(size - 1 - yi) + 1) / np.float32(size)
    for xi in range(size):
      xf = np.float32(-1.0) + (np.float32(2) * np.float32(size - 1 - xi) + 1) / np.float32(size)
      dx, dy = xf - ndc[:, 0], yf - ndc[:, 1]
      hit = (dx * dx + dy * dy < r2) & (ndc[:, 2] >= 0)
      if hit.any():
        zbuf[yi, xi] = ndc[hit, 2].min()
  return zbuf


@pytest.mark.parametrize("size,radius", [(32, 0.1), (24, 0.17)])
def test_zbuffer_matches_brute_force_rasteriser(size, radius):
  rng = np.random.default_rng(size)
  ndc = np.concatenate([rng.uniform(-1.2, 1.2, (400, 2)), rng.uniform(-0.2, 2.0, (400, 1))], -1)
  ndc = ndc.astype(np.float32)
  got = np.asarray(pj.rasterize_zbuffer(ndc[None, None], jnp.ones((1, 400), bool), image_size=size, radius=radius))
  np.testing.assert_array_equal(got[0, 0], _brute_force_zbuf(ndc, size, radius))


def _clip2point_norm(zbuf):
  """CLIP2Point's Renderer.norm in numpy: zbuf is -1 where empty."""
  img = zbuf.copy()
  mask = img > 0
  batch_max = img.reshape(len(img), -1).max(1)[:, None, None]
  detached = img.copy()
  detached[~mask] = 1.0
  batch_min = detached.reshape(len(img), -1).min(1)[:, None, None]
  out = (img - batch_min) / batch_max * 200.0 / 255.0
  out[~mask] = 1.0
  return out


def test_normalisation_matches_clip2point():
  rng = np.random.default_rng(2)
  zbuf = rng.uniform(0.3, 1.9, (3, 20, 20)).astype(np.float32)
  zbuf[rng.random(zbuf.shape) < 0.6] = -1.0
  zbuf[2] = rng.uniform(1.1, 1.9, (20, 20))  # No background: z_min is the foreground's.
  ours = np.asarray(pj.normalize_depth(np.where(zbuf > 0, zbuf, np.inf)))
  np.testing.assert_allclose(ours, _clip2point_norm(zbuf), atol=1e-6)


def test_empty_and_fully_masked_clouds_render_white():
  empty = np.asarray(pj.render_depth(np.zeros((2, 0, 3), np.float32), cameras.VIEWS_ZERO_SHOT, image_size=32))
  assert empty.shape == (2, 6, 32, 32) and (empty == 1.0).all()
  cloud = np.random.default_rng(3).normal(size=(1, 50, 3)).astype(np.float32)
  masked = np.asarray(pj.render_depth(cloud, cameras.VIEWS_ZERO_SHOT, mask=np.zeros((1, 50), bool)))
  assert (masked == 1.0).all()


def test_coincident_points_normalise_without_nan():
  cloud = np.tile(np.array([[0.3, -2.0, 5.0]], np.float32), (1, 64, 1))
  normed = np.asarray(pj.normalize_points(cloud))
  np.testing.assert_array_equal(normed, 0.0)
  depth = np.asarray(pj.render_depth(normed, cameras.VIEWS_ZERO_SHOT))
  assert np.isfinite(depth).all()
  assert ((depth < 1).sum(axis=(2, 3)) > 10).all()  # One disc in each view.


def test_normalize_points_unit_ball_and_mask():
  rng = np.random.default_rng(4)
  cloud = rng.normal(3.0, 2.0, (2, 100, 3)).astype(np.float32)
  normed = np.asarray(pj.normalize_points(cloud))
  np.testing.assert_allclose(normed.mean(1), 0.0, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(normed, axis=-1).max(1), 1.0, atol=1e-5)
  padded = np.concatenate([cloud, rng.normal(50, 1, (2, 20, 3)).astype(np.float32)], 1)
  mask = np.arange(120) < 100
  normed_padded = np.asarray(pj.normalize_points(padded, np.broadcast_to(mask, (2, 120))))
  np.testing.assert_allclose(normed_padded[:, :100], normed, atol=1e-5)


def test_padding_with_mask_matches_unpadded_render():
  rng = np.random.default_rng(5)
  cloud = np.asarray(pj.normalize_points(rng.normal(size=(1, 200, 3)).astype(np.float32)))
  junk = rng.uniform(-0.5, 0.5, (1, 56, 3)).astype(np.float32)
  padded = np.concatenate([cloud, junk], 1)
  mask = (np.arange(256) < 200)[None]
  np.testing.assert_array_equal(
      np.asarray(pj.render_depth(padded, cameras.VIEWS_PRETRAIN, mask=mask)),
      np.asarray(pj.render_depth(cloud, cameras.VIEWS_PRETRAIN)))


def test_non_finite_points_are_skipped_in_jit():
  rng = np.random.default_rng(6)
  cloud = np.asarray(pj.normalize_points(rng.normal(size=(1, 100, 3)).astype(np.float32)))
  bad = cloud.copy()
  bad[0, 7] = np.nan
  bad[0, 9, 2] = np.inf
  keep = np.ones((1, 100), bool)
  keep[0, [7, 9]] = False
  np.testing.assert_array_equal(
      np.asarray(jax.jit(pj.render_depth, static_argnames=("image_size",))(bad, np.asarray(cameras.VIEWS_ZERO_SHOT), image_size=64)),
      np.asarray(pj.render_depth(cloud, cameras.VIEWS_ZERO_SHOT, image_size=64, mask=keep)))


def test_batched_render_equals_per_cloud_and_is_translation_scale_invariant():
  rng = np.random.default_rng(7)
  clouds = rng.normal(size=(3, 256, 3)).astype(np.float32)
  together = np.asarray(pj.render_depth(pj.normalize_points(clouds), cameras.VIEWS_ZERO_SHOT))
  for b in range(3):
    alone = np.asarray(pj.render_depth(pj.normalize_points(clouds[b:b + 1]), cameras.VIEWS_ZERO_SHOT))
    np.testing.assert_array_equal(together[b], alone[0])
  moved = np.asarray(pj.render_depth(pj.normalize_points(clouds * 3.5 + np.float32([1, -2, 4])), cameras.VIEWS_ZERO_SHOT))
  # Rounding may flip a pixel on a disc's rim; values agree elsewhere.
  assert np.mean(np.abs(moved - together) < 1e-4) > 0.999
