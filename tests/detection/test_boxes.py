"""Box geometry against hand-worked values and a dense-grid reference."""

import math

import numpy as np
import pytest

from clip2point_jax.detection import boxes as box_lib
from renderers import points as projector


@pytest.mark.parametrize("a,b,expected", [
    ([0, 0, 0, 2, 2, 2], [1, 0, 0, 2, 2, 2], 4 / 12),  # inter 1x2x2, union 8+8-4
    ([0, 0, 0, 1, 1, 1], [0.5, 0.5, 0.5, 1, 1, 1], 0.125 / 1.875),
    ([0, 0, 0, 2, 2, 2], [0, 0, 0, 1, 1, 1], 1 / 8),  # contained
    ([0, 0, 0, 1, 1, 1], [1, 0, 0, 1, 1, 1], 0.0),  # touching faces
    ([0, 0, 0, 1, 1, 1], [3, 3, 3, 1, 1, 1], 0.0),
    ([0, 0, 0, 5, 5, 5], [3, 0, 0, 5, 5, 5], 0.25),  # inter 2x5x5 = 50, union 200
    ([1, 2, 3, 1, 2, 4], [1, 2, 3, 1, 2, 4], 1.0),
])
def test_axis_aligned_iou_hand_worked(a, b, expected):
  assert box_lib.iou_axis_aligned([a], [b])[0, 0] == pytest.approx(expected, abs=1e-12)
  assert box_lib.iou_3d([a], [b])[0, 0] == pytest.approx(expected, abs=1e-12)
  assert box_lib.iou_3d([b], [a])[0, 0] == pytest.approx(expected, abs=1e-12)


SQRT2 = math.sqrt(2.0)
OCTAGON = 2 * (SQRT2 - 1)  # area of a unit square intersected with itself turned 45 degrees


@pytest.mark.parametrize("a,b,expected", [
    # Unit squares, one turned 45 degrees: a regular octagon; IoU = 1/sqrt(2).
    ([0, 0, 0, 1, 1, 1, math.pi / 4], [0, 0, 0, 1, 1, 1, 0], OCTAGON / (2 - OCTAGON)),
    # 2x1 turned 90 degrees against 2x1: a 1x1 square in common, union 2+2-1.
    ([0, 0, 0, 2, 1, 1, math.pi / 2], [0, 0, 0, 2, 1, 1, 0], 1 / 3),
    # A 2x2x2 cube turned 90 degrees is itself.
    ([0.5, -1, 2, 2, 2, 2, math.pi / 2], [0.5, -1, 2, 2, 2, 2, 0], 1.0),
    # Octagon again, heights 2 overlapping by 1: inter OCTAGON * 1, union 2 + 2 - inter.
    ([0, 0, 0, 1, 1, 2, math.pi / 4], [0, 0, 1, 1, 1, 2, 0], OCTAGON / (4 - OCTAGON)),
    # A 2x2 diamond at the origin against the square [0,2]^2: the diamond's
    # first-quadrant triangle (area 1) is the overlap; union 4 + 4 - 1.
    ([0, 0, 0, 2, 2, 1, math.pi / 4], [1, 1, 0, 2, 2, 1, 0], 1 / 7),
    # Far apart, both turned.
    ([0, 0, 0, 1, 1, 1, 0.3], [5, 0, 0, 1, 1, 1, -0.7], 0.0),
])
def test_oriented_iou_hand_worked(a, b, expected):
  assert box_lib.iou_3d([a], [b])[0, 0] == pytest.approx(expected, abs=1e-9)
  assert box_lib.iou_3d([b], [a])[0, 0] == pytest.approx(expected, abs=1e-9)


def _grid_iou(a, b, step=0.004):
  """IoU from counting the cells of a fine x-y grid inside each box's footprint
  (the z overlap of two upright boxes is an interval, exact)."""
  reach = (np.linalg.norm(a[3:5]) + np.linalg.norm(b[3:5])) / 2
  lo, hi = np.minimum(a[:2], b[:2]) - reach, np.maximum(a[:2], b[:2]) + reach
  xs, ys = (np.arange(l + step / 2, h, step) for l, h in zip(lo, hi))
  grid = np.stack(np.meshgrid(xs, ys, indexing="ij"), -1).reshape(-1, 2)

  def inside(box):
    c, s = math.cos(box[6]), math.sin(box[6])
    rel = grid - box[:2]
    return ((np.abs(c * rel[:, 0] + s * rel[:, 1]) <= box[3] / 2)
            & (np.abs(-s * rel[:, 0] + c * rel[:, 1]) <= box[4] / 2))

  area = (inside(a) & inside(b)).sum() * step * step
  z = max(0.0, min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2))
  inter = area * z
  return inter / (np.prod(a[3:6]) + np.prod(b[3:6]) - inter)


