"""The numpy input pipeline: shapes, seeding, host slices, eval padding, prefetching to the devices."""

import sys
import threading
import time

import jax
import numpy as np
import pytest

from clip2point_jax.core import parallel
from clip2point_jax.data import fps
from clip2point_jax.data import pipeline
from clip2point_jax.data import primitives
from clip2point_jax.data import registry
from clip2point_jax.errors import UserError
from tests.conftest import run_with_fake_devices

S, N = 64, 32


def _source(n, s=S):
  """Random clouds whose label is their index, to trace them in batches."""
  rng = np.random.default_rng(n)
  return [{"points": (rng.normal(size=(s, 3)) * rng.uniform(0.1, 3, 3)
                      + rng.normal(size=3)).astype(np.float32), "label": i}
          for i in range(n)]


def _take(source, steps, **kw):
  kw = {"global_batch_size": 8, "num_points": N, "training": True,
        "process_index": 0, "process_count": 1, **kw}
  return list(pipeline.batches(source, num_steps=steps, **kw))


def test_training_batches_are_full_seeded_and_reshuffled_per_epoch():
  source = _source(23)  # 2 full batches of 8 per epoch, 7 dropped.
  got = _take(source, 6, seed=1)
  for b in got:
    assert b["points"].shape == (8, N, 3) and b["points"].dtype == np.float32
    assert b["label"].dtype == np.int32 and b["mask"].dtype == np.bool_
    assert b["mask"].all()
  epochs = [np.concatenate([got[2 * e]["label"], got[2 * e + 1]["label"]])
            for e in range(3)]
  for labels in epochs:
    assert len(set(labels.tolist())) == 16  # No repeats within an epoch.
  assert not np.array_equal(epochs[0], epochs[1])
  again = _take(source, 6, seed=1)
  for a, b in zip(got, again):
    np.testing.assert_array_equal(a["points"], b["points"])
    np.testing.assert_array_equal(a["label"], b["label"])
  other = _take(source, 2, seed=2)
  assert not np.array_equal(other[0]["label"], got[0]["label"])
  # Resuming at step 3 continues the same stream.
  resumed = _take(source, 3, seed=1, start_step=3)
  for a, b in zip(resumed, got[3:]):
    np.testing.assert_array_equal(a["label"], b["label"])


@pytest.mark.parametrize("training", [True, False])
def test_hosts_take_disjoint_slices_that_cover_the_global_batch(training):
  source = _source(37)
  whole = _take(source, 4, training=training, global_batch_size=16)
  hosts = [_take(source, 4, training=training, global_batch_size=16,
                 process_index=p, process_count=4) for p in range(4)]
  for step, batch in enumerate(whole):
    parts = [hosts[p][step] for p in range(4)]
    assert all(len(part["label"]) == 4 for part in parts)
    for key in ("points", "label", "mask"):
      np.testing.assert_array_equal(
          np.concatenate([part[key] for part in parts]), batch[key])
    labels = [set(part["label"][part["mask"]].tolist()) for part in parts]
    assert sum(map(len, labels)) == len(set().union(*labels))  # Disjoint.


def test_eval_pads_the_last_batch_and_masks_it():
  source = _source(21)
  got = list(pipeline.batches(source, global_batch_size=8, num_points=N,
                              training=False, process_index=0,
                              process_count=1))
  assert len(got) == 3 == pipeline.num_batches(21, 8, training=False)
  assert [b["mask"].sum() for b in got] == [8, 8, 5]
  assert got[2]["mask"].tolist() == [True] * 5 + [False] * 3
  labels = np.concatenate([b["label"][b["mask"]] for b in got])
  np.testing.assert_array_equal(labels, np.arange(21))  # In order, once.
  assert all(np.isfinite(b["points"]).all() for b in got)  # Padding is real.
  # Two hosts: the second one's last slice is examples 20, pad, pad, pad.
  last = list(pipeline.batches(source, global_batch_size=8, num_points=N,
                               training=False, process_index=1,
                               process_count=2))[-1]
  assert last["mask"].tolist() == [True, False, False, False]
  assert last["label"][0] == 20
  first_host_last = list(pipeline.batches(
      source, global_batch_size=8, num_points=N, training=False,
      process_index=0, process_count=2))[-1]
  assert first_host_last["mask"].tolist() == [True, True, True, True]


