"""Hard depth projector against hand-worked geometry and a brute-force rasteriser."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax import projection as pj
from clip2point_jax.errors import UserError

# Camera axes (rows x, y, z) worked by hand from PyTorch3D's look_at_rotation:
# z = -position / |position|, x = up x z, y = z x x. At the poles up x z is
# ~0, so x = y x z; the sign then follows float32's cos(elev), which is
# -4.4e-8 at 90 degrees and +1.2e-8 at 270 degrees.
s = np.sqrt(0.5)
HAND_AXES = {
    (0, 0): [(-1, 0, 0), (0, 1, 0), (0, 0, -1)],
    (0, 90): [(0, 0, 1), (0, 1, 0), (-1, 0, 0)],
    (0, 180): [(1, 0, 0), (0, 1, 0), (0, 0, 1)],
    (0, 270): [(0, 0, -1), (0, 1, 0), (1, 0, 0)],
    (0, -90): [(0, 0, -1), (0, 1, 0), (1, 0, 0)],
    (90, 0): [(1, 0, 0), (0, 0, 1), (0, -1, 0)],
    (-90, 180): [(-1, 0, 0), (0, 0, 1), (0, 1, 0)],
    (180, 0): [(1, 0, 0), (0, 1, 0), (0, 0, 1)],
    (270, 0): [(-1, 0, 0), (0, 0, 1), (0, 1, 0)],
    (225, -45): [(s, 0, s), (0.5, s, -0.5), (-0.5, s, 0.5)],
    (225, 45): [(s, 0, -s), (-0.5, s, -0.5), (0.5, s, 0.5)],
    (315, -45): [(-s, 0, -s), (-0.5, s, 0.5), (0.5, s, -0.5)],
    (315, 45): [(-s, 0, s), (0.5, s, 0.5), (-0.5, s, -0.5)],
}
ALL_VIEWS = list(pj.VIEWS_ZERO_SHOT) + list(pj.VIEWS_PRETRAIN)


def test_view_lists_are_the_papers():
  assert len(pj.VIEWS_ZERO_SHOT) == 6 and len(pj.VIEWS_PRETRAIN) == 10
  assert pj.VIEWS_PRETRAIN[4] == (225, -45) and pj.VIEWS_PRETRAIN[9] == (0, 90)
  assert set(ALL_VIEWS) <= set(HAND_AXES)


@pytest.mark.parametrize("view", sorted(HAND_AXES))
def test_camera_axes_match_hand_worked(view):
  axes = np.asarray(pj.camera_axes(*view))
  np.testing.assert_allclose(axes, np.array(HAND_AXES[view], float), atol=2e-4)


def test_camera_axes_are_rotations_looking_at_origin():
  rng = np.random.default_rng(0)
  elev, azim = rng.uniform(-180, 360, (2, 64)).astype(np.float32)
  axes = np.asarray(pj.camera_axes(elev, azim), np.float64)
  np.testing.assert_allclose(axes @ axes.transpose(0, 2, 1), np.broadcast_to(np.eye(3), axes.shape), atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(axes), 1.0, atol=1e-5)
  e, a = np.radians(elev), np.radians(azim)
  position = np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], -1)
  np.testing.assert_allclose(axes[:, 2], -position, atol=1e-5)


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


def test_distance_scales_cloud_and_shifts_depth():
  plane = _plane((-0.5, 0.5), (-0.5, 0.5), 0.2).astype(np.float32)[None]
  ndc = np.asarray(pj.project_points(plane, np.array([(0, 0)], np.float32), 2.0))
  np.testing.assert_allclose(ndc[0, 0, :, 2], 2.0 - 0.1, atol=1e-6)
  np.testing.assert_allclose(ndc[0, 0, :, 0], -plane[0, :, 0] / 2, atol=1e-6)


def test_per_cloud_view_distance_matches_scalar_calls():
  rng = np.random.default_rng(1)
  clouds = rng.normal(size=(2, 300, 3)).astype(np.float32)
  clouds = np.asarray(pj.normalize_points(clouds))
  views = pj.VIEWS_ZERO_SHOT[:3]
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
  empty = np.asarray(pj.render_depth(np.zeros((2, 0, 3), np.float32), pj.VIEWS_ZERO_SHOT, image_size=32))
  assert empty.shape == (2, 6, 32, 32) and (empty == 1.0).all()
  cloud = np.random.default_rng(3).normal(size=(1, 50, 3)).astype(np.float32)
  masked = np.asarray(pj.render_depth(cloud, pj.VIEWS_ZERO_SHOT, mask=np.zeros((1, 50), bool)))
  assert (masked == 1.0).all()


def test_coincident_points_normalise_without_nan():
  cloud = np.tile(np.array([[0.3, -2.0, 5.0]], np.float32), (1, 64, 1))
  normed = np.asarray(pj.normalize_points(cloud))
  np.testing.assert_array_equal(normed, 0.0)
  depth = np.asarray(pj.render_depth(normed, pj.VIEWS_ZERO_SHOT))
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
      np.asarray(pj.render_depth(padded, pj.VIEWS_PRETRAIN, mask=mask)),
      np.asarray(pj.render_depth(cloud, pj.VIEWS_PRETRAIN)))


def test_non_finite_points_are_skipped_in_jit_and_rejected_by_check():
  rng = np.random.default_rng(6)
  cloud = np.asarray(pj.normalize_points(rng.normal(size=(1, 100, 3)).astype(np.float32)))
  bad = cloud.copy()
  bad[0, 7] = np.nan
  bad[0, 9, 2] = np.inf
  keep = np.ones((1, 100), bool)
  keep[0, [7, 9]] = False
  np.testing.assert_array_equal(
      np.asarray(jax.jit(pj.render_depth, static_argnames=("image_size",))(bad, np.asarray(pj.VIEWS_ZERO_SHOT), image_size=64)),
      np.asarray(pj.render_depth(cloud, pj.VIEWS_ZERO_SHOT, image_size=64, mask=keep)))
  with pytest.raises(UserError, match=r"chair_0001\.npy.*point 7"):
    pj.check_points(bad[0], "chair_0001.npy")
  with pytest.raises(UserError, match="empty"):
    pj.check_points(np.zeros((0, 3)), "x.npy")
  with pytest.raises(UserError, match=r"\[\.\.\., N, 3\]"):
    pj.check_points(np.zeros((10, 2)), "x.npy")


def test_batched_render_equals_per_cloud_and_is_translation_scale_invariant():
  rng = np.random.default_rng(7)
  clouds = rng.normal(size=(3, 256, 3)).astype(np.float32)
  together = np.asarray(pj.render_depth(pj.normalize_points(clouds), pj.VIEWS_ZERO_SHOT))
  for b in range(3):
    alone = np.asarray(pj.render_depth(pj.normalize_points(clouds[b:b + 1]), pj.VIEWS_ZERO_SHOT))
    np.testing.assert_array_equal(together[b], alone[0])
  moved = np.asarray(pj.render_depth(pj.normalize_points(clouds * 3.5 + np.float32([1, -2, 4])), pj.VIEWS_ZERO_SHOT))
  # Rounding may flip a pixel on a disc's rim; values agree elsewhere.
  assert np.mean(np.abs(moved - together) < 1e-4) > 0.999


def test_align_modelnet_axes():
  np.testing.assert_allclose(np.asarray(pj.align_modelnet(jnp.array([[1.0, 2.0, 3.0]]))), [[-2.0, 3.0, -1.0]])


def test_views_array_rejects_bad_views():
  with pytest.raises(UserError, match="elevation, azimuth"):
    pj.views_array([(0, 0, 1)])
  assert pj.views_array(pj.VIEWS_ZERO_SHOT).shape == (6, 2)
