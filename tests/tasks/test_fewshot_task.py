"""GDPA few-shot / fine-tuning: training on the built-in shapes, cached == live, checkpoints."""

import glob
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tqdm

from clip2point_jax.core import parallel
from clip2point_jax.core.config_args import load_sibling
from clip2point_jax.data import primitives, splits
from clip2point_jax.errors import UserError
from clip2point_jax.features import view_features
from clip2point_jax.loading import classifier, depth_encoder, trained_gdpa
from clip2point_jax.models import clip
from clip2point_jax.projection import dual_path, encode as encode_lib
from clip2point_jax.projection import settings as render_settings
from clip2point_jax.tasks import fewshot
from clip2point_jax.training import gdpa as training, loop
from renderers import cameras
from tests.conftest import set_fields

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPO, "configs")
# The GDPA on the tiny CLIP (32-d features, 10 views): 2 x 11,466 adapter + 130 gate parameters.
TINY_TRAINABLE = 23_062


def _config(name, arg):
  return load_sibling(os.path.join(CONFIGS, "x.py"), name).get_config(arg)


def _tiny(clip_dir, data_dir, **overrides):
  config = _config("fewshot", "dataset=primitives,tiny")
  with config.unlocked():
    config.clip.name = clip_dir
    config.data.data_dir = data_dir
    # Few-shot reads the clouds only: the shapes' RGB views (three quarters of preparing them)
    # are left out. tests/tasks/test_demo.py prepares the preset's shapes with their views.
    config.data.primitives.render_images = False
  return set_fields(config, **overrides)


@pytest.fixture(scope="module")
def trained(tiny_clip_dir, tmp_path_factory):
  """One 16-shot run on the built-in shapes (16 train / 8 test clouds per class).

  float32, so live and cached logits can be compared to float32 rounding.
  """
  root = tmp_path_factory.mktemp("fewshot")
  config = _tiny(tiny_clip_dir, str(root / "tfds"), **{"clip.dtype": "float32"})
  workdir = str(root / "run")
  return config, workdir, fewshot.run(config, workdir)


def test_training_on_the_built_in_shapes_beats_chance(trained, capsys):
  config, workdir, result = trained
  top1 = result["aggregate"]["top1_accuracy"]["mean"]
  print(f"GDPA 16-shot on the built-in shapes with the random tiny CLIP: test top-1 {100 * top1:.1f}% "
        "(chance 12.5%)")
  assert top1 >= 0.30  # 2.4x chance; 45% when written
  run = result["per_seed"]["0"]
  assert run["num_train"] == 128 and run["num_examples"] == 64 and run["steps"] == 100 * 16
  assert np.asarray(run["confusion_matrix"]).sum(1).tolist() == [8] * 8
  assert set(run["per_class_accuracy"]) == set(primitives.CLASS_NAMES)
  assert result["trainable_params"] == TINY_TRAINABLE and result["model_selection"] == "final epoch"
  assert len(run["curves"]["loss"]) == 100 and run["curves"]["loss"][-1][1] < run["curves"]["loss"][0][1]
  written = json.loads(open(os.path.join(workdir, "metrics.json")).read())
  assert written["aggregate"]["top1_accuracy"]["mean"] == top1
  # Throughput (issue #26): the first epoch apart, steady rates over the 99 after it.
  speed = written["per_seed"]["0"]["train_throughput"]
  assert speed["compile_seconds"] > 0 and speed["epochs_per_second"] > 0
  assert speed["steps_per_second"] == pytest.approx(16 * speed["epochs_per_second"])
  assert speed["samples_per_second"] == pytest.approx(128 * speed["epochs_per_second"])
  assert written["aggregate"]["train_throughput"] == speed  # one seed
  for role, clouds in (("train", 128), ("test", 64)):  # computed here, in batches of 16
    cache = written["feature_cache"][role]
    assert cache["cached"] is False and cache["num_clouds"] == clouds, cache
    assert cache["compile_seconds"] > 0 and cache["clouds_per_second"] > 0 and cache["seconds"] > 0
    assert "clouds_per_second_note" not in cache
  for name in ("confusion_matrix.png", "learning_curves.png", "seed_0/gdpa.json"):
    assert os.path.getsize(os.path.join(workdir, name)) > 0, name
  assert glob.glob(os.path.join(workdir, "seed_0", "checkpoints", "1600", "state"))


