"""Pre-training end to end on a tiny ShapeNet-55 release with renderings.

Exact resume after a kill, the loss going down, NaN stopping with the last
good checkpoint kept, evaluation and model selection, zero-shot with the
trained encoder, cached against live image features, stale caches refused.
"""

import json
import os
import shutil
import threading

import jax
import numpy as np
import pytest

from clip2point_jax.core import rules
from clip2point_jax.data import pretrain_data, registry
from clip2point_jax.errors import UserError
from clip2point_jax.features import image_features
from clip2point_jax.loading import classifier, depth_encoder, hf_clip
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import encode
from clip2point_jax.tasks import pretrain
from clip2point_jax.tools import make_tiny_clip
from clip2point_jax.training import loop
from clip2point_jax.training import pretrain as pretraining
from clip2point_jax.training import pretrain_evals
from tests.conftest import LEGACY_DIR, leaf_stats, set_fields, task_config
from tests.tasks import pretrain_fixtures as pf

NO_EVALS = {"evals.val.data.name": "", "evals.downstream.data.name": ""}


def _records(workdir):
  with open(os.path.join(workdir, loop.METRICS_FILE)) as f:
    return [json.loads(line) for line in f]


def _final_encoder(workdir, step):
  return depth_encoder.read_encoder(os.path.join(workdir, "checkpoints", str(step)))


def test_resume_after_a_kill_is_bit_identical(data_dir, clip_dir, tmp_path, monkeypatch):
  settings = {"num_steps": 24, "log_every": 4, "checkpoint.every_steps": 8,
              "image_cache.dtype": "float32"}
  # A: uninterrupted, with validation every 12 steps (the downstream set runs the same code).
  whole = str(tmp_path / "whole")
  compiled = []  # (thread, function) of every XLA compilation during the run

  def on_compile(event, seconds, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
      compiled.append((threading.current_thread().name, kwargs.get("fun_name", "")))

  jax.monitoring.register_event_duration_secs_listener(on_compile)
  try:
    summary = pretrain.run(pf.tiny_config(data_dir, clip_dir, eval_every_steps=12,
                                          **{"evals.downstream.data.name": ""}, **settings), whole)
  finally:
    jax.monitoring.unregister_event_duration_listener(on_compile)
  # The evaluation's classifier compiled in the background while steps ran, never in the loop.
  assert ("compile evaluations", "jit(classify)") in compiled
  assert ("MainThread", "jit(classify)") not in compiled, compiled
  records = _records(whole)
  losses = [r for r in records if "loss" in r]
  assert [r["step"] for r in losses] == [4, 8, 12, 16, 20, 24]
  assert summary["steps"] == 24
  # Throughput: the first (compiling) step in the first record only, steady figures in every one.
  assert losses[0]["compile_seconds"] > 0 and all("compile_seconds" not in r for r in losses[1:])
  assert all(r["step_seconds"] > 0 and r["samples_per_second"] > 0 for r in losses)
  # The loss goes down, and so does the contrastive part, not only through w.
  assert losses[-1]["loss"] < losses[0]["loss"] - 0.3
  assert losses[-1]["l_intra"] + losses[-1]["l_cross"] < losses[0]["l_intra"] + losses[0]["l_cross"]
  evals = [r for r in records if "val_top1" in r]
  assert [r["step"] for r in evals] == [12, 24]
  best_steps = [r["step"] for r in evals if r["val_top1"] == max(e["val_top1"] for e in evals)]
  assert os.path.getsize(os.path.join(whole, loop.CURVES_FILE)) > 0

  # B: killed (Ctrl-C) after 13 steps; its last checkpoint is step 8.
  original = pretrain_data.batches

  def killed_after_13(*args, **kwargs):
    for i, batch in enumerate(original(*args, **kwargs)):
      if i == 13:
        raise KeyboardInterrupt
      yield batch

  resumed = str(tmp_path / "resumed")
  monkeypatch.setattr(pretrain_data, "batches", killed_after_13)
  with pytest.raises(KeyboardInterrupt):
    pretrain.run(pf.tiny_config(data_dir, clip_dir, **settings, **NO_EVALS), resumed)
  monkeypatch.setattr(pretrain_data, "batches", original)
  assert max(r["step"] for r in _records(resumed)) == 12
  assert sorted(int(s) for s in os.listdir(os.path.join(resumed, "checkpoints")) if s.isdigit()) == [8]
  # C: the same command again resumes from step 8 and ends where A did, bit for bit.
  pretrain.run(pf.tiny_config(data_dir, clip_dir, **settings, **NO_EVALS), resumed)
  (want, want_w), (got, got_w) = _final_encoder(whole, 24), _final_encoder(resumed, 24)
  jax.tree.map(np.testing.assert_array_equal, got, want)
  assert got_w == want_w != 1.0
  strip = lambda rs: [{k: v for k, v in r.items() if "second" not in k}
                      for r in rs if "loss" in r]
  assert strip(_records(resumed)) == strip(losses)

  # D: a non-finite loss stops the run naming the step; the last good checkpoint stays.
  load_features = image_features.load_or_compute

  def poisoned(*args):
    arrays = load_features(*args)
    return {**arrays, "features": np.full_like(arrays["features"], np.nan)}

  monkeypatch.setattr(image_features, "load_or_compute", poisoned)
  with pytest.raises(UserError, match=r"loss became nan at step 25; .*last good checkpoint, step 24"):
    pretrain.run(pf.tiny_config(data_dir, clip_dir, **{**settings, "num_steps": 28}, **NO_EVALS), whole)
  _, w_after = _final_encoder(whole, 24)
  assert w_after == want_w

  # Zero-shot with --config.depth_encoder=<workdir>: the best checkpoint by validation.
  zs = pf.zeroshot_config(data_dir, clip_dir, depth_encoder=whole)
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
  _, params, _ = classifier.load_classifier(zs, ["chair", "lamp"], mesh)
  best = int(os.path.basename(depth_encoder.find_step_dir(whole)))
  assert best in best_steps
  best_encoder, _ = _final_encoder(whole, best)
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(params["vision_model"]),
               best_encoder["vision_model"])


