"""PointCLIP V2's realistic projection: hand-worked clouds, its invariances, batching, and a NumPy transcription."""

import math
import re

import jax
import numpy as np
import pytest

from renderers import pointclip
from renderers import pointclip_v2 as v2
from renderers import scatter

E = math.exp(-1 / 18)  # the Gaussian's weight one cell off centre (sigma 3)
SPILL = E / (1 + 2 * E)  # the blur's weight on the row (or column) next to the centre: 0.327105


def _maps(points, mask=None):
  points = np.asarray(points, np.float32)
  return np.asarray(v2.depth_maps(points[None] if points.ndim == 2 else points, mask))


def _random_clouds(seed, b=2, n=300):
  return np.random.default_rng(seed).normal(size=(b, n, 3)).astype(np.float32)


def _from_camera(view, camera_points):
  """World points whose view-`view` coordinates (before the re-normalisation) are `camera_points`."""
  rot, tilt = v2.views()
  m = tilt[view].astype(np.float64) @ rot[view].astype(np.float64)
  return (np.linalg.inv(m) @ np.asarray(camera_points, np.float64).T).T.astype(np.float32)


CUBE = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]


def test_views_and_kernel_are_the_hand_worked_ones():
  rot, tilt = v2.views()
  assert rot.shape == tilt.shape == (10, 3, 3)
  # The last six views are PointCLIP's; the first four turn 45 degrees further about x.
  np.testing.assert_array_equal(rot[4:], pointclip.views())
  c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
  np.testing.assert_allclose(rot[0], np.array([[1, 0, 0], [0, c, -s], [0, s, c]]) @ [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
                             atol=1e-6)
  for v, degrees in enumerate([20] * 8 + [12] * 2):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    np.testing.assert_allclose(tilt[v], [[c, 0, s], [0, 1, 0], [-s, 0, c]], atol=1e-6)
  line = np.array([E, 1, E])
  np.testing.assert_allclose(v2.gaussian_kernel(), np.outer(line, line) / (1 + 2 * E) ** 2, rtol=1e-6)
  assert v2.MAP_SIZE == 110


def test_single_point_is_a_dark_7x7_block_at_the_centre():
  # All points coincide: the official code divides by a zero extent; here the cloud sits at the
  # centre: x = y = ceil(0.5 * 112) = 56, s = (0.5 + 0.2) / 1.2 * 6 = 3.5. The pool puts grid row 56
  # into rows 52..58 (padding 2, window 7); the blur spills one more.
  maps = _maps([[0.3, -0.7, 2.0]])[0]
  assert maps.shape == (10, 110, 110)
  for view in maps:
    np.testing.assert_allclose(view[53:58, 53:58], 0.0, atol=1e-6)
    assert view[55, 51] == pytest.approx(1 - SPILL, abs=1e-6)  # 0.6729
    assert view[51, 51] == pytest.approx(1 - SPILL ** 2, abs=1e-6)  # 0.8930
    assert view[50, 55] == view[55, 60] == 1.0
    assert np.count_nonzero(view < 1) == 9 * 9


def test_points_on_one_pixel_keep_the_farthest_and_corners_stay_inside():
  # In view 0's camera frame: the cube's corners fix the box to [-1, 1]^3, so the other points
  # keep their coordinates. x, y are shrunk by 0.8; s = ((z + 1) / 2 + 0.2) / 1.2 * 6.
  near, far = (0.3, -0.2, -0.5), (0.3, -0.2, 0.5)  # x = ceil(69.44) = 70, y = ceil(47.04) = 48
  a, b = (-0.4, 0.5, 0.1), (-0.4, 0.5, 0.15)  # x = ceil(38.08) = 39, y = ceil(78.4) = 79
  for view in (0, 9):
    maps = _maps(_from_camera(view, CUBE + [near, far, a, b]))[0, view]
    # Rows follow x, columns y; a point at grid (r, c) darkens rows r-4..r+2, columns c-4..c+2.
    # Different slices (s 2.25 and 4.75): the maximum over slices keeps the far one.
    assert maps[69, 47] == pytest.approx(1 - 4.75 / 6, abs=1e-5)  # not 1 - 2.25 / 6
    # One slice (s 3.75 and 3.875): the grid cell keeps the larger.
    assert maps[38, 78] == pytest.approx(1 - 3.875 / 6, abs=1e-5)
    # Corners at x, y = ceil(11.2) = 12 and ceil(100.8) = 101, nearest (s 1) and farthest (s 6)
    # on one pixel: 0, the farthest; clipping to [1, 110] never happens.
    for r in (11, 100):
      for c in (11, 100):
        assert maps[r, c] == pytest.approx(0.0, abs=1e-5)
    assert maps[7, 11] == pytest.approx(1 - SPILL, abs=1e-5)
    assert (maps[:7] == 1).all() and (maps[105:] == 1).all()


def test_invariant_to_scale_and_shift_up_to_rounding():
  clouds = _random_clouds(0)
  base = _maps(clouds)
  np.testing.assert_allclose(_maps(clouds * 4.0), base, atol=1e-5)
  np.testing.assert_allclose(_maps(clouds * 3.7 + np.float32([0.3, -2.0, 5.0])), base, atol=1e-5)
  # Far behind any camera: there is none, every point is drawn. Float32 at 50 moves a few
  # points across a cell boundary, so a few pixels differ.
  moved = _maps(clouds + np.float32([0.0, 0.0, -50.0]))
  assert np.mean(np.abs(moved - base) > 1e-5) < 1e-3
  # An un-normalised cloud draws as its normalised self.
  unit = clouds / np.linalg.norm(clouds - clouds.mean(1, keepdims=True), axis=-1).max(-1)[:, None, None]
  np.testing.assert_allclose(_maps(unit), base, atol=1e-5)


def test_batch_items_are_independent_and_padding_is_skipped():
  clouds = _random_clouds(1, b=3)
  together = _maps(clouds)
  for i in range(3):
    np.testing.assert_array_equal(together[i], _maps(clouds[i])[0])
  changed = clouds.copy()
  changed[1, :10] += 5.0
  np.testing.assert_array_equal(_maps(changed)[[0, 2]], together[[0, 2]])
  # Padding far away would change every bounding box; masked, it changes nothing.
  junk = np.full((3, 50, 3), 40.0, np.float32)
  mask = np.concatenate([np.ones((3, 300), bool), np.zeros((3, 50), bool)], 1)
  np.testing.assert_array_equal(_maps(np.concatenate([clouds, junk], 1), mask), together)
  # All masked: blank (1.0) maps, not NaN.
  assert (_maps(clouds, np.zeros((3, 300), bool)) == 1.0).all()


def test_a_cloud_draws_the_same_in_a_large_batch_as_alone():
  # A matmul's summation order changes with the batch's size: at 64 clouds
  # it moved a few clouds' points across cell boundaries (a rotation by einsum).
  clouds = _random_clouds(5, b=64, n=512)
  together = _maps(clouds)
  alone = np.stack([_maps(cloud)[0] for cloud in clouds])
  np.testing.assert_array_equal(alone, together)


def test_jit_matches_eager():
  clouds = _random_clouds(2, n=64)
  np.testing.assert_array_equal(np.asarray(jax.jit(v2.depth_maps)(clouds)), _maps(clouds))


def _official_transcription(clouds):
  """Realistic_Projection.get_img written out point by point and offset by offset in float32 NumPy."""
  f = np.float32
  rot, tilt = v2.views()
  kernel = v2.gaussian_kernel()
  out = np.zeros((len(clouds), 10, 110, 110), np.float32)
  for i, cloud in enumerate(clouds):
    for v in range(10):
      q = (cloud @ rot[v].T) @ tilt[v].T - np.float32([-0.5, -0.5, -1.5])
      top, bottom = q.max(0), q.min(0)
      q = (q - (top + bottom) / f(2)) / (top - bottom).max() * f(2)
      grid = np.zeros((8, 112, 112), np.float32)  # [slice, row = x, column = y]
      for x, y, z in q:
        cx = min(max(math.ceil(f(f(x * f(0.8)) + f(1)) / f(2) * f(112)), 1), 110)
        cy = min(max(math.ceil(f(f(y * f(0.8)) + f(1)) / f(2) * f(112)), 1), 110)
        s = f(f(f(f(z + f(1)) / f(2)) + f(0.2)) * f(f(1) / f(1.2))) * f(6)
        grid[math.ceil(s), cx, cy] = max(grid[math.ceil(s), cx, cy], min(max(s, f(1)), f(6)))
      padded = np.pad(grid, ((0, 0), (2, 2), (2, 2)), constant_values=-np.inf)
      pooled = np.full((8, 110, 110), -np.inf, np.float32)
      for di in range(7):
        for dj in range(7):
          pooled = np.maximum(pooled, padded[:, di:di + 110, dj:dj + 110])
      padded = np.pad(pooled, ((0, 0), (1, 1), (1, 1)))
      blurred = sum(kernel[di, dj] * padded[:, di:di + 110, dj:dj + 110] for di in range(3) for dj in range(3))
      image = blurred.max(0)
      out[i, v] = 1 - image / image.max()
  return out


def test_matches_an_independent_transcription_of_the_official_algorithm():
  clouds = _random_clouds(3, n=200)
  clouds[1] = clouds[1] * 7 + 3
  np.testing.assert_allclose(_maps(clouds), _official_transcription(clouds), atol=2e-6)


def test_maps_are_the_official_grid_pooled_blurred_and_flattened():
  """The shipped path (rows pooled by the scatter, bordered grid) against `grid_to_image` of the
  official [V, 8, 112, 112] grid, with padding, edge cells and a flat cloud."""
  clouds = _random_clouds(8, b=4, n=400)
  clouds[1, :, 2] = 0.0  # flat: every point in one depth slice of the top and bottom views
  clouds[2] = np.clip(clouds[2], -1.0, 1.0)  # many points on the box's faces: the grid's edge cells
  mask = np.random.default_rng(9).random(clouds.shape[:2]) > 0.2
  flat, value = v2._grid_coordinates(clouds, mask)
  cells = v2.NUM_VIEWS * v2.DEPTH_SLICES * v2.RESOLUTION ** 2
  grid = scatter.per_cloud("max", v2.BACKGROUND, cells, flat.reshape(4, -1), value.reshape(4, -1))
  grid = grid.reshape(4, v2.NUM_VIEWS, v2.DEPTH_SLICES, v2.RESOLUTION, v2.RESOLUTION)
  # Maxima do not round; the blur's multiply-adds may be contracted otherwise in another program.
  np.testing.assert_allclose(_maps(clouds, mask), np.asarray(jax.jit(v2.grid_to_image)(grid)),
                             rtol=0, atol=1e-6)


def test_the_gpu_path_and_the_other_backends_path_give_the_same_maps():
  """GPUs pool by a 49-write scatter, other backends by a 7-write one and a pass; both run here."""
  clouds = _random_clouds(10, b=3, n=500)
  clouds[2] = np.clip(clouds[2], -1.0, 1.0)
  mask = np.random.default_rng(11).random(clouds.shape[:2]) > 0.2
  cells = jax.jit(v2._cells)(clouds, mask)
  gpu = np.asarray(jax.jit(v2._maps_scatter_pooled)(cells))
  other = np.asarray(jax.jit(v2._maps_row_pooled)(cells))
  assert (gpu < 1).any()
  np.testing.assert_array_equal(gpu, other)


@pytest.mark.parametrize("platform,grid_cells", [("cuda", 10 * 7 * 112 * 112), ("rocm", 10 * 7 * 112 * 112),
                                                 ("tpu", 10 * 7 * 112 * 118), ("cpu", 10 * 7 * 112 * 118)])
def test_each_platform_lowers_its_own_path(platform, grid_cells):
  spec = jax.ShapeDtypeStruct((2, 64, 3), np.float32)
  module = jax.export.export(jax.jit(v2.depth_maps), platforms=(platform,))(spec).mlir_module()
  sizes = {int(n) for n in re.findall(r"[<x](\d{6})x", module)}
  assert grid_cells in sizes and not sizes & ({10 * 7 * 112 * 112, 10 * 7 * 112 * 118} - {grid_cells})


def test_clip_input_is_the_unnormalised_map_at_224():
  maps = _maps(_random_clouds(4, b=1))
  images = np.asarray(v2.clip_input(maps))
  assert images.shape == (1, 10, 224, 224, 3)
  # Background stays 1.0: unnormalised.
  assert images[0, 0, 0, 0, 0] == 1.0
  # align_corners: the corner pixels are the map's own.
  noise = np.random.default_rng(5).uniform(size=(1, 10, 110, 110)).astype(np.float32)
  resized = np.asarray(v2.clip_input(noise))[0, ..., 0]
  for r, c in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
    np.testing.assert_array_equal(resized[:, r, c], noise[0, :, r, c])
  np.testing.assert_array_equal(images, np.asarray(pointclip.clip_input(maps)))
  normed = np.asarray(v2.clip_input(maps, normalize=True))
  np.testing.assert_allclose(normed[..., 0], (images[..., 0] - pointclip.CLIP_MEAN[0]) / pointclip.CLIP_STD[0],
                             rtol=1e-5, atol=1e-6)
