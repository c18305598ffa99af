"""PointCLIP's (V1) projector: hand-worked clouds, its quirks, batching, and an independent NumPy transcription."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from renderers import pointclip as pc
from renderers.errors import InputError

# Each view's camera coordinates before the 1.6 offset, worked out by hand
# from R = Rx Ry Rz of the official angles (Rz(pi/2) first: (x, y, z) -> (-y, x, z)).
HAND_VIEWS = (
    lambda x, y, z: (-y, x, z),
    lambda x, y, z: (-y, -z, x),
    lambda x, y, z: (-y, -x, -z),
    lambda x, y, z: (-y, z, -x),
    lambda x, y, z: (-z, x, -y),
    lambda x, y, z: (z, x, y),
)


def _maps(points, mask=None):
  points = np.asarray(points, np.float32)
  return np.asarray(pc.depth_maps(points[None] if points.ndim == 2 else points, mask))


def _random_clouds(seed, b=3, n=400):
  rng = np.random.default_rng(seed)
  pts = rng.normal(size=(b, n, 3)).astype(np.float32)
  return pts / np.linalg.norm(pts, axis=-1).max(-1)[:, None, None]


def test_views_are_the_hand_worked_rotations_with_float32_cosines():
  rng = np.random.default_rng(0)
  p = rng.uniform(-1, 1, size=3)
  r = pc.views()
  assert r.shape == (6, 3, 3) and r.dtype == np.float32
  for v, hand in enumerate(HAND_VIEWS):
    np.testing.assert_allclose(r[v] @ p, hand(*p), atol=1e-6)
  # Quirk kept: cos(float32(pi/2)) is -4.37e-8, not 0.
  assert r[0, 0, 0] == np.cos(np.float32(math.pi / 2)) != 0


def test_single_point_lands_on_its_hand_worked_pixel_with_its_depth():
  # View 0: camera (0.2, 0.3, 0.1 + 1.6); u = (0.2/1.7 + 1) * 64 = 71.53 -> row ceil(71.03) = 72;
  # w = (0.3/1.7 + 1) * 64 = 75.29 -> column ceil(74.79) = 75.
  maps = _maps([[0.3, -0.2, 0.1]])[0]
  assert maps.shape == (6, 128, 128)
  assert maps[0, 72, 75] == pytest.approx(1.7, rel=1e-6)
  assert np.count_nonzero(maps[0]) == 1
  for v, hand in enumerate(HAND_VIEWS):
    x, y, z = hand(0.3, -0.2, 0.1)
    depth = z + 1.6
    row = math.ceil((x / depth + 1) * 64 - 0.5)
    col = math.ceil((y / depth + 1) * 64 - 0.5)
    assert np.count_nonzero(maps[v]) == 1 and maps[v, row, col] == pytest.approx(depth, rel=1e-6), v


def test_two_points_on_one_pixel_give_the_harmonic_mean_of_their_depths():
  # View 0 camera (-0.21, 0.13, 1.6) and 1.25 times it, (-0.2625, 0.1625, 2.0): one ray, so one
  # pixel: u = (-0.13125 + 1) * 64 = 55.6 -> row 56, w = (0.08125 + 1) * 64 = 69.2 -> column 69.
  maps = _maps([[0.13, 0.21, 0.0], [0.1625, 0.2625, 0.4]])[0, 0]
  assert np.count_nonzero(maps) == 1
  # No occlusion: neither the nearest (1.6) nor the arithmetic mean (1.8).
  assert maps[56, 69] == pytest.approx(2.0 / (1 / 1.6 + 1 / 2.0), rel=1e-6)  # 1.7778


def test_a_point_behind_the_camera_is_dropped_and_other_views_still_see_it():
  # z = -1.9: depth -0.3 in view 0 (camera at z = -1.6), 3.5 in view 2 (looking along -z).
  maps = _maps([[0.05, 0.07, -1.9]])[0]
  assert np.count_nonzero(maps[0]) == 0
  assert np.count_nonzero(maps[2]) == 1 and maps[2].max() == pytest.approx(3.5, rel=1e-6)


def test_grid_edges_keep_ndc_minus_one_and_drop_plus_one():
  # View 5 camera (z, x, y + 1.6). With y = 0.4 the depth is 2, so NDC row coordinate z / 2.
  # u = (z/2 + 1) * 64: z = -2 -> u = 0, row ceil(-0.5) = 0, kept; z = 2 -> u = 128,
  # ceil(127.5) = 128, dropped; u = 127.4 -> row 127 kept; u = -0.6 -> ceil(-1.1) = -1, dropped.
  zs = [-2.0, 2.0, (127.4 / 64 - 1) * 2, (-0.6 / 64 - 1) * 2]
  xs = [-0.5, -0.25, 0.25, 0.5]  # columns w = (x/2 + 1) * 64 -> 48, 56, 72, 80
  maps = _maps([[x, 0.4, z] for x, z in zip(xs, zs)])[0, 5]
  assert sorted(zip(*np.nonzero(maps))) == [(0, 48), (127, 72)]
  np.testing.assert_allclose(maps[[0, 127], [48, 72]], 2.0, rtol=1e-6)


def test_unnormalised_clouds_change_the_maps():
  # No normalisation (unlike V2): scale and shift move and drop points.
  cloud = _random_clouds(1, b=1)
  base = _maps(cloud)
  assert not np.allclose(_maps(cloud * 2.0), base, atol=1e-3)
  assert not np.allclose(_maps(cloud + 0.3), base, atol=1e-3)
  # Three times the unit ball reaches behind the camera (depth < 0) in every view.
  big = cloud * 3.0
  assert np.count_nonzero(_maps(big)) < np.count_nonzero(base)


def test_batch_items_are_independent_and_padding_is_skipped():
  clouds = _random_clouds(2)
  together = _maps(clouds)
  for i in range(3):
    np.testing.assert_array_equal(together[i], _maps(clouds[i])[0])
  changed = clouds.copy()
  changed[1] *= 0.5
  np.testing.assert_array_equal(_maps(changed)[[0, 2]], together[[0, 2]])
  # Padding: 100 junk points masked off give the maps of the cloud alone.
  junk = np.random.default_rng(3).normal(size=(3, 100, 3)).astype(np.float32)
  mask = np.concatenate([np.ones((3, 400), bool), np.zeros((3, 100), bool)], 1)
  np.testing.assert_array_equal(_maps(np.concatenate([clouds, junk], 1), mask), together)


def test_a_cloud_draws_the_same_in_a_large_batch_as_alone():
  # A matmul's summation order changes with the batch's size: at 64 clouds
  # it moved a few clouds' points across cell boundaries (a rotation by einsum).
  clouds = _random_clouds(5, b=64, n=512)
  together = _maps(clouds)
  alone = np.stack([_maps(cloud)[0] for cloud in clouds])
  np.testing.assert_array_equal(alone, together)


def test_jit_matches_eager_and_shapes_are_checked():
  clouds = _random_clouds(4, b=2, n=64)
  np.testing.assert_array_equal(np.asarray(jax.jit(pc.depth_maps)(clouds)), _maps(clouds))
  with pytest.raises(InputError, match="shape"):
    pc.depth_maps(np.ones((5, 3), np.float32) * 0.5)


def _official_transcription(clouds):
  """PointCLIP's points2depth written out point by point in float32 NumPy."""
  f = np.float32
  eps = f(1e-12)
  b, n, _ = clouds.shape
  out = np.zeros((b, 6, 128, 128), np.float32)
  for i in range(b):
    for v, rot in enumerate(pc.views()):
      num = np.zeros((128, 128), np.float32)
      den = np.zeros((128, 128), np.float32)
      for p in clouds[i]:
        q = [f(f(f(p[0] * rot[k, 0]) + f(p[1] * rot[k, 1])) + f(p[2] * rot[k, 2])) for k in range(3)]
        depth = f(q[2] + f(1.6))
        u = f(f(f(q[0] / f(depth + eps)) + f(1)) * f(128)) / f(2)
        w = f(f(f(q[1] / f(depth + eps)) + f(1)) * f(128)) / f(2)
        row, col = math.ceil(f(u - f(0.5))), math.ceil(f(w - f(0.5)))
        if 0 <= row <= 127 and 0 <= col <= 127 and depth >= 0:
          weight = f(f(1) / f(depth + eps))
          den[row, col] += weight
          num[row, col] += f(depth * weight)
      out[i, v] = num / np.where(den == 0, f(1), den)
  return out