def test_the_summary_names_a_kept_best_checkpoint(data_dir, clip_dir, tmp_path, capsys):
  # No learning: every evaluation ties, and with keep=1 only the last step stays on disk.
  config = pf.tiny_config(data_dir, clip_dir, num_steps=3, log_every=1, eval_every_steps=1,
                          **{"checkpoint.keep": 1, "optim.learning_rate": 0.0, "optim.eta_min": 0.0,
                             "evals.downstream.data.name": "", "image_cache.dtype": "float32"})
  summary = pretrain.run(config, str(tmp_path / "run"))
  vals = [r["val_top1"] for r in _records(str(tmp_path / "run")) if "val_top1" in r]
  assert len(vals) == 3 and len(set(vals)) == 1
  kept = sorted(int(s) for s in os.listdir(tmp_path / "run" / "checkpoints") if s.isdigit())
  assert kept == [3] and summary["best_val_step"] == summary["best_step"] == 3
  assert "at step 3\n" in capsys.readouterr().out


def test_a_batch_beyond_the_data_is_refused_before_clip_loads(data_dir, clip_dir, tmp_path, monkeypatch):
  def no_clip(*args):
    raise AssertionError("CLIP loaded before the batch size was checked")

  monkeypatch.setattr(pretrain, "load_clip", no_clip)
  with pytest.raises(UserError, match=r"^config.batch_size=4096 is larger than the 15 shapes with renderings in "
                                      r"shapenet55/train; use --config.batch_size=\d+ or less"):
    pretrain.run(pf.tiny_config(data_dir, clip_dir, batch_size=4096), str(tmp_path / "big"))


def test_cached_and_live_image_features_give_the_same_loss(data_dir, clip_dir):
  loaded = hf_clip.load_clip(clip_dir, dtype=np.float32)
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
  source, _ = registry.load_split("shapenet55", "train", data_dir)
  live_config = pf.tiny_config(data_dir, clip_dir, image_features="live")
  rows, points = pretrain_data.training_points(live_config.data, "", source)
  assert len(rows) == len(source) - 1 and points.shape == (len(source), 512, 3)  # one shape unrendered
  vision = pretraining.image_source(live_config, "", source, loaded, mesh)
  config = pf.tiny_config(data_dir, clip_dir, **{"image_cache.dtype": "float32"})
  cache = pretraining.image_source(config, "", source, loaded, mesh)
  kwargs = dict(global_batch_size=8, num_points=128, seed=3, start_step=2)
  batch = next(pretrain_data.batches(source, rows, live_images=True, image_size=64, **kwargs))
  from_array = next(pretrain_data.batches(source, rows, points=points, **kwargs))
  for key in ("points", "view", "row"):  # Records or the stored array: the same samples.
    np.testing.assert_array_equal(from_array[key], batch[key])
  params = pretraining.initial_params(loaded, 1.0)
  encoder = clip_lib.vision_tower(loaded.model)
  live_loss = pretraining.make_loss_fn(live_config, encoder, live=True)
  cached_loss = pretraining.make_loss_fn(config, encoder, live=False)
  live, cached = jax.jit(lambda: (live_loss(params, {}, batch, vision, 5),  # one compile for both
                                  cached_loss(params, {}, batch, cache, 5)))()
  for key in ("l_intra", "l_cross"):
    np.testing.assert_allclose(float(cached[1][key]), float(live[1][key]), rtol=1e-5)
  np.testing.assert_allclose(float(cached[0]), float(live[0]), rtol=1e-5)
  np.testing.assert_allclose(cached[1]["features"][2], live[1]["features"][2], rtol=1e-4, atol=1e-5)