def test_the_checkpoint_gives_the_reported_accuracy_and_live_logits_match_cached(trained):
  config, workdir, result = trained
  mesh = parallel.make_mesh()
  model, variables, description, _ = trained_gdpa.load(workdir, mesh)
  assert description["class_names"] == list(primitives.CLASS_NAMES)
  cache = {os.path.basename(p)[:-4]: np.load(p)
           for p in glob.glob(os.path.join(workdir, "feature_cache", "primitives-test-*", "*.npy"))}
  assert set(cache) == {"clip", "label"}  # shared weights: one set of features for both paths

  # What `configs/zeroshot.py --config.gdpa=...` and `configs/classify.py` load.
  classifier_config = _config("classify", "")
  with classifier_config.unlocked():
    classifier_config.gdpa = workdir
  classify, params, text = classifier.load_classifier(classifier_config, primitives.CLASS_NAMES, mesh)
  assert len(classifier_config.views) == 10 and classifier_config.render.radius == config.render.radius
  assert classifier_config.clip.name == config.clip.name
  cached_logits = jax.jit(model.apply)(variables, cache["clip"], cache["clip"], text)
  accuracy = np.mean(np.asarray(cached_logits).argmax(-1) == cache["label"])
  assert accuracy == result["per_seed"]["0"]["top1_accuracy"]

  source, _ = splits.load(config.data, "test", workdir)
  points = np.stack([source[i]["points"][:config.data.num_points] for i in range(4)])
  live_logits = classify(params, text, jnp.asarray(points))
  np.testing.assert_allclose(np.asarray(live_logits), np.asarray(cached_logits[:4]), atol=2e-5)


class _Interrupt(Exception):
  pass


def test_validation_split_exact_resume_and_refusal_of_other_settings(trained, tmp_path, capsys, monkeypatch):
  config, workdir, _ = trained
  # The trained run's features (same identity): no caching pass, and the same compiled steps.
  small = _tiny(config.clip.name, config.data.data_dir, cache_dir=os.path.join(workdir, "feature_cache"),
                shots=2, epochs=3, val_fraction=0.25, checkpoint_every_epochs=1,
                **{"clip.dtype": config.clip.dtype})
  result = fewshot.run(small, str(tmp_path / "whole"))
  assert capsys.readouterr().out.count("using cached") == 2
  assert result["feature_cache"] == {"train": {"cached": True}, "test": {"cached": True}}
  seed = result["per_seed"]["0"]
  assert seed["num_train"] == 16 and seed["num_val"] == 32 and seed["steps"] == 3 * 2
  best = seed["best_val_epoch"]
  assert best["epoch"] in (1, 2, 3) and 0.0 <= best["test_top1_accuracy"] <= 1.0
  assert "validation" in best["note"] and len(seed["curves"]["val_top1"]) == 3
  assert "test_top1_at_best_val_epoch" in result["aggregate"]

  # Interrupted during epoch 3, resumed from epoch 2's checkpoint: the same run exactly.
  real_progress = loop.progress

  class Interrupting(tqdm.tqdm):
    def __iter__(self):
      for epoch in super().__iter__():
        if epoch == 2:
          raise _Interrupt
        yield epoch

  monkeypatch.setattr(loop, "progress", lambda **kwargs: Interrupting(**kwargs))
  with pytest.raises(_Interrupt):
    fewshot.run(small, str(tmp_path / "resumed"))
  monkeypatch.setattr(loop, "progress", real_progress)
  resumed = fewshot.run(small, str(tmp_path / "resumed"))["per_seed"]["0"]
  for key in ("confusion_matrix", "best_val_epoch", "steps"):
    assert resumed[key] == seed[key], key
  np.testing.assert_allclose(np.asarray(resumed["curves"]["loss"]), np.asarray(seed["curves"]["loss"]), rtol=1e-6)

  # The same workdir with other settings: the checkpoint is restored, then refused.
  with small.unlocked():
    small.epochs = 7
  with pytest.raises(UserError, match="epochs: 3 there, 7 now"):
    fewshot.run(small, str(tmp_path / "whole"))


