"""kNN and farthest-point sampling against plain numpy, with and without padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.models import point_ops


def _np_knn(queries, points, k):
  """Indices of the k nearest points, ascending distance, ties to the lower index."""
  d2 = ((queries[:, None, :].astype(np.float64) - points[None, :, :]) ** 2).sum(-1)
  return np.argsort(d2, axis=1, kind="stable")[:, :k]


def _np_fps(points, num_samples, start=0):
  """FPS as the pointops kernels describe it: start at `start`, then the farthest each time."""
  points = points.astype(np.float64)
  picked = [start]
  far = np.full(len(points), np.inf)
  for _ in range(num_samples - 1):
    far = np.minimum(far, ((points - points[picked[-1]]) ** 2).sum(-1))
    picked.append(int(np.argmax(far)))
  return np.array(picked)


def _knn(queries, points, k, mask=None, block_size=None):
  fn = jax.jit(lambda q, p, m: point_ops.knn(q, p, k, m, block_size))
  idx, valid = fn(queries, points, mask)
  return np.asarray(idx), np.asarray(valid)


@pytest.mark.parametrize("block_size", [None, 4])
def test_knn_matches_numpy(block_size):
  rng = np.random.default_rng(0)
  points = rng.normal(size=(2, 29, 3)).astype(np.float32)
  queries = rng.normal(size=(2, 13, 3)).astype(np.float32)
  idx, valid = _knn(queries, points, 6, block_size=block_size)  # 13 queries: blocks of 4 leave 1
  assert idx.shape == (2, 13, 6) and idx.dtype == np.int32 and valid.all()
  for b in range(2):
    np.testing.assert_array_equal(idx[b], _np_knn(queries[b], points[b], 6))


def test_knn_of_a_cloud_on_itself_finds_each_point_first():
  points = np.random.default_rng(1).normal(size=(3, 40, 3)).astype(np.float32) * 100
  idx, _ = _knn(points, points, 8, block_size=16)
  np.testing.assert_array_equal(idx[..., 0], np.broadcast_to(np.arange(40), (3, 40)))
  for b in range(3):
    np.testing.assert_array_equal(idx[b], _np_knn(points[b], points[b], 8))


def test_knn_breaks_exact_ties_towards_the_lower_index():
  rng = np.random.default_rng(2)
  base = rng.normal(size=(5, 3)).astype(np.float32)
  points = np.concatenate([base, base[::-1]])[None]  # every point twice: 0<->9, 1<->8, ...
  idx, _ = _knn(points, points, 4)
  for i in range(10):
    twin = 9 - i
    assert list(idx[0, i, :2]) == sorted([i, twin])  # distance 0 both: the lower index first


def test_knn_padded_clouds_ignore_padding_while_enough_real_points():
  rng = np.random.default_rng(3)
  b, n, m, k = 3, 24, 10, 5
  queries = rng.normal(size=(b, m, 3)).astype(np.float32)
  points = rng.normal(size=(b, n, 3)).astype(np.float32)
  mask = rng.random((b, n)) < 0.6
  mask[2] = False
  mask[2, [4, 11, 17]] = True  # 3 real points < k
  # Padding right on top of the queries: it would be everyone's nearest if not masked.
  points[:, :m][~mask[:, :m]] = queries[~mask[:, :m]]
  idx, valid = _knn(queries, points, k, mask, block_size=3)
  for cloud in range(b):
    real = np.flatnonzero(mask[cloud])
    expect = real[_np_knn(queries[cloud], points[cloud][real], min(k, len(real)))]
    found = min(k, len(real))
    np.testing.assert_array_equal(idx[cloud, :, :found], expect)
    assert valid[cloud, :, :found].all() and not valid[cloud, :, found:].any()
    # The missing slots hold the cloud's first real point (the authors' pointops rule).
    assert (idx[cloud, :, found:] == real[0]).all()
  assert mask[np.arange(b)[:, None, None], idx][valid].all()


def test_knn_with_more_neighbours_than_points():
  rng = np.random.default_rng(4)
  points = rng.normal(size=(2, 4, 3)).astype(np.float32)
  idx, valid = _knn(points, points, 16)
  assert idx.shape == (2, 4, 16)
  assert valid[..., :4].all() and not valid[..., 4:].any()
  assert (idx[..., 4:] == 0).all()
  for b in range(2):
    np.testing.assert_array_equal(idx[b, :, :4], _np_knn(points[b], points[b], 4))


def test_query_block_size_bounds_the_distance_matrix():
  assert point_ops.query_block_size(256, 1024, 1024) == 256
  assert point_ops.query_block_size(256, 8192, 8192, max_elements=1 << 26) == 32
  assert point_ops.query_block_size(1024, 8192, 8192, max_elements=1 << 20) == 1
  assert point_ops.query_block_size(2, 10, 10) == 10


def test_fps_matches_numpy():
  points = np.random.default_rng(5).normal(size=(3, 50, 3)).astype(np.float32)
  picked = np.asarray(jax.jit(lambda p: point_ops.farthest_point_sampling(p, 12))(points))
  assert picked.shape == (3, 12) and picked.dtype == np.int32
  for b in range(3):
    np.testing.assert_array_equal(picked[b], _np_fps(points[b], 12))


def test_fps_padded_clouds_sample_real_points_only():
  rng = np.random.default_rng(6)
  b, n, s = 3, 40, 10
  points = rng.normal(size=(b, n, 3)).astype(np.float32)
  mask = rng.random((b, n)) < 0.7
  mask[:, 0] = False  # the first real point is not index 0
  mask[2] = False
  mask[2, [3, 8, 30, 31]] = True  # 4 real points < 10 samples
  points[~mask] = 1e3 * rng.normal(size=(int((~mask).sum()), 3))  # far away: FPS's favourites
  picked = np.asarray(jax.jit(lambda p, m: point_ops.farthest_point_sampling(p, s, m))(points, mask))
  for cloud in range(b):
    real = np.flatnonzero(mask[cloud])
    found = min(s, len(real))
    np.testing.assert_array_equal(picked[cloud, :found], real[_np_fps(points[cloud][real], found)])
    assert (picked[cloud, found:] == real[0]).all()
  assert mask[np.arange(b)[:, None], picked].all()


def test_sampled_mask_keeps_floor_of_real_over_stride():
  mask = jnp.asarray(np.arange(16)[None, :] < np.array([[16], [9], [3]]))
  kept = np.asarray(point_ops.sampled_mask(mask, 4, 4))
  np.testing.assert_array_equal(kept.sum(1), [4, 2, 0])
  assert kept[1, :2].all() and not kept[1, 2:].any()
  assert point_ops.sampled_mask(None, 4, 4) is None