def test_a_stale_feature_cache_is_refused(data_dir, clip_dir, tmp_path):
  config = pf.tiny_config(data_dir, clip_dir, num_steps=1, **{"image_cache.dtype": "float32"},
                          **NO_EVALS)
  # Another CLIP under the same name: same cache folder, other weights.
  other = shutil.copytree(clip_dir, str(tmp_path / "elsewhere" / os.path.basename(clip_dir)))
  import safetensors.numpy  # pylint: disable=g-import-not-at-top
  weights = safetensors.numpy.load_file(os.path.join(other, "model.safetensors"))
  weights["visual_projection.weight"] = weights["visual_projection.weight"] * 1.5
  safetensors.numpy.save_file(weights, os.path.join(other, "model.safetensors"))
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()), ("data",))
  source, _ = registry.load_split("shapenet55", "train", data_dir)
  pretraining.image_source(config, "", source, hf_clip.load_clip(clip_dir), mesh)
  with config.unlocked():
    config.clip.name = other
  with pytest.raises(UserError, match=r"feature cache .*-float32/train is stale \(clip: cached"):
    pretrain.run(config, str(tmp_path / "second"))


def test_one_step_with_the_soft_perspective_projector(data_dir, clip_dir, tmp_path, monkeypatch):
  # Parsed as the command line parses them: the locked config must have every field.
  overrides = {"render.mode": "soft", "render.camera": "perspective", "render.fov": 50.0,
               "render.distance": 1.5, "num_steps": 2, "log_every": 1,
               "image_cache.dtype": "float32", **NO_EVALS}
  config = pf.cli_config(data_dir, clip_dir, **overrides)
  seen = []
  depth_maps = encode.depth_maps

  def spy(points, settings, **kwargs):
    seen.append(settings)
    return depth_maps(points, settings, **kwargs)

  monkeypatch.setattr(encode, "depth_maps", spy)
  workdir = str(tmp_path / "soft_perspective")
  pretrain.run(config, workdir)
  # The step projected with every setting of the block (traced once, when it compiled).
  assert seen and {(s.mode, s.camera, s.fov, s.distance, s.image_size, s.radius) for s in seen} == {
      ("soft", "perspective", 50.0, 1.5, 64, 0.06)}
  records = [r for r in _records(workdir) if "loss" in r]
  assert [r["step"] for r in records] == [1, 2]
  for key in ("loss", "l_intra", "l_cross", "grad_norm"):
    assert all(np.isfinite(r[key]) for r in records), key
  # The zero-shot evaluations during pre-training project as its steps do.
  evaluation = classifier.render_settings(pretrain_evals.eval_config(config, config.evals.val))
  assert (evaluation.mode, evaluation.camera, evaluation.fov, evaluation.distance) == (
      "soft", "perspective", 50.0, 1.5)


def test_one_step_matches_what_a89c44e_computed(tmp_path):
  """tests/fixtures/make_legacy_a89c44e.py's pretrain_step_reference, against today's step."""
  ref = np.load(os.path.join(LEGACY_DIR, "reference.npz"))
  clip_dir = make_tiny_clip.write_tiny_clip(str(tmp_path / "clip64"), seed=0,
                                            vision_config={"image_size": 64, "patch_size": 16})
  config = set_fields(task_config("pretrain", "tiny"), **{
      "clip.name": clip_dir, "optim.trainable": ("depth_encoder/.*", "w")})
  loaded = hf_clip.load_configured(config.clip, config.render.image_size)
  trainable, frozen = rules.split(pretraining.initial_params(loaded, config.w_init), config.optim.trainable)
  state, tx, schedule = pretraining.initial_state(config, trainable, 100)
  step = jax.jit(pretraining.make_train_step(config, clip_lib.vision_tower(loaded.model), tx, schedule,
                                             live=False))
  batch = {k: ref[f"pretrain/batch/{k}"] for k in ("points", "view", "row")}
  new_state, metrics = step(state, frozen, batch, ref["pretrain/image_features"])
  for key, value in jax.device_get(metrics).items():
    np.testing.assert_allclose(value, ref[f"pretrain/metrics/{key}"], rtol=1e-6, err_msg=key)
  got = leaf_stats(jax.device_get(new_state["params"]), "pretrain/params")
  assert sorted(got) == sorted(k for k in ref.files if k.startswith("pretrain/params/"))
  for key, value in got.items():
    np.testing.assert_allclose(value, ref[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_datasets_without_renderings_are_refused():
  with pytest.raises(UserError, match="'primitives' stores no rendered views"):
    pretrain_data.check_has_renderings([{"points": np.zeros((4, 3)), "label": 0}], "primitives")


def test_presets_paper_and_released_code():
  from clip2point_jax.core.config_args import load_sibling  # pylint: disable=g-import-not-at-top
  get = load_sibling(os.path.join(os.path.dirname(pf.__file__), "..", "..", "configs", "x.py"),
                     "pretrain").get_config
  paper, code, code4 = get(None), get("released_code"), get("released_code,gpus=4")
  assert (paper.loss.temperature, paper.loss.negatives_group) == (0.7, 0)
  assert (code.loss.temperature, code.loss.negatives_group) == (0.07, 32)
  assert code4.loss.negatives_group == 64
  for c in (paper, code):
    assert (c.batch_size, c.num_epochs, c.optim.learning_rate, c.optim.weight_decay) == (256, 100, 6e-3, 1e-4)
    assert (c.optim.restart_epochs, c.optim.eta_min, c.data.num_points) == (2, 1e-5, 1024)
  with pytest.raises(UserError, match="gpus=3 does not divide"):
    get("released_code,gpus=3")