def test_augmented_training_runs_on_live_renders_and_records_every_epoch(trained, tmp_path):
  config, workdir, _ = trained
  # 256 of the 512 stored points: every step renders other subsets than the cache's first 256.
  small = _tiny(config.clip.name, config.data.data_dir, cache_dir=os.path.join(workdir, "feature_cache"),
                shots=4, epochs=2, batch_size=8, augment=True,
                **{"clip.dtype": config.clip.dtype, "data.num_points": 256})
  seed = fewshot.run(small, str(tmp_path / "live"))["per_seed"]["0"]
  assert seed["num_train"] == 32 and seed["steps"] == 2 * 4
  losses = [loss for _, loss in seed["curves"]["loss"]]
  accuracies = [top1 for _, top1 in seed["curves"]["train_top1"]]
  assert [e for e, _ in seed["curves"]["loss"]] == [1, 2] and all(np.isfinite(losses))
  assert all(0 <= a <= 1 and (a * 32) == round(a * 32) for a in accuracies), accuracies  # correct / 32 samples
  # The re-rendered clouds are what trains: the same run on the cache learns otherwise, and a
  # repeat of the augmented run (its subsets drawn from the seed and step) learns the same.
  again = fewshot.run(small, str(tmp_path / "live_again"))["per_seed"]["0"]
  assert again["curves"]["loss"] == seed["curves"]["loss"]
  with small.unlocked():
    small.augment = False
  cached = fewshot.run(small, str(tmp_path / "cached"))["per_seed"]["0"]
  # Beyond rounding: a path that fused its ops otherwise would differ in the last digits.
  assert np.abs(np.asarray([loss for _, loss in cached["curves"]["loss"]]) - losses).max() > 1e-4


def test_augmenting_with_every_stored_point_is_refused_before_any_work(trained, tmp_path):
  """Subsets of all 512 stored points are the clouds reordered: the same maps, no augmentation."""
  config, workdir, _ = trained
  small = _tiny(config.clip.name, config.data.data_dir, cache_dir=str(tmp_path / "cache"),
                shots=4, epochs=1, batch_size=8, augment=True)
  with pytest.raises(UserError, match="config.data.num_points=512 takes them all"):
    fewshot.run(small, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "cache")  # refused before the caching pass


def test_shots_and_batches_beyond_the_data_are_reported_as_used(trained, tmp_path, capsys, monkeypatch):
  config, workdir, _ = trained
  # 20 shots of classes with 16 training clouds each, batches far beyond the data.
  small = _tiny(config.clip.name, config.data.data_dir, cache_dir=os.path.join(workdir, "feature_cache"),
                shots=20, epochs=1, seeds=(0, 1), batch_size=100_000, eval_batch_size=10**7,
                **{"clip.dtype": config.clip.dtype})
  chunks = []
  real_evaluate = training.evaluate
  monkeypatch.setattr(training, "evaluate", lambda *a: chunks.append(a[-1]) or real_evaluate(*a))
  result = fewshot.run(small, str(tmp_path / "short"))
  out = capsys.readouterr().out
  assert out.count("warning: 20-shot: 8 of 8 classes have fewer training clouds") == 1
  assert out.count("warning: config.batch_size=100000, but the training set has 128 clouds: each step "
                   "trains on 128") == 1
  assert result["shots_label"] == "20-shot (min 16 / max 16 per class)" and result["shots"] == 20
  assert result["shots_per_class"] == {name: 16 for name in primitives.CLASS_NAMES}
  assert "GDPA 20-shot (min 16 / max 16 per class) primitives" in out
  assert [r["batch_size"] for r in result["per_seed"].values()] == [128, 128]
  assert set(chunks) == {128}  # the test split (64) and train (128) bound the evaluation batch
  written = json.loads(open(os.path.join(str(tmp_path / "short"), "metrics.json")).read())
  assert written["per_seed"]["1"]["shots_per_class"]["box"] == 16
  # One epoch: its time is the compile figure, and no steady rate is made up.
  speeds = [r["train_throughput"] for r in written["per_seed"].values()]
  assert all(t["compile_seconds"] > 0 and t["steps_per_second"] is None for t in speeds)
  assert written["aggregate"]["train_throughput"] == {
      "compile_seconds": speeds[0]["compile_seconds"], "steps_per_second": None,
      "samples_per_second": None, "epochs_per_second": None}

  # The caching pass encodes no bigger batches than the split has clouds.
  batch_sizes = []

  def stop(*args, batch_size, **kwargs):
    batch_sizes.append(batch_size)
    raise _Interrupt

  monkeypatch.setattr(view_features, "compute", stop)
  with pytest.raises(_Interrupt):
    fewshot.run(set_fields(small, cache_dir=str(tmp_path / "fresh_cache"), encode_batch_size=10**6),
                str(tmp_path / "encode"))
  assert batch_sizes == [128]