def test_matches_an_independent_transcription_of_the_official_algorithm():
  clouds = _random_clouds(5, b=2, n=300)
  clouds[1] *= 1.4  # partly out of view
  np.testing.assert_allclose(_maps(clouds), _official_transcription(clouds), rtol=2e-6, atol=0)


def test_clip_input_resizes_with_align_corners_and_repeats_channels():
  # A 2 x 2 map to 3 x 3: corners kept, edges the midpoints, centre the mean.
  grey = jnp.asarray([[[[1.0, 2.0], [3.0, 5.0]]]])
  out = np.asarray(pc.clip_input(grey, image_size=3))
  assert out.shape == (1, 1, 3, 3, 3)
  np.testing.assert_allclose(out[0, 0, ..., 0], [[1, 1.5, 2], [2, 2.75, 3.5], [3, 4, 5]], rtol=1e-6)
  np.testing.assert_array_equal(out[..., 0], out[..., 2])
  normed = np.asarray(pc.clip_input(grey, image_size=3, normalize=True))
  np.testing.assert_allclose(normed, (out - np.asarray(pc.CLIP_MEAN)) / np.asarray(pc.CLIP_STD), rtol=1e-5)


def test_clip_input_matches_torch_bilinear_align_corners():
  torch = pytest.importorskip("torch")
  maps = _maps(_random_clouds(6, b=1))
  ours = np.asarray(pc.clip_input(maps))
  theirs = torch.nn.functional.interpolate(torch.tensor(maps[0])[:, None], size=(224, 224),
                                           mode="bilinear", align_corners=True).numpy()[:, 0]
  assert ours.shape == (1, 6, 224, 224, 3)
  np.testing.assert_allclose(ours[0, ..., 1], theirs, rtol=1e-6, atol=1e-6)


def test_clip_constants_match_the_package_clip():
  from clip2point_jax.models import clip as clip_lib
  assert pc.CLIP_MEAN == clip_lib.CLIP_MEAN and pc.CLIP_STD == clip_lib.CLIP_STD
