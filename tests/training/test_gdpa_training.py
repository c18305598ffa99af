"""GDPA training pieces: cached == live steps, frozen parameters, sharding, batch order."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import ml_collections
import optax
import pytest

from clip2point_jax.core import parallel, rules
from clip2point_jax.features import view_features
from clip2point_jax.training import gdpa as training
from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.data import primitives, shots, splits
from clip2point_jax.errors import UserError
from clip2point_jax.models import gdpa
from clip2point_jax.projection import dual_path, encode as encode_lib, settings as render_settings
from renderers import cameras
from tests.conftest import LEGACY_DIR, leaf_stats, REPO_ROOT, run_with_fake_devices


def _config(**model):
  config = load_sibling(f"{REPO_ROOT}/configs/x.py", "fewshot").get_config("dataset=primitives,tiny")
  with config.unlocked():
    for key, value in model.items():
      config.model[key] = value
  return config


def test_resampled_batches_follow_the_cached_order_with_fresh_point_subsets():
  rng = np.random.default_rng(0)
  source = splits.ArraySource(rng.normal(size=(12, 64, 3)).astype(np.float32), np.arange(12, dtype=np.int32))
  subset = np.array([1, 3, 4, 6, 8, 9, 10, 11])
  orders = training.epoch_orders(subset, 4, seed=5, epochs=2)
  batches = list(training.resampled_batches(shots.SubsetSource(source, subset), batch_size=4,
                                            num_points=16, seed=5, start_step=0, num_steps=4))
  np.testing.assert_array_equal(np.stack([b["label"] for b in batches]), orders.reshape(4, 4))
  first = batches[0]
  for cloud, index in zip(first["points"], first["label"]):
    stored = {tuple(p) for p in source.points[index]}
    assert cloud.shape == (16, 3) and all(tuple(p) in stored for p in cloud)
  assert len({tuple(p) for p in first["points"][0]}) == 16  # without repeats
  resumed = next(training.resampled_batches(shots.SubsetSource(source, subset), batch_size=4,
                                            num_points=16, seed=5, start_step=2, num_steps=1))
  np.testing.assert_array_equal(resumed["points"], batches[2]["points"])


def test_resampling_all_stored_points_is_refused_unless_an_encoder_reads_their_order():
  source = splits.ArraySource(np.random.default_rng(1).normal(size=(3, 64, 3)).astype(np.float32),
                              np.arange(3, dtype=np.int32))
  assert training.check_resampling(source, 63) == 64
  with pytest.raises(UserError, match="num_points=64 takes them all"):
    training.check_resampling(source, 64)
  assert training.check_resampling(source, 64, order_matters=True) == 64  # a 3D encoder's FPS
  with pytest.raises(UserError, match="stores 64 points per cloud"):
    training.check_resampling(source, 65, order_matters=True)


VIEWS = cameras.VIEWS_PRETRAIN[4:6]  # two corner views keep the live step small


def _features_and_encoders(clip_dir, count=4):
  """Two different frozen encoders (CLIP and a perturbed copy as path P) and `count` clouds."""
  paths = dual_path.load_frozen_paths(ml_collections.ConfigDict(dict(
      name=clip_dir, dtype="float32", attention="auto", residual_dtype="float32")))
  depth = jax.tree.map(lambda x: x * 1.1 + 0.01, paths.params["clip_encoder"])
  encoders = {"depth_encoder": depth, "clip_encoder": paths.params["clip_encoder"]}
  encode = dual_path.make_view_encoder(encode_lib.vision_encoder(paths.loaded),
                                       render_settings.RenderSettings(views=VIEWS))
  points, labels = primitives.generate(1, 256, seed=5)
  return paths, encoders, encode, points[:count], labels[:count]


def test_cached_training_equals_live_training_and_frozen_parameters_stay_bit_identical(tiny_clip_dir):
  paths, encoders, encode, points, labels = _features_and_encoders(tiny_clip_dir)
  mesh = parallel.make_mesh()
  encoders = jax.device_put(encoders, parallel.replicated(mesh))
  timing = {}
  cached = view_features.compute(jax.jit(encode), encoders, splits.ArraySource(points, labels),
                                 mesh=mesh, batch_size=4, num_points=256, timing=timing)
  # One batch: its rate is the whole pass's, compiling included, and says so.
  assert timing["num_clouds"] == 4 and timing["compile_seconds"] > 0 and timing["clouds_per_second"] > 0
  assert "compiling included" in timing["clouds_per_second_note"]
  assert not np.allclose(cached["depth"], cached["clip"])  # two paths, two encoders
  data = training.to_device(cached, mesh)

  config = _config(dropout=0.0)
  with config.unlocked():
    config.optim.trainable = ("adapter_.*",)  # the gate stays frozen
  model = gdpa.from_config(config.model, len(VIEWS))
  shapes = jax.eval_shape(lambda: gdpa.init_variables(model, jax.random.key(0), len(VIEWS), paths.feature_dim))
  trainable_shapes, _ = rules.split(shapes["params"], config.optim.trainable)
  text = jnp.asarray(np.linalg.qr(np.random.default_rng(0).normal(size=(32, 8)))[0].T, jnp.float32)
  order = jnp.arange(len(labels), dtype=jnp.int32)

  # One SGD step each way: plain gradients, so float noise cannot flip Adam's signs.
  sgd = optax.sgd(0.5)
  sgd_steps = training.make_steps(model, sgd, mesh, encode)
  init = lambda tx: training.init_state(model, tx, mesh, seed=3, num_views=len(VIEWS),
                                        features=paths.feature_dim, trainable_patterns=config.optim.trainable)
  state_a, frozen_gdpa = init(sgd)
  state_b, _ = init(sgd)
  state_a, metrics_a = sgd_steps["cached"](state_a, frozen_gdpa, text, data, order)
  state_b, metrics_b = sgd_steps["live"](state_b, frozen_gdpa, text, encoders, jnp.asarray(points),
                                         jnp.asarray(labels))
  np.testing.assert_allclose(metrics_a["loss"], metrics_b["loss"], rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               (state_a["params"], state_a["batch_stats"]), (state_b["params"], state_b["batch_stats"]))
  assert "gate" not in state_a["params"] and "gate" in frozen_gdpa

  # Frozen: the encoders and the GDPA's frozen gate stay bit-identical through training.
  before = jax.device_get((encoders, frozen_gdpa, state_b["params"]))
  for _ in range(2):
    state_b, _ = sgd_steps["live"](state_b, frozen_gdpa, text, encoders, jnp.asarray(points),
                                   jnp.asarray(labels))
  after = jax.device_get((encoders, frozen_gdpa, state_b["params"]))
  jax.tree.map(np.testing.assert_array_equal, after[:2], before[:2])
  assert not np.array_equal(after[2]["adapter_depth"]["fc1"]["kernel"], before[2]["adapter_depth"]["fc1"]["kernel"])
  # Frozen parameters get no optimiser state: AdamW keeps two moments per trainable scalar only.
  tx = training.make_optimizer(config, trainable_shapes)
  adam_state, _ = jax.eval_shape(lambda: init(tx))
  moments = sum(x.size for x in jax.tree.leaves(adam_state["opt_state"]) if x.ndim)
  assert moments == 2 * gdpa.count_params(trainable_shapes)


def _synthetic_training(devices, steps: int = 2):
  """Two cached SGD steps on synthetic features over a mesh of `devices`: (params, batch_stats)."""
  config = _config(dropout=0.0)
  mesh = parallel.make_mesh(devices)
  # SGD: biases ahead of a BatchNorm have a true gradient of zero, and Adam would blow
  # their float noise (which differs with the reduction order) up to lr-sized steps.
  model, _, _ = training.build(config, 16)
  tx = optax.sgd(0.1)
  rng = np.random.default_rng(0)
  features = {"clip": rng.normal(size=(40, 10, 16)).astype(np.float32),
              "depth": rng.normal(size=(40, 10, 16)).astype(np.float32),
              "label": rng.integers(0, 5, 40).astype(np.int32)}
  data = training.to_device(features, mesh)
  text = jnp.asarray(np.linalg.qr(rng.normal(size=(16, 5)))[0].T, jnp.float32)
  orders = jax.device_put(training.epoch_orders(np.arange(40), 16, seed=1, epochs=1), parallel.replicated(mesh))
  variables = gdpa.init_variables(model, jax.random.key(1), 10, 16)  # eager: no compile per mesh
  trainable, frozen = rules.split(variables["params"], config.optim.trainable)
  state = {"step": jnp.zeros((), jnp.int32), "seed": jnp.asarray(1, jnp.int32), "params": trainable,
           "batch_stats": variables["batch_stats"], "opt_state": tx.init(trainable)}
  state, frozen = jax.device_put((state, frozen), parallel.replicated(mesh))
  step = training.make_steps(model, tx, mesh)
  for i in range(steps):
    state, _ = step["cached"](state, frozen, text, data, orders[0, i])
  return jax.device_get((state["params"], state["batch_stats"]))


def test_training_sharded_over_8_devices_matches_one_device():
  # A batch of 16 over 8 devices: BatchNorm statistics must still be the global batch's.
  run_with_fake_devices("""
    import jax, numpy as np
    from tests.training.test_gdpa_training import _synthetic_training
    assert jax.device_count() == 8
    one, eight = _synthetic_training(jax.devices()[:1]), _synthetic_training(jax.devices())
    for a, b in zip(jax.tree.leaves(eight), jax.tree.leaves(one), strict=True):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
  """)


def test_an_epoch_in_one_scan_takes_the_same_steps_as_one_call_per_step():
  # The task's cached path: AdamW and dropout (keyed by the step), BatchNorm's statistics.
  config = _config()
  assert config.model.dropout > 0
  model, tx, _ = training.build(config, 16)
  mesh = parallel.make_mesh()
  rng = np.random.default_rng(3)
  data = training.to_device({"clip": rng.normal(size=(24, 10, 16)).astype(np.float32),
                             "depth": rng.normal(size=(24, 10, 16)).astype(np.float32),
                             "label": rng.integers(0, 4, 24).astype(np.int32)}, mesh)
  text = jnp.asarray(np.linalg.qr(rng.normal(size=(16, 4)))[0].T, jnp.float32)
  orders = jax.device_put(training.epoch_orders(np.arange(24), 8, seed=2, epochs=2), parallel.replicated(mesh))
  steps = training.make_steps(model, tx, mesh)
  init = lambda: training.init_state(model, tx, mesh, seed=4, num_views=10, features=16,
                                     trainable_patterns=config.optim.trainable)
  state, frozen = init()
  per_step = []
  for epoch in range(2):
    for i in range(orders.shape[1]):
      state, metrics = steps["cached"](state, frozen, text, data, orders[epoch, i])
      per_step.append(jax.device_get(metrics))
  scanned_state, frozen = init()
  scanned = []
  for epoch in range(2):
    scanned_state, metrics = steps["cached_epoch"](scanned_state, frozen, text, data, orders[epoch])
    scanned.append(jax.device_get(metrics))
  assert int(scanned_state["step"]) == int(state["step"]) == 6
  np.testing.assert_allclose(np.concatenate([m["loss"] for m in scanned]), [m["loss"] for m in per_step],
                             rtol=1e-6)
  np.testing.assert_array_equal(np.concatenate([m["correct"] for m in scanned]),
                                [m["correct"] for m in per_step])
  for got, want in zip(jax.tree.leaves(jax.device_get(scanned_state)), jax.tree.leaves(jax.device_get(state)),
                       strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


LEGACY = os.path.join(LEGACY_DIR, "reference.npz")


def test_one_cached_step_matches_the_one_a89c44e_took():
  # tests/fixtures/make_legacy_a89c44e.py's gdpa_step_reference: the tiny few-shot
  # config on 4 views, 32-d synthetic features, seed 0, one AdamW step.
  ref = np.load(LEGACY)
  config = _config()
  with config.unlocked():
    config.views = tuple(cameras.VIEWS_PRETRAIN[:4])
  model, tx, _ = training.build(config, 32)
  mesh = parallel.make_mesh()
  state, frozen = training.init_state(model, tx, mesh, seed=0, num_views=4, features=32,
                                      trainable_patterns=config.optim.trainable)
  data = {k: jnp.asarray(ref[f"gdpa/data/{k}"]) for k in ("depth", "clip", "label")}
  text = jnp.asarray(ref["gdpa/text"])
  steps = training.make_steps(model, tx, mesh)
  state, metrics = steps["cached"](state, frozen, text, data, jnp.asarray(ref["gdpa/indices"]))
  np.testing.assert_allclose(metrics["loss"], ref["gdpa/metrics/loss"], rtol=1e-6)
  assert int(metrics["correct"]) == int(ref["gdpa/metrics/correct"])
  stats = {**leaf_stats(state["params"], "gdpa/params"),
           **leaf_stats(state["batch_stats"], "gdpa/batch_stats")}
  assert set(stats) == {k for k in ref.files if k.startswith(("gdpa/params/", "gdpa/batch_stats/"))}
  for name, value in stats.items():
    np.testing.assert_allclose(value, ref[name], rtol=1e-5, atol=1e-6, err_msg=name)
  logits = steps["predict"](training.variables_of(state, frozen), text, data, jnp.arange(16, dtype=jnp.int32))
  np.testing.assert_allclose(np.asarray(logits), ref["gdpa/predict"], rtol=1e-5, atol=1e-6)