def test_path_p_takes_a_pretrained_depth_encoder(tiny_clip_dir, tmp_path):
  clip_config = _tiny(tiny_clip_dir, str(tmp_path)).clip
  plain = dual_path.load_frozen_paths(clip_config)
  assert plain.shared
  trained = jax.tree.map(lambda x: np.asarray(x) * 1.01, clip.vision_params(plain.loaded.params))
  encoder_dir = depth_encoder.save(str(tmp_path / "encoder"), trained)
  paths = dual_path.load_frozen_paths(clip_config, encoder_dir)
  assert not paths.shared and paths.fingerprints["clip_encoder"] == plain.fingerprints["clip_encoder"]
  np.testing.assert_allclose(paths.params["depth_encoder"]["visual_projection"]["kernel"],
                             trained["visual_projection"]["kernel"], rtol=1e-6)
  with pytest.raises(UserError, match="no/such/pretrain"):
    dual_path.load_frozen_paths(clip_config, str(tmp_path / "no/such/pretrain"))


def test_bad_settings_and_configs(tmp_path):
  for overrides, message in (({"shots": -1}, "config.shots=-1: must be at least 0"),
                             ({"seeds": ()}, r"config.seeds=\(\): is empty"),
                             ({"data.name": "files"}, "no train/test splits")):
    with pytest.raises(UserError, match=message):
      fewshot.run(_tiny("/no/clip", str(tmp_path), **overrides), str(tmp_path / "run"))
  few = _config("fewshot", "dataset=modelnet40,shots=16")
  assert few.shots == 16 and len(few.views) == 10 and few.data.align_modelnet and len(few.seeds) > 1
  assert (few.optim.learning_rate, few.optim.weight_decay, few.batch_size, few.epochs) == (1e-3, 1e-4, 32, 100)
  assert few.model.fusion == "gate" and few.model.dropout == 0.075 and few.render.distance == 1.0
  for name in ("modelnet40", "modelnet10", "scanobjectnn_objbg", "scanobjectnn_objonly",
               "scanobjectnn_pb_t50_rs"):
    fine = _config("finetune", f"dataset={name}")
    assert fine.task == "finetune" and fine.shots == 0 and fine.data.name == name
    assert fine.data.align_modelnet == name.startswith("modelnet")
  assert _config("finetune", "dataset=modelnet10,tiny").data.num_points == 512


def test_detection_with_the_trained_gdpa_and_with_a_depth_encoder(trained, tmp_path, capsys):
  """The detection issue's last step: a GDPA trained on the built-in shapes
  classifies box proposals in synthetic scenes; its mAP is reported as it is."""
  from clip2point_jax.detection import synthetic
  from clip2point_jax.tasks import detect
  config, workdir, _ = trained
  detect_config = _config("detect", "dataset=synthetic,tiny")
  options = dict(detect_config.data.synthetic)
  scenes = str(tmp_path / "scenes")
  synthetic.write_scene_folder(scenes, options.pop("num_scenes"), seed=1, **options)
  with detect_config.unlocked():
    detect_config.data.scans_dir = scenes
    detect_config.classifier.kind = "gdpa"
    detect_config.classifier.checkpoint = workdir
  result = detect.run(detect_config, str(tmp_path / "gdpa"))
  assert 0.0 <= result["mAP@0.25"] <= 1.0 and result["num_detections"] > 0
  assert "mAP" in capsys.readouterr().out

  # Zero-shot detection through a pre-trained depth encoder.
  paths = dual_path.load_frozen_paths(config.clip)
  encoder_dir = depth_encoder.save(str(tmp_path / "encoder"), clip.vision_params(paths.loaded.params))
  with detect_config.unlocked():
    detect_config.classifier.kind = "zeroshot"
    detect_config.clip.name = config.clip.name
    detect_config.depth_encoder = encoder_dir
    detect_config.batch_size = 64  # every crop in one batch
  result = detect.run(detect_config, str(tmp_path / "zeroshot"))
  assert 0.0 <= result["mAP@0.25"] <= 1.0
  # One batch of crops: its rate is the whole pass's, compiling included, and says so.
  assert result["compile_seconds"] > 0 and "compiling included" in result["crops_per_second_note"]
  assert result["crops_per_second"] == result["crops_per_second_overall"] > 0


