"""The device cropper against the host's: the same crops, bit for bit but for the normalisation."""

import numpy as np
import pytest

from clip2point_jax.detection import boxes as box_lib
from clip2point_jax.detection import device_crops


def _assert_same(host: box_lib.Crops, device: box_lib.Crops):
  for field in ("mask", "counts", "kept", "indices"):
    np.testing.assert_array_equal(getattr(device, field), getattr(host, field), err_msg=field)
    assert getattr(device, field).dtype == getattr(host, field).dtype, field
  # The normalisation sums in another order (and the host's means are float64).
  np.testing.assert_allclose(device.points, host.points, rtol=0, atol=1e-6)
  assert np.all(device.points[~device.mask] == 0)


def _both(points, boxes, **kwargs):
  host = box_lib.crop_boxes(points, boxes, rng=np.random.default_rng(5), **kwargs)
  device = device_crops.crop_boxes(points, boxes, rng=np.random.default_rng(5), **kwargs)
  assert device.num_boxes == len(boxes) and device.points.shape[0] >= len(boxes)
  return host, device.to_host()


def _on_faces(rng, boxes, margin, per_face):
  """Points on the faces of each (margin-grown) box: exactly for axis-aligned
  boxes with representable halves, within float32 rounding for turned ones."""
  out = []
  for cx, cy, cz, dx, dy, dz, heading in boxes:
    half = np.array([dx, dy, dz]) * (1.0 + margin) / 2.0
    for axis in range(3):
      for sign in (-1.0, 1.0):
        local = rng.uniform(-1, 1, (per_face, 3)) * half
        local[:, axis] = sign * half[axis]
        c, s = np.cos(heading), np.sin(heading)
        world = np.stack([cx + c * local[:, 0] - s * local[:, 1], cy + s * local[:, 0] + c * local[:, 1],
                          cz + local[:, 2]], 1)
        out.append(world)
  return np.concatenate(out).astype(np.float32)


@pytest.mark.parametrize("seed,margin,num_points", [(0, 0.0, 64), (1, 0.1, 64), (2, 0.1, 256)])
def test_device_crops_equal_the_host_crops(seed, margin, num_points):
  rng = np.random.default_rng(seed)
  scene = rng.uniform(-3, 3, (4000, 3)).astype(np.float32)
  turned = np.concatenate([rng.uniform(-2, 2, (12, 3)), rng.uniform(0.4, 2.5, (12, 3)),
                           rng.uniform(-np.pi, np.pi, (12, 1))], 1)
  special = np.array([
      [0.5, -0.25, 1.0, 1.0, 0.5, 2.0, 0.0],  # axis-aligned, its faces exactly representable
      [-1.5, 1.5, 0.0, 1.0, 1.0, 1.0, np.pi / 2],  # a quarter turn: cos rounds to ~6e-17
      [10, 10, 10, 1, 1, 1, 0],  # empty
      [2.005, -2.005, 1.0, 0.04, 0.04, 0.04, 0.3],  # the three points of `few`: fewer than min_points
      [0, 0, 0, 0, 0, 0, 0],  # no extent: only points exactly at its centre
  ])
  boxes = np.concatenate([turned, special])
  faces = _on_faces(rng, np.concatenate([turned[:4], special[:2]]), margin, 40)
  few = np.array([[2, -2, 1], [2.01, -2, 1], [2, -2.01, 1]], np.float32)
  points = np.concatenate([scene, faces, np.zeros((3, 3), np.float32), few, scene[:50]])  # duplicates too
  host, device = _both(points, boxes, num_points=num_points, margin=margin, min_points=5)
  _assert_same(host, device)
  # The cases are all there: sampled boxes, padded ones, dropped ones ...
  assert (host.counts > num_points).any() and ((host.counts < num_points) & host.kept).any()
  assert host.counts[-3] == 0 and host.counts[-2] == 3 and not host.kept[-2]
  assert host.counts[-1] == 3 and not host.kept[-1]  # the three points at the origin
  # ... and the face points of the turned boxes fall both ways of float32 rounding.
  turned_faces = np.arange(len(scene), len(scene) + 4 * 6 * 40)
  inside = box_lib.points_in_boxes(points, turned[:4], margin=margin)[:, turned_faces]
  per_box = inside.reshape(4, 4, 6 * 40)[np.arange(4), np.arange(4)]
  assert 0 < per_box.mean() < 1, per_box.mean()


def test_no_boxes_no_points_and_a_single_box():
  rng = np.random.default_rng(3)
  points = rng.uniform(-1, 1, (300, 3)).astype(np.float32)
  for scene, boxes in ((points, np.zeros((0, 7))), (np.zeros((0, 3), np.float32), [[0, 0, 0, 1, 1, 1]]),
                       (points, [[0, 0, 0, 1, 1, 1]])):
    host, device = _both(scene, boxes, num_points=32, margin=0.0, min_points=1)
    _assert_same(host, device)


def test_draws_are_per_box_in_box_order():
  """A box's sample depends on its row of draws only, not on the other boxes."""
  rng = np.random.default_rng(4)
  points = rng.uniform(-2, 2, (3000, 3)).astype(np.float32)
  boxes = np.array([[0, 0, 0, 2, 2, 2, 0.3], [1, 1, 1, 0.5, 0.5, 0.5, 0], [-1, 0, 0, 1, 1, 1, 1.0]])
  both = box_lib.crop_boxes(points, boxes, num_points=16, rng=np.random.default_rng(0))
  u = box_lib.sampling_draws(np.random.default_rng(0), 3, 16)
  alone = box_lib.crop_boxes(points, boxes[:1], num_points=16, rng=np.random.default_rng(0))
  assert box_lib.sampling_draws(np.random.default_rng(0), 1, 16).tolist() == u[:1].tolist()
  np.testing.assert_array_equal(both.indices[0], alone.indices[0])
  assert both.counts[0] > 16


def test_buckets_compile_once_per_size():
  assert [device_crops.bucket(n, 4096) for n in (1, 4096, 4097, 5120, 5121, 8192, 8193, 50_000, 300_000)] == [
      4096, 4096, 5120, 5120, 6144, 8192, 10240, 57344, 327680]
  assert [device_crops.bucket(n, 16) for n in (0, 16, 17, 256, 257)] == [16, 16, 20, 256, 320]
  for n in range(1, 70_000, 997):
    b = device_crops.bucket(n, 1)
    assert n <= b < 1.25 * n + 8 or b <= 8
  rng = np.random.default_rng(6)
  boxes = np.concatenate([rng.uniform(-1, 1, (5, 3)), rng.uniform(0.5, 1, (5, 3)), np.zeros((5, 1))], 1)
  before = device_crops._crop._cache_size()
  for size, k in ((5000, 5), (5100, 3), (9000, 5), (8500, 4)):  # buckets 5120 and 10240 points, 16 boxes
    points = rng.uniform(-1, 1, (size, 3)).astype(np.float32)
    host, device = _both(points, boxes[:k], num_points=48, margin=0.1, min_points=5)
    _assert_same(host, device)
  assert device_crops._crop._cache_size() - before == 2
