"""The 3D encoder (encoder=point_transformer) end to end: pre-training, zero-shot, GDPA, detection.

Exact resume after a kill (params, LAMB state and BatchNorm statistics),
zero-shot from its workdir with one feature per cloud, the GDPA's 3D path
trained on it and loaded back, and the config rules.
"""

import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from clip2point_jax import validation
from clip2point_jax.core import checkpoints
from clip2point_jax.data import pretrain_data, registry
from clip2point_jax.detection import classifiers
from clip2point_jax.errors import UserError
from clip2point_jax.features import text
from clip2point_jax.loading import classifier, depth_encoder, hf_clip, point_encoder
from clip2point_jax.projection import dual_path, encode as encode_lib, point_encode, preprocess
from clip2point_jax.projection import settings as render_settings
from clip2point_jax.tasks import detect, fewshot, pretrain, zeroshot
from clip2point_jax.training import loop, point_pretrain
from tests.conftest import set_fields, task_config
from tests.tasks import pretrain_fixtures as pf

POINT = {"encoder": "point_transformer", "optim.trainable": ("point_encoder/.*", "w")}
SETTINGS = {**POINT, "num_steps": 6, "log_every": 2, "checkpoint.every_steps": 4,
            "image_cache.dtype": "float32", "evals.downstream.data.name": ""}


@pytest.fixture(name="whole", scope="module")
def _whole(data_dir, clip_dir, tmp_path_factory):
  """An uninterrupted 6-step run, evaluated on the test split at its end."""
  workdir = str(tmp_path_factory.mktemp("point") / "whole")
  pretrain.run(pf.tiny_config(data_dir, clip_dir, **SETTINGS), workdir)
  return workdir


def _records(workdir):
  with open(os.path.join(workdir, loop.METRICS_FILE)) as f:
    return [json.loads(line) for line in f]


def _final(workdir, step):
  """The whole train state of a step, as numpy."""
  def everything(tree):
    return tree
  return checkpoints.read_part(os.path.join(workdir, "checkpoints", str(step)), everything,
                               name="test", kind="checkpoint", what="state")


def test_resume_after_a_kill_is_bit_identical(whole, data_dir, clip_dir, tmp_path, monkeypatch):
  records = [r for r in _records(whole) if "loss" in r]
  assert [r["step"] for r in records] == [2, 4, 6]
  assert [r["step"] for r in _records(whole) if "val_top1" in r] == [6]
  want = _final(whole, 6)
  assert set(want) == {"step", "params", "opt_state", "batch_stats"}
  assert set(want["params"]) == {"point_encoder", "w"} and float(want["params"]["w"]) != 1.0
  # Every BatchNorm's running statistics moved off flax's initial mean 0 / variance 1.
  stats = jax.tree_util.tree_flatten_with_path(want["batch_stats"])[0]
  means = [x for p, x in stats if p[-1].key == "mean"]
  variances = [x for p, x in stats if p[-1].key == "var"]
  assert len(means) == len(variances) == 15
  assert all(np.abs(m).max() > 0 for m in means) and max(np.abs(m).max() for m in means) > 0.05
  assert all(np.abs(v - 1).max() > 1e-3 for v in variances)

  original = pretrain_data.batches

  def killed_after_5(*args, **kwargs):
    for i, batch in enumerate(original(*args, **kwargs)):
      if i == 5:
        raise KeyboardInterrupt
      yield batch

  resumed = str(tmp_path / "resumed")
  no_evals = {**SETTINGS, "evals.val.data.name": ""}
  monkeypatch.setattr(pretrain_data, "batches", killed_after_5)
  with pytest.raises(KeyboardInterrupt):
    pretrain.run(pf.tiny_config(data_dir, clip_dir, **no_evals), resumed)
  monkeypatch.setattr(pretrain_data, "batches", original)
  assert sorted(int(s) for s in os.listdir(os.path.join(resumed, "checkpoints")) if s.isdigit()) == [4]
  pretrain.run(pf.tiny_config(data_dir, clip_dir, **no_evals), resumed)
  got = _final(resumed, 6)
  jax.tree.map(np.testing.assert_array_equal, got, want)
  strip = lambda rs: [{k: v for k, v in r.items() if "second" not in k} for r in rs if "loss" in r]
  assert strip(_records(resumed)) == strip(records)