def test_soft_perspective_rendering_reaches_the_cache_and_the_trained_classifier(tiny_clip_dir, tmp_path):
  views = tuple(cameras.VIEWS_PRETRAIN[:2])
  config = _tiny(tiny_clip_dir, str(tmp_path / "tfds"), shots=1, epochs=1, views=views,
                 **{"clip.dtype": "float32", "render.mode": "soft", "render.camera": "perspective",
                    "render.fov": 50.0, "data.primitives.num_per_class_train": 2,
                    "data.primitives.num_per_class_test": 1,
                    # A frozen gate: the checkpoint's "frozen" subtree is not empty.
                    "optim.trainable": ("adapter_.*",)})
  workdir = str(tmp_path / "run")
  result = fewshot.run(config, workdir)
  run = result["per_seed"]["0"]
  assert run["num_train"] == 8 and run["num_examples"] == 8 and run["steps"] == 1
  description = trained_gdpa.read_description(workdir)
  assert description["run"]["render"]["mode"] == "soft"
  assert description["run"]["render"]["camera"] == "perspective"

  # The cached features are those of soft perspective views, not CLIP2Point's hard orthographic ones.
  cache = {os.path.basename(p)[:-4]: np.load(p)
           for p in glob.glob(os.path.join(workdir, "feature_cache", "primitives-test-*", "*.npy"))}
  source, _ = splits.load(config.data, "test", workdir)
  points = jnp.asarray(np.stack([source[i]["points"][:config.data.num_points] for i in range(2)]))
  paths = dual_path.load_frozen_paths(config.clip)
  tower = encode_lib.vision_encoder(paths.loaded)
  soft = render_settings.from_config(config.render, views)
  # Jitted: run eagerly, every op of the tower and the renderer would compile on its own.
  features = jax.jit(lambda p, x: encode_lib.points_to_features(tower, p, x, soft))(
      paths.params["clip_encoder"], points)
  np.testing.assert_allclose(np.asarray(features), cache["clip"][:2], atol=2e-5)
  hard_settings = render_settings.RenderSettings(views=views, radius=config.render.radius)
  hard = jax.jit(lambda p, x: encode_lib.points_to_features(tower, p, x, hard_settings))(
      paths.params["clip_encoder"], points)
  assert not np.allclose(np.asarray(hard), cache["clip"][:2], atol=1e-3)

  # The trained classifier renders as it was trained, whatever the evaluation config says.
  classifier_config = _config("classify", "")
  with classifier_config.unlocked():
    classifier_config.gdpa = workdir
  classify, params, text = classifier.load_classifier(classifier_config, primitives.CLASS_NAMES,
                                                      parallel.make_mesh())
  assert classifier_config.render.mode == "soft" and classifier_config.render.fov == 50.0
  model, variables, _, _ = trained_gdpa.load(workdir, parallel.make_mesh())
  assert set(variables["params"]) == {"adapter_depth", "adapter_clip", "gate"}
  cached_logits = model.apply(variables, cache["clip"][:2], cache["clip"][:2], text)
  np.testing.assert_allclose(np.asarray(classify(params, text, points)), np.asarray(cached_logits), atol=2e-5)


