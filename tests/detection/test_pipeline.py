"""Crop batching on the device, detection scores and the zero-shot classifier seam."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.core import parallel
from clip2point_jax.detection import classifiers, pipeline
from clip2point_jax.loading import hf_clip
from clip2point_jax.projection import zeroshot
from clip2point_jax.projection.settings import RenderSettings
from renderers import cameras


def _content_logits(points, mask):
  """A stand-in classifier whose logits say which crop it saw."""
  m = mask.astype(jnp.float32)
  return jnp.stack([m.sum(1), (points[..., 0] * m).sum(1), (points[..., 2] * m).max(1)], -1)


def _expected(points, mask):
  m = mask.astype(np.float32)
  return np.stack([m.sum(1), (points[..., 0] * m).sum(1), (points[..., 2] * m).max(1)], -1)


def _traced_classifier():
  """`_content_logits` jitted, and the list of batch shapes it was traced (compiled) for."""
  traces = []

  @jax.jit
  def classify(points, mask):
    traces.append(points.shape)
    return _content_logits(points, mask)

  return classify, traces


def test_batcher_keeps_crop_order_across_scenes_and_compiles_once():
  rng = np.random.default_rng(0)
  classify, traces = _traced_classifier()
  batcher = pipeline.CropBatcher(classify, batch_size=4, num_points=16, mesh=parallel.make_mesh())
  scenes = []
  for count in (5, 0, 9, 1):  # 15 crops: batches of 4, the last padded
    points = rng.normal(size=(count, 16, 3)).astype(np.float32)
    mask = rng.random((count, 16)) < 0.7
    batcher.add(points, mask)
    scenes.append((points, mask))
  logits = batcher.finish()
  points = np.concatenate([p for p, _ in scenes])
  mask = np.concatenate([m for _, m in scenes])
  np.testing.assert_allclose(logits, _expected(points, mask), rtol=1e-5, atol=1e-5)
  assert batcher.num_batches == 4 and len(traces) == 1 and traces[0] == (4, 16, 3)


def test_device_batcher_takes_device_rows_and_gives_the_host_batchers_logits():
  rng = np.random.default_rng(2)
  classify, traces = _traced_classifier()
  host = pipeline.CropBatcher(classify, batch_size=4, num_points=16, mesh=parallel.make_mesh())
  device = pipeline.CropBatcher(classify, batch_size=4, num_points=16, mesh=parallel.make_mesh(), on_device=True)
  before = pipeline._place._cache_size()
  for count in (5, 0, 9, 1, 7):  # scenes' crops padded to 16 rows, as DeviceCrops are
    points = rng.normal(size=(16, 16, 3)).astype(np.float32)
    mask = rng.random((16, 16)) < 0.7
    rows = np.sort(rng.choice(count + 3, count, replace=False))  # the kept rows
    host.add(points[rows], mask[rows])
    device.add(jnp.asarray(points), jnp.asarray(mask), rows=rows)
  np.testing.assert_array_equal(device.finish(), host.finish())
  assert device.num_crops == host.num_crops == 22 and device.num_batches == host.num_batches == 6
  assert len(traces) == 1 and pipeline._place._cache_size() - before == 1  # one shape of crop arrays
  assert device.timer.compile_seconds is not None and device.timer.rates()["crops_per_second"] > 0


def test_batcher_shards_over_8_devices():
  from tests.conftest import run_with_fake_devices
  run_with_fake_devices("""
    import jax, numpy as np
    from clip2point_jax.core import parallel
    from clip2point_jax.detection import pipeline
    from tests.detection.test_pipeline import _content_logits, _expected
    assert len(jax.devices()) == 8
    seen = []
    def classify(points, mask):
      seen.append(points.sharding)
      return jax.jit(_content_logits)(points, mask)
    batcher = pipeline.CropBatcher(classify, batch_size=5, num_points=8, mesh=parallel.make_mesh())
    assert batcher.batch_size == 8
    rng = np.random.default_rng(1)
    points = rng.normal(size=(19, 8, 3)).astype(np.float32)
    mask = rng.random((19, 8)) < 0.8
    batcher.add(points[:11], mask[:11]); batcher.add(points[11:], mask[11:])
    np.testing.assert_allclose(batcher.finish(), _expected(points, mask), rtol=1e-5, atol=1e-5)
    assert len(seen) == 3 and all(len(s.device_set) == 8 for s in seen)
    # Batches built on the device (from crops on one device) are sharded the same way.
    batcher = pipeline.CropBatcher(classify, batch_size=5, num_points=8, mesh=parallel.make_mesh(), on_device=True)
    batcher.add(jax.device_put(points), jax.device_put(mask), rows=np.arange(11))
    batcher.add(points, mask, rows=np.arange(11, 19))
    np.testing.assert_allclose(batcher.finish(), _expected(points, mask), rtol=1e-5, atol=1e-5)
    assert len(seen) == 6 and all(len(s.device_set) == 8 for s in seen[3:])
  """)


def test_detection_scores_by_hand():
  boxes = np.arange(14, dtype=float).reshape(2, 7)
  # Softmax of [0, ln 3] is [1/4, 3/4]; of [ln 2, 0] is [2/3, 1/3].
  logits = np.array([[0.0, math.log(3)], [math.log(2), 0.0]])
  objectness = np.array([0.8, 0.5])
  top1 = pipeline.detections_from_logits(boxes, objectness, logits)
  np.testing.assert_array_equal(top1.labels, [1, 0])
  np.testing.assert_allclose(top1.scores, [0.75 * 0.8, 2 / 3 * 0.5])
  np.testing.assert_array_equal(top1.boxes, boxes)
  plain = pipeline.detections_from_logits(boxes, objectness, logits, use_objectness=False)
  np.testing.assert_allclose(plain.scores, [0.75, 2 / 3])
  every = pipeline.detections_from_logits(boxes, objectness, logits, per_class=True)
  np.testing.assert_array_equal(every.labels, [0, 1, 0, 1])
  np.testing.assert_allclose(every.scores, [0.2, 0.6, 1 / 3, 1 / 6])
  np.testing.assert_array_equal(every.boxes, boxes[[0, 0, 1, 1]])
  empty = pipeline.detections_from_logits(np.zeros((0, 7)), np.zeros(0), np.zeros((0, 2)))
  assert empty.labels.shape == (0,) and empty.scores.shape == (0,)


def test_oracle_logits_by_hand():
  gt = np.array([[0, 0, 0, 1, 1, 1, 0], [5, 0, 0, 1, 1, 1, 0]], float)
  proposals = np.array([[5.1, 0, 0, 1, 1, 1, 0],   # IoU 0.9/1.1 with the second box
                        [0.7, 0, 0, 1, 1, 1, 0],   # IoU 0.3/1.7 = 0.18 with the first: no match
                        [0, 0, 0, 1, 1, 1, 0]], float)
  logits = classifiers.oracle_logits(proposals, gt, np.array([2, 1]), 3, iou_threshold=0.25, confidence=7.0)
  np.testing.assert_array_equal(logits, [[0, 7, 0], [0, 0, 0], [0, 0, 7]])


def test_zeroshot_seam_returns_clip_scaled_mean_similarities(tiny_clip_dir):
  loaded = hf_clip.load_clip(tiny_clip_dir, dtype=jnp.float32, residual_dtype=jnp.float32)
  names = ["chair", "table", "lamp"]
  views = cameras.VIEWS_ZERO_SHOT
  weights = np.array([1.0, 0.5, 2.0, 1.0, 0.25, 1.5])
  settings = RenderSettings(views=tuple(views), view_weights=tuple(weights), image_size=224, radius=0.02,
                            distance=1.0, align_modelnet=True)  # ScanNet's z-up crops
  classify = classifiers.zeroshot_classifier(loaded, names, templates=("image of a {}",), settings=settings)
  rng = np.random.default_rng(0)
  points = rng.normal(size=(2, 64, 3)).astype(np.float32)
  mask = np.ones((2, 64), bool)
  mask[1, 40:] = False
  got = np.asarray(classify(jnp.asarray(points), jnp.asarray(mask)))
  # The reference: per-view cosine similarities of the zero-shot module (tested
  # against transformers' CLIP), averaged with the weights and scaled by CLIP's temperature.
  z_up_to_y_up = np.stack([-points[..., 1], points[..., 2], -points[..., 0]], -1)
  sums = zeroshot.make_classifier(zeroshot.clip_depth_encoder(loaded), views=views, view_weights=weights)(
      loaded.params, zeroshot.class_text_features(loaded, names), jnp.asarray(z_up_to_y_up), jnp.asarray(mask))
  scale = math.exp(float(loaded.params["logit_scale"]))
  np.testing.assert_allclose(got, scale * np.asarray(sums) / weights.sum(), rtol=1e-4, atol=1e-4)
  assert got.shape == (2, 3) and np.abs(got[0] - got[1]).max() > 1e-4
  assert scale < classifiers.MAX_LOGIT_SCALE  # the tiny CLIP's exp(2.6592) = 14.3