def test_subsampling_and_normalisation():
  source = _source(5)
  raw = _take(source, 1, training=False, normalize_points=False,
              global_batch_size=5)[0]
  np.testing.assert_array_equal(raw["points"][2], source[2]["points"][:N])
  normed = _take(source, 1, training=False, global_batch_size=5)[0]["points"]
  np.testing.assert_allclose(normed.mean(axis=1), 0, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(normed, axis=-1).max(axis=1), 1,
                             rtol=1e-5)
  by_fps = _take(source, 1, training=False, normalize_points=False,
                 global_batch_size=5, sampling="fps")[0]["points"]
  np.testing.assert_array_equal(
      by_fps[3], fps.farthest_point_sample(source[3]["points"], N))


@pytest.mark.parametrize("kw,word", [
    ({"num_points": S + 1}, "num_points_stored >= 65"),
    ({"global_batch_size": 6, "process_count": 4}, "multiple of the 4 hosts"),
    ({"global_batch_size": 64}, "fewer than the batch size"),
    ({"sampling": "random"}, "sampling 'random'"),
])
def test_errors(kw, word):
  with pytest.raises(UserError, match=word):
    _take(_source(10), 1, **kw)
  with pytest.raises(UserError, match="empty"):
    _take([], 1)


def test_primitives_builder_matches_the_generator(tmp_path):
  data_dir = str(tmp_path)
  registry.prepare("primitives", data_dir, num_per_class_train=3,
                   num_per_class_test=2, num_points_stored=128, seed=5)
  for split, per_class, seed in (("train", 3, 10), ("test", 2, 11)):
    source, names = registry.load_split("primitives", split, data_dir)
    assert names == primitives.CLASS_NAMES
    points, labels = primitives.generate(per_class, 128, seed)
    assert len(source) == len(labels)
    for i in range(len(source)):
      e = source[i]
      name, k = e["id"].decode().rsplit("_", 1)
      j = names.index(name) * per_class + int(k)
      assert e["label"] == labels[j] == names.index(name)
      np.testing.assert_array_equal(e["points"], points[j])
  # The TFDS source goes through the same pipeline as any other.
  batch = next(pipeline.batches(source, global_batch_size=4, num_points=64,
                                training=True, process_index=0,
                                process_count=1))
  assert batch["points"].shape == (4, 64, 3)
  assert "tensorflow" not in sys.modules


def test_end_to_end_on_8_devices_without_tensorflow(tmp_path):
  # A fresh process, so no other test can have imported TensorFlow first.
  run_with_fake_devices(f"""
    import sys
    import jax
    import numpy as np
    from jax.sharding import PartitionSpec as P
    from clip2point_jax.core import parallel
    from clip2point_jax.data import pipeline, registry

    data_dir = {str(tmp_path)!r}
    registry.prepare("primitives", data_dir, num_per_class_train=2,
                     num_per_class_test=5, num_points_stored=256)
    source, names = registry.load_split("primitives", "test", data_dir)
    assert len(source) == 40 and jax.device_count() == 8
    mesh = parallel.make_mesh()
    seen = 0
    for local in pipeline.batches(source, global_batch_size=16,
                                  num_points=128, training=False):
      batch = parallel.global_batch(mesh, local)
      assert batch["points"].shape == (16, 128, 3)
      assert batch["points"].sharding.spec == P("data")
      for shard in batch["points"].addressable_shards:
        rows = shard.index[0]
        assert shard.data.shape == (2, 128, 3)
        np.testing.assert_array_equal(np.asarray(shard.data),
                                      local["points"][rows])
      np.testing.assert_array_equal(np.asarray(batch["label"]),
                                    local["label"])
      seen += int(np.asarray(batch["mask"]).sum())
    assert seen == 40
    # Prefetched to the devices: the same global arrays, the same sharding.
    plain = [parallel.global_batch(mesh, local) for local in pipeline.batches(
        source, global_batch_size=16, num_points=128, training=False)]
    ahead = list(pipeline.prefetch_to_device(pipeline.batches(
        source, global_batch_size=16, num_points=128, training=False), mesh, size=2))
    assert len(ahead) == len(plain) == 3
    for want, got in zip(plain, ahead):
      for key in ("points", "label", "mask"):
        assert got[key].sharding == want[key].sharding and got[key].sharding.spec == P("data")
        np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(want[key]))
    assert "tensorflow" not in sys.modules
    print("ok")
  """)


