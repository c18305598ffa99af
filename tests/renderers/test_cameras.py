"""Cameras against hand-worked geometry and PyTorch3D's formulas."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from renderers import cameras
from renderers.errors import InputError
from tests.renderers.hand_geometry import HAND_AXES

ALL_VIEWS = list(cameras.VIEWS_ZERO_SHOT) + list(cameras.VIEWS_PRETRAIN)


def test_view_lists_are_the_papers():
  assert len(cameras.VIEWS_ZERO_SHOT) == 6 and len(cameras.VIEWS_PRETRAIN) == 10
  assert cameras.VIEWS_PRETRAIN[4] == (225, -45) and cameras.VIEWS_PRETRAIN[9] == (0, 90)
  assert set(ALL_VIEWS) <= set(HAND_AXES)


@pytest.mark.parametrize("view", sorted(HAND_AXES))
def test_camera_axes_match_hand_worked(view):
  axes = np.asarray(cameras.camera_axes(*view))
  np.testing.assert_allclose(axes, np.array(HAND_AXES[view], float), atol=2e-4)


def test_camera_axes_are_rotations_looking_at_origin():
  rng = np.random.default_rng(0)
  elev, azim = rng.uniform(-180, 360, (2, 64)).astype(np.float32)
  axes = np.asarray(cameras.camera_axes(elev, azim), np.float64)
  np.testing.assert_allclose(axes @ axes.transpose(0, 2, 1), np.broadcast_to(np.eye(3), axes.shape), atol=1e-5)
  np.testing.assert_allclose(np.linalg.det(axes), 1.0, atol=1e-5)
  e, a = np.radians(elev), np.radians(azim)
  position = np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], -1)
  np.testing.assert_allclose(axes[:, 2], -position, atol=1e-5)


def test_distance_scales_cloud_and_shifts_depth():
  grid = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 11), np.linspace(-0.5, 0.5, 11)), -1).reshape(-1, 2)
  plane = np.concatenate([grid, np.full((len(grid), 1), 0.2)], -1).astype(np.float32)[None]
  ndc = np.asarray(cameras.project(plane, np.array([(0, 0)], np.float32), 2.0))
  np.testing.assert_allclose(ndc[0, 0, :, 2], 2.0 - 0.1, atol=1e-6)
  np.testing.assert_allclose(ndc[0, 0, :, 0], -plane[0, :, 0] / 2, atol=1e-6)


def test_views_array_rejects_bad_views():
  with pytest.raises(InputError, match="elevation, azimuth"):
    cameras.views_array([(0, 0, 1)])
  assert cameras.views_array(cameras.VIEWS_ZERO_SHOT).shape == (6, 2)


def test_look_at_view_transform_is_pytorch3d_row_vector_convention():
  rng = np.random.default_rng(3)
  elev, azim = rng.uniform(-90, 90, 5), rng.uniform(0, 360, 5)
  dist = rng.uniform(0.5, 3.0, 5)
  rotation, translation = (np.asarray(a, np.float64) for a in
                           cameras.look_at_view_transform(elev, azim, dist))
  e, a = np.radians(elev), np.radians(azim)
  eye = dist[:, None] * np.stack([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)], -1)
  # The camera centre maps to the view origin; the origin lies straight ahead at z = distance.
  np.testing.assert_allclose(np.einsum("bi,bij->bj", eye, rotation) + translation, 0.0, atol=1e-5)
  np.testing.assert_allclose(translation, np.stack([0 * dist, 0 * dist, dist], -1), atol=1e-5)
  # Columns of R are the camera axes.
  np.testing.assert_allclose(np.swapaxes(rotation, 1, 2), cameras.camera_axes(elev, azim), atol=1e-6)


def test_perspective_projection_by_hand():
  # Front view (0, 0) at distance 2: the camera is at z = 2 looking down -z,
  # view x = -world x, y = world y, depth = 2 - world z.
  camera = cameras.PerspectiveCamera(fov=60.0)
  world = np.array([[[0.3, -0.2, 0.5], [-0.4, 0.1, -1.0], [0.0, 0.0, 3.0]]], np.float32)
  ndc = np.asarray(cameras.project(world, np.array([(0, 0)], np.float32), 2.0, camera))[0, 0]
  focal = 1.0 / math.tan(math.radians(30.0))
  depth = 2.0 - world[0, :2, 2]
  np.testing.assert_allclose(ndc[:2, 0], -world[0, :2, 0] * focal / depth, rtol=1e-5)
  np.testing.assert_allclose(ndc[:2, 1], world[0, :2, 1] * focal / depth, rtol=1e-5)
  np.testing.assert_allclose(ndc[:2, 2], depth, rtol=1e-6)
  # Behind the camera: never on screen.
  assert not np.isfinite(ndc[2, :2]).any() and ndc[2, 2] < 0
  # NDC depth of FoVPerspectiveCameras: 0 at znear, 1 at zfar.
  np.testing.assert_allclose(camera.ndc_z(jnp.array([camera.znear, camera.zfar])), [0.0, 1.0], atol=1e-6)
  with pytest.raises(InputError, match="fov"):
    cameras.PerspectiveCamera(fov=180.0)


def test_pixel_ndc_centres():
  np.testing.assert_allclose(cameras.pixel_ndc(np.arange(4), 4), [0.75, 0.25, -0.25, -0.75])