def test_zero_shot_classifies_with_one_feature_per_cloud(whole, data_dir, clip_dir, tmp_path):
  config = pf.zeroshot_config(data_dir, clip_dir, depth_encoder=whole, num_grid_clouds=2)
  # The recorded CLIP is filled in; the render block is not the 3D encoder's to fix.
  with config.unlocked():
    config.clip.name = ""
    config.render.radius = 0.5
  result = zeroshot.run(config, str(tmp_path / "zs"))
  assert result["encoder"] == "point_transformer" and config.clip.name == clip_dir
  assert config.render.radius == 0.5
  assert not (tmp_path / "zs" / "depth_maps.png").exists()
  # The same logits by hand: the checkpoint's network on normalised clouds against the text features.
  model, variables = point_encoder.load(whole)
  assert model.blocks == (1, 2, 2) and model.embed_dim == 32
  stored = _final(whole, 6)
  jax.tree.map(np.testing.assert_array_equal, variables,
               {"params": stored["params"]["point_encoder"], "batch_stats": stored["batch_stats"]})
  source, class_names = registry.load_split("shapenet55", "test", data_dir)
  points = np.stack([source[i]["points"][:128] for i in range(len(source))])
  labels = np.array([source[i]["label"] for i in range(len(source))])
  features = jax.jit(model.apply)(variables, preprocess.prepare_points(
      jnp.asarray(points), jnp.ones(points.shape[:2], bool), False))
  features = features / jnp.linalg.norm(features, axis=-1, keepdims=True)
  names = text.class_text_features(hf_clip.load_clip(clip_dir, dtype=np.float32), class_names,
                                   ("image of a {}",))
  logits = np.asarray(features @ names.T)
  assert np.ptp(logits) > 1e-3
  np.testing.assert_allclose(result["top1_accuracy"], np.mean(logits.argmax(1) == labels))
  # classify's logits are those cosines.
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
  classify, params, text_features = classifier.load_classifier(config, class_names, mesh)
  np.testing.assert_allclose(np.asarray(classify(params, text_features, points)), logits,
                             rtol=1e-5, atol=1e-6)
  assert classifier.probability_scale(config, params) == pytest.approx(
      min(np.exp(float(params["logit_scale"])), 100.0))
  # The zero-shot evaluation during pre-training scored the same checkpoint the same way.
  evals = [r for r in _records(whole) if "val_top1" in r]
  assert evals[-1]["val_top1"] == pytest.approx(result["top1_accuracy"])
  assert int(os.path.basename(depth_encoder.find_step_dir(whole))) == 6


def test_the_gdpa_3d_path_trains_on_one_feature_per_cloud_and_loads_back(whole, data_dir, clip_dir,
                                                                          tmp_path):
  config = set_fields(task_config("fewshot", "dataset=shapenet55,tiny"), **{
      "depth_encoder": whole, "data.data_dir": data_dir, "data.num_points": 128,
      "render.image_size": 64, "render.radius": 0.06, "shots": 2, "epochs": 3, "batch_size": 4,
      "encode_batch_size": 8})
  result = fewshot.run(config, str(tmp_path / "fewshot"))
  assert config.clip.name == clip_dir  # the 3D encoder's CLIP, filled in
  run = result["per_seed"]["0"]
  assert run["steps"] == 3 * 2 and run["trainable_params"] == gdpa_3d_params(views=10, dim=32)
  # Path P: the 3D encoder's feature of the cloud, no views; path C: CLIP's ten views.
  paths = dual_path.load_frozen_paths(config.clip, whole, image_size=64)
  assert paths.point_path and not paths.shared
  render = render_settings.from_config(config.render, config.views)
  encode = jax.jit(dual_path.make_view_encoder(encode_lib.vision_encoder(paths.loaded), render,
                                               point_model=paths.point_model))
  source, class_names = registry.load_split("shapenet55", "test", data_dir)
  points = np.stack([source[i]["points"][:128] for i in range(len(source))])
  features = encode(paths.params, points)
  assert features["depth"].shape == (8, 1, 32) and features["clip"].shape == (8, 10, 32)
  np.testing.assert_allclose(np.asarray(features["depth"][:, 0]), np.asarray(jax.jit(
      lambda v, p: point_encode.cloud_features(paths.point_model, v, p))(paths.params["depth_encoder"],
                                                                         points)), rtol=1e-6)
  # Loaded back as a classifier (the 3D encoder again, live), it gives the run's test results.
  evaluation = pf.zeroshot_config(data_dir, clip_dir, gdpa=str(tmp_path / "fewshot"))
  again = zeroshot.run(evaluation, str(tmp_path / "eval"))
  assert again["confusion_matrix"] == run["confusion_matrix"]