def test_oriented_iou_matches_a_grid_count_on_random_boxes():
  rng = np.random.default_rng(0)
  a = np.concatenate([rng.uniform(-0.3, 0.3, (4, 3)), rng.uniform(0.4, 1.0, (4, 3)),
                      rng.uniform(-math.pi, math.pi, (4, 1))], 1)
  b = np.concatenate([rng.uniform(-0.3, 0.3, (3, 3)), rng.uniform(0.4, 1.0, (3, 3)),
                      rng.uniform(-math.pi, math.pi, (3, 1))], 1)
  ours = box_lib.iou_3d(a, b)
  assert (ours > 0.05).sum() >= 6  # the boxes overlap: the test means something
  for i in range(len(a)):
    for j in range(len(b)):
      assert ours[i, j] == pytest.approx(_grid_iou(a[i], b[j]), abs=0.02), (i, j)


def test_bev_corners_and_points_in_a_turned_box():
  box = [1.0, 2.0, 0.5, 2.0, 1.0, 1.0, math.pi / 2]  # long side along +y after turning
  corners = box_lib.bev_corners([box])[0]
  np.testing.assert_allclose(sorted(map(tuple, corners.round(9))),
                             sorted([(0.5, 1.0), (1.5, 1.0), (1.5, 3.0), (0.5, 3.0)]), atol=1e-9)
  x, y = corners[:, 0], corners[:, 1]
  assert 0.5 * (np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) > 0  # counter-clockwise
  points = np.array([[1.0, 2.9, 0.5],   # inside near the far end of the long side
                     [1.9, 2.0, 0.5],   # outside: beyond the short half-width
                     [1.0, 2.0, 1.1],   # above the top
                     [1.45, 1.05, 0.01]], np.float32)
  np.testing.assert_array_equal(box_lib.points_in_boxes(points, [box])[0], [True, False, False, True])
  # A 100% margin doubles every extent: the second and third points get in.
  np.testing.assert_array_equal(box_lib.points_in_boxes(points, [box], margin=1.0)[0], [True] * 4)
  local = box_lib.to_box_frame(points[:1], [box])[0, 0]
  np.testing.assert_allclose(local, [0.9, 0.0, 0.0], atol=1e-6)  # +y of the world is the box's +x


def test_crop_boxes_samples_padded_normalised_crops():
  rng = np.random.default_rng(1)
  scene = rng.uniform(-3, 3, (4000, 3)).astype(np.float32)
  boxes = np.array([[0, 0, 0, 2, 2, 2, 0.4],      # ~148 points: sampled down to 64
                    [2.5, 2.5, 2.5, 0.3, 0.3, 0.3, 0],  # ~0.5 points: padded or empty
                    [10, 10, 10, 1, 1, 1, 0],     # empty
                    [-2, 0, 0, 1.0, 1.5, 1.0, -1.0]])  # ~28 points: padded
  crops = box_lib.crop_boxes(scene, boxes, num_points=64, margin=0.0, min_points=5,
                             rng=np.random.default_rng(2))
  inside = box_lib.points_in_boxes(scene, boxes)
  np.testing.assert_array_equal(crops.counts, inside.sum(1))
  assert crops.counts[0] > 64 and 5 < crops.counts[3] < 64 and crops.counts[2] == 0
  np.testing.assert_array_equal(crops.kept, crops.counts >= 5)
  np.testing.assert_array_equal(crops.mask.sum(1), np.minimum(crops.counts, 64))
  for k in (0, 3):
    chosen = crops.indices[k][crops.mask[k]]
    # Every crop point is one of the box's points, none twice ...
    assert set(chosen) <= set(np.nonzero(inside[k])[0]) and len(set(chosen)) == len(chosen)
    # ... all of them when they fit, else one from each run of count/64
    # points in the order of x (then file order).
    if crops.counts[k] <= 64:
      assert set(chosen) == set(np.nonzero(inside[k])[0])
    else:
      by_x = np.nonzero(inside[k])[0]
      by_x = by_x[np.argsort(scene[by_x, 0], kind="stable")]
      ranks = np.sort([int(np.nonzero(by_x == c)[0][0]) for c in chosen])
      j, c = np.arange(64), crops.counts[k]
      assert np.all((j * c // 64 <= ranks) & (ranks < (j + 1) * c // 64))
    # ... in the box's frame, normalised as the projector normalises clouds.
    local = box_lib.to_box_frame(scene[chosen], boxes[k:k + 1])
    expected = np.asarray(projector.normalize_points(local))[0]
    np.testing.assert_allclose(crops.points[k][crops.mask[k]], expected, atol=1e-5)
  assert not crops.mask[2].any() and np.all(crops.points[~crops.mask] == 0)