def test_prefetch_keeps_order_and_passes_errors_on():
  source = _source(30)
  plain = _take(source, 5, seed=3)
  ahead = list(pipeline.prefetch(iter(_take(source, 5, seed=3)), size=2))
  for a, b in zip(plain, ahead):
    np.testing.assert_array_equal(a["points"], b["points"])
  assert len(ahead) == 5

  def broken():
    yield 1
    raise UserError("bad shard")

  got = pipeline.prefetch(broken())
  assert next(got) == 1
  with pytest.raises(UserError, match="bad shard"):
    next(got)


def test_prefetch_to_device_runs_ahead_and_passes_errors_on():
  mesh = parallel.make_mesh()
  produced, ready = [], threading.Event()

  def counting():
    for i in range(10):
      produced.append(i)
      if len(produced) == 4:
        ready.set()
      yield {"x": np.full((2, 3), i, np.float32)}

  got = pipeline.prefetch_to_device(counting(), mesh, size=2)
  first = next(got)
  assert isinstance(first["x"], jax.Array) and first["x"].sharding == parallel.data_sharding(mesh)
  assert ready.wait(30)  # while the consumer holds batch 0, the producer builds 1, 2 and starts 3
  time.sleep(0.2)
  assert len(produced) == 4  # and no further: `size` bounds what waits on the devices
  rest = [int(np.asarray(b["x"])[0, 0]) for b in got]
  assert rest == list(range(1, 10))

  def broken():
    yield {"x": np.zeros((2, 3), np.float32)}
    raise UserError("bad shard")

  got = pipeline.prefetch_to_device(broken(), mesh)
  next(got)
  with pytest.raises(UserError, match="bad shard"):
    next(got)


def test_map_batches_joins_each_output_in_order_and_times_the_first_call_apart():
  mesh = parallel.make_mesh()
  source = _source(21)
  step = jax.jit(lambda points: {"mean": points.mean(axis=(1, 2)), "first": points[:, 0]})
  (outputs, labels, mask), timer = pipeline.map_batches(
      lambda batch: (step(batch["points"]), batch["label"], batch["mask"]),
      pipeline.prefetch_to_device(pipeline.batches(
          source, global_batch_size=8, num_points=N, training=False, normalize_points=False), mesh),
      total=3, desc="test", counts=lambda i: {"clouds": min(8, 21 - 8 * i)})
  assert outputs["mean"].shape == (24,) and outputs["first"].shape == (24, 3) and mask.sum() == 21
  points = np.stack([e["points"][:N] for e in source])
  np.testing.assert_allclose(outputs["mean"][mask], points.mean(axis=(1, 2)), rtol=1e-5)
  np.testing.assert_array_equal(outputs["first"][mask], points[:, 0])
  np.testing.assert_array_equal(labels[mask], np.arange(21))
  assert timer.first_counts == {"clouds": 8} and timer.steady == {"clouds": 13}
  assert timer.compile_seconds is not None and timer.steady_seconds > 0
  with pytest.raises(ValueError, match="empty pass: no batches"):
    pipeline.map_batches(step, [], total=0, desc="empty pass", counts=lambda i: {})


def test_evaluation_batches_are_capped_to_the_data_and_rounded_to_the_devices():
  assert pipeline.eval_batch_size(1024, 7, devices=8) == 8
  assert pipeline.eval_batch_size(1024, 100, devices=8) == 104
  assert pipeline.eval_batch_size(16, 100, devices=1) == 16
  assert pipeline.eval_batch_size(10**9, 3, devices=2) == 4