def test_detection_classifies_the_crops_with_the_3d_encoder(whole, clip_dir, tmp_path):
  config = set_fields(task_config("detect", "dataset=synthetic,tiny"), depth_encoder=whole)
  result = detect.run(config, str(tmp_path / "detect"))
  assert config.clip.name == clip_dir and result["num_detections"] > 0
  assert 0.0 <= result["mAP@0.25"] <= 1.0
  # The crops' logits: CLIP's scale x the cosine of each crop's 3D feature with each prompt.
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
  names = ["chair", "table", "lamp"]
  classify = classifiers.build(config, names, mesh)
  rng = np.random.default_rng(3)
  crops = rng.normal(size=(8, 128, 3)).astype(np.float32)
  mask = np.ones((8, 128), bool)
  mask[2, 100:] = False
  crops[2, 100:] = 50.0  # padding far away: it must not count
  logits = np.asarray(classify(jnp.asarray(crops), jnp.asarray(mask)))
  model, variables = point_encoder.load(whole)
  loaded = hf_clip.load_configured(config.clip)  # the text tower as detection computes (bfloat16)
  prompts = text.class_text_features(loaded, names, tuple(config.prompts))
  turned = preprocess.align_modelnet(jnp.asarray(crops))  # z-up crops turned y-up
  one = lambda c: jax.jit(model.apply)(variables, preprocess.prepare_points(
      c, jnp.ones(c.shape[:2], bool), False))
  full = one(turned[np.array([0, 1, 3, 4, 5, 6, 7])])  # the crops without padding, in one compile
  features = np.concatenate([full[:2], one(turned[2:3, :100]), full[2:]])
  features /= np.linalg.norm(features, axis=-1, keepdims=True)
  scale = min(np.exp(float(loaded.params["logit_scale"])), 100.0)
  np.testing.assert_allclose(logits, scale * features @ np.asarray(prompts).T, rtol=1e-4, atol=1e-4)


def gdpa_3d_params(views, dim):
  """The GDPA's 3D path by hand: path P's adapter without view weights, path C's, the gate."""
  adapter = lambda inputs: 2 * 2 * dim + inputs * dim + dim + dim * dim + dim
  return adapter(dim) + views + adapter(views * dim) + 2 * dim * 2 + 2


def test_the_3d_encoder_config_rules():
  config = task_config("pretrain", "tiny,encoder=point_transformer")
  assert config.encoder == "point_transformer"
  assert tuple(config.optim.trainable) == ("point_encoder/.*", "w")
  validation.check_task(config)
  for field, value, message in (
      ("point_transformer.preset", "cls99", r"point_transformer.preset='cls99': use one of authors"),
      ("point_transformer.planes", (8, 16), r"must have one length"),
      ("point_transformer.augment.scale", (1.5, 1.0), r"augment.scale=\(1.5, 1.0\): give \(low, high\)"),
      ("data.num_points", 8, r"config.data.num_points=8: .* need at least 16 points"),
      ("encoder", "pointnet", r"config.encoder='pointnet': use one of depth, point_transformer")):
    bad = set_fields(task_config("pretrain", "tiny,encoder=point_transformer"), **{field: value})
    with pytest.raises(UserError, match=message):
      validation.check_task(bad)
  with pytest.raises(UserError, match="encoder='pointnet'; use depth or point_transformer"):
    task_config("pretrain", "encoder=pointnet")


def test_a_frozen_part_of_the_3d_encoder_is_refused():
  # --config.encoder=point_transformer alone keeps the depth encoder's trainable regexes.
  config = set_fields(task_config("pretrain", "tiny"), encoder="point_transformer")
  model = point_encoder.model_from_config(config.point_transformer, 16)
  with pytest.raises(UserError, match=r"leaves \d+ parameters of the Point Transformer frozen .* "
                                      r"e.g. point_encoder/enc1/"):
    point_pretrain.initial_variables(config, model)


def _augment_settings(**fields):
  block = task_config("pretrain", "tiny,encoder=point_transformer").point_transformer.augment
  return set_fields(ml_collections.ConfigDict(block.to_dict()), **fields)


def test_augmentations_scale_rotate_about_y_and_jitter():
  rng = np.random.default_rng(0)
  points = jnp.asarray(rng.normal(size=(64, 50, 3)).astype(np.float32))
  moved = np.asarray(point_pretrain.augment(jax.random.key(1), points,
                                            _augment_settings(jitter_sigma=0.0)))
  # Without jitter y is only scaled (the rotation is about y): one factor per cloud, in [2/3, 1.5).
  ratio = moved[..., 1] / np.asarray(points[..., 1])
  np.testing.assert_allclose(ratio, np.repeat(ratio[:, :1], ratio.shape[1], axis=1), rtol=1e-4)
  assert 2 / 3 <= ratio.min() and ratio.max() < 1.5 and np.ptp(ratio[:, 0]) > 0.3
  # Rotation about y: with unit scale the xz norms are kept and the xz directions turn.
  turned = np.asarray(point_pretrain.augment(jax.random.key(2), points,
                                             _augment_settings(scale=(1.0, 1.0), jitter_sigma=0.0)))
  np.testing.assert_allclose(np.linalg.norm(turned[..., [0, 2]], axis=-1),
                             np.linalg.norm(np.asarray(points)[..., [0, 2]], axis=-1), rtol=1e-5)
  np.testing.assert_array_equal(turned[..., 1], np.asarray(points[..., 1]))
  assert np.abs(turned - np.asarray(points)).max() > 0.5
  # Jitter: N(0, 0.01) clipped at 0.05, on the same scale and rotation (its own subkey).
  jittered = np.asarray(point_pretrain.augment(jax.random.key(1), points, _augment_settings()))
  noise = jittered - moved
  assert 0 < np.abs(noise).max() <= 0.05 + 1e-6 and 0.008 < noise.std() < 0.012