def test_loading_a_trained_gdpa_builds_no_optimiser():
  # trained_gdpa restores into shapes the checkpoint records: nothing of training/ or optax.
  code = ("import sys; import clip2point_jax.loading.trained_gdpa; "
          "print(sorted(m for m in sys.modules if m == 'optax' or m.startswith('clip2point_jax.training')))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                        env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[]"


# The linear probe on the tiny CLIP's 32-d features of path C alone: 32 x 8 + 8.
TINY_PROBE_TRAINABLE = 264


@pytest.fixture(scope="module")
def probes(trained):
  """The linear probe, 16-shot, on two projections: CLIP2Point's hard views (the
  trained GDPA's cached features) and PointCLIP's six views (cached anew)."""
  config, workdir, _ = trained
  root = os.path.dirname(workdir)
  runs = {}
  for mode, views, cache in (("hard", config.views, os.path.join(workdir, "feature_cache")),
                             ("pointclip", render_settings.MODE_VIEWS["pointclip"], "")):
    probe = _tiny(config.clip.name, config.data.data_dir, cache_dir=cache, views=tuple(views),
                  **{"clip.dtype": config.clip.dtype, "model.kind": "linear_probe", "render.mode": mode})
    probe_dir = os.path.join(root, f"probe_{mode}")
    runs[mode] = probe, probe_dir, fewshot.run(probe, probe_dir)
  return runs


def test_the_linear_probe_trains_on_two_projections_and_records_its_kind(probes):
  # Measured on 2 CPU cores: hard 40.6%, pointclip 28.1% (chance 12.5%).
  for mode, floor in (("hard", 0.25), ("pointclip", 0.125)):
    _, probe_dir, result = probes[mode]
    top1 = result["aggregate"]["top1_accuracy"]["mean"]
    print(f"linear probe 16-shot, render.mode={mode}: test top-1 {100 * top1:.1f}% (chance 12.5%)")
    assert top1 > floor, mode
    written = json.load(open(os.path.join(probe_dir, "metrics.json")))
    assert (written["model_kind"], written["render_mode"], written["fusion"]) == ("linear_probe", mode, None)
    assert written["trainable_params"] == TINY_PROBE_TRAINABLE
    assert written["per_seed"]["0"]["steps"] == 100 * 16
    description = trained_gdpa.read_description(probe_dir)
    assert description["config"]["model"]["kind"] == "linear_probe"
    assert description["run"]["model"]["kind"] == "linear_probe"
    assert len(description["config"]["views"]) == (10 if mode == "hard" else 6)


def test_a_trained_linear_probe_loads_back_for_zero_shot_evaluation(probes, tmp_path):
  from clip2point_jax.tasks import zeroshot
  config, probe_dir, result = probes["hard"]
  mesh = parallel.make_mesh()
  model, variables, _, _ = trained_gdpa.load(probe_dir, mesh)
  assert set(variables["params"]) == {"adapter_probe"} and not variables["batch_stats"]

  # `configs/zeroshot.py --config.gdpa=<workdir>` gives the accuracy the run reported.
  evaluation = _config("zeroshot", "dataset=primitives,tiny")
  set_fields(evaluation, gdpa=probe_dir, num_grid_clouds=0, **{"data.data_dir": config.data.data_dir,
             "data.num_points": config.data.num_points, "data.primitives": config.data.primitives})
  evaluated = zeroshot.run(evaluation, str(tmp_path / "eval"))
  assert evaluated["confusion_matrix"] == result["per_seed"]["0"]["confusion_matrix"]

  # Class names by name, in any order: the probe's own columns; unknown classes are refused.
  classifier_config = _config("classify", "")
  set_fields(classifier_config, gdpa=probe_dir)
  names = list(primitives.CLASS_NAMES)
  classify, params, text = classifier.load_classifier(classifier_config, names, mesh)
  source, _ = splits.load(config.data, "test", probe_dir)
  points = jnp.asarray(np.stack([source[i]["points"][:config.data.num_points] for i in range(3)]))
  every = np.asarray(classify(params, text, points))
  picked = [names[5], names[0], names[2]]
  classify, params, text = classifier.load_classifier(classifier_config, picked, mesh)
  assert text.shape[0] == 3
  np.testing.assert_allclose(np.asarray(classify(params, text, points)), every[:, [5, 0, 2]], atol=1e-6)
  with pytest.raises(UserError, match="linear probe classifies only into the 8 classes.*'chair'"):
    classifier.load_classifier(classifier_config, names[:2] + ["chair"], mesh)
