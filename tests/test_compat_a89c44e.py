"""What main at a89c44e wrote still loads, resumes and computes the same (tests/fixtures/legacy_a89c44e).

The fixtures were written by that commit with `tests/fixtures/make_legacy_a89c44e.py`:
a tiny pre-training workdir (checkpoints at steps 2 and 4), a 1-shot GDPA run
with its feature cache and gdpa.json, the config fields of every task, and
reference outputs of zero-shot, one pre-training step and one GDPA step.
Those three outputs are checked beside the code that computes them:
tests/projection/test_zeroshot.py, tests/tasks/test_pretrain_task.py and
tests/training/test_gdpa_training.py.
"""

import json
import os
import shutil

import numpy as np
import pytest

from clip2point_jax.loading import depth_encoder, hf_clip
from clip2point_jax.tasks import fewshot, pretrain, zeroshot
from clip2point_jax.tools import make_tiny_clip
from renderers import cameras
from tests.conftest import LEGACY_DIR, task_config

LEGACY = LEGACY_DIR
SETTINGS = json.load(open(os.path.join(LEGACY, "settings.json")))
# Logged wall-clock figures differ from run to run; everything else must not.
TIMINGS = ("step_seconds", "samples_per_second", "compile_seconds")


def _without_timings(record):
  return {k: v for k, v in record.items() if k not in TIMINGS}


def _read_jsonl(path):
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def pretrain_clip(tmp_path_factory):
  """The tiny CLIP the fixture's pre-training used, made again (make_tiny_clip is seeded)."""
  return make_tiny_clip.write_tiny_clip(str(tmp_path_factory.mktemp("clip64")), **SETTINGS["pretrain_clip"])


def _pretrain_config(clip_dir, data_dir, num_steps):
  """The generator's `pretrain_config`."""
  config = task_config("pretrain", "tiny")
  with config.unlocked():
    config.clip.name = clip_dir
    config.data.data_dir = data_dir
    config.optim.trainable = ("depth_encoder/visual_projection/.*", "w")
    config.num_steps = num_steps
    config.log_every = 2
    config.checkpoint.every_steps = 2
    config.checkpoint.async_save = False
    config.evals.val.data.name = ""
    config.evals.downstream.data.name = ""
  return config


def test_every_config_field_and_override_of_a89c44e_still_exists_with_its_type():
  old = json.load(open(os.path.join(LEGACY, "config_fields.json")))
  missing = []
  for key, fields in old.items():
    name, _, arg = key.partition(":")
    config = task_config(name, arg or None)
    for path, type_name in fields.items():
      node = config
      try:
        for part in path.split("."):
          node = node[part]
      except (KeyError, AttributeError):
        missing.append(f"{key} {path}")
        continue
      if type(node).__name__ != type_name:
        missing.append(f"{key} {path}: {type_name} then, {type(node).__name__} now")
  assert not missing, missing


def test_a_pretraining_workdir_of_a89c44e_resumes_as_a89c44e_resumed_it(pretrain_clip, tmp_path):
  workdir = shutil.copytree(os.path.join(LEGACY, "pretrain"), str(tmp_path / "pretrain"))
  before = _read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  summary = pretrain.run(_pretrain_config(pretrain_clip, str(tmp_path / "tfds"), 6), workdir)
  after = _read_jsonl(os.path.join(workdir, "metrics.jsonl"))
  assert after[:2] == before  # steps 2 and 4 kept as written
  expected = _read_jsonl(os.path.join(LEGACY, "pretrain_resumed_to_6.jsonl"))
  assert [r["step"] for r in after] == [r["step"] for r in expected] == [2, 4, 6]
  got, want = _without_timings(after[-1]), _without_timings(expected[-1])
  assert got.keys() == want.keys()
  for key in want:  # steps 5 and 6, computed after the restore, as a89c44e computed them
    np.testing.assert_allclose(got[key], want[key], rtol=2e-6, err_msg=key)
  assert summary["steps"] == 6 and os.path.isdir(os.path.join(workdir, "checkpoints", "6"))


def test_a_depth_encoder_of_a89c44e_loads_into_zero_shot(pretrain_clip):
  loaded = hf_clip.load_clip(pretrain_clip, dtype=np.float32)
  params = depth_encoder.load_params(os.path.join(LEGACY, "pretrain"), loaded)
  projection = params["visual_projection"]["kernel"]
  assert not np.array_equal(projection, loaded.params["visual_projection"]["kernel"])  # trained
  np.testing.assert_array_equal(params["vision_model"]["post_layernorm"]["scale"],
                                loaded.params["vision_model"]["post_layernorm"]["scale"])  # frozen


def _fewshot_config(clip_dir, data_dir):
  """The generator's `fewshot_config`."""
  config = task_config("fewshot", "dataset=primitives,tiny")
  with config.unlocked():
    config.clip.name = clip_dir
    config.clip.dtype = "float32"
    config.data.data_dir = data_dir
    config.data.primitives.num_per_class_train = 2
    config.data.primitives.num_per_class_test = 1
    config.views = tuple(tuple(v) for v in SETTINGS["fewshot_views"])
    config.shots = 1
    config.epochs = 2
  return config


@pytest.fixture(scope="module")
def legacy_fewshot(tiny_clip_dir, tmp_path_factory):
  """A copy of the fixture's few-shot workdir whose gdpa.json names the CLIP made again here."""
  root = tmp_path_factory.mktemp("legacy_fewshot")
  workdir = shutil.copytree(os.path.join(LEGACY, "fewshot"), str(root / "run"))
  path = os.path.join(workdir, "seed_0", "gdpa.json")
  description = json.load(open(path))
  description["config"]["clip"]["name"] = tiny_clip_dir  # the user moved their CLIP
  json.dump(description, open(path, "w"))
  return workdir, str(root / "tfds")


def test_a_fewshot_workdir_of_a89c44e_reuses_its_feature_cache_and_checkpoint(
    legacy_fewshot, tiny_clip_dir, capsys):
  workdir, data_dir = legacy_fewshot
  caches = sorted(os.listdir(os.path.join(workdir, "feature_cache")))
  result = fewshot.run(_fewshot_config(tiny_clip_dir, data_dir), workdir)
  out = capsys.readouterr().out
  assert out.count("using cached") == 2 and "caching" not in out
  assert sorted(os.listdir(os.path.join(workdir, "feature_cache"))) == caches  # no new identity
  old = json.load(open(os.path.join(LEGACY, "fewshot", "metrics.json")))
  for key in ("top1_accuracy", "mean_class_accuracy", "confusion_matrix", "steps"):
    assert result["per_seed"]["0"][key] == old["per_seed"]["0"][key], key


def test_a_gdpa_of_a89c44e_classifies_as_its_run_reported(legacy_fewshot, tmp_path):
  workdir, data_dir = legacy_fewshot
  config = task_config("zeroshot", "dataset=primitives,tiny")
  with config.unlocked():
    config.gdpa = workdir
    config.data.data_dir = data_dir
    config.data.num_points = 512
    # The few-shot run's dataset, prepared with the same options.
    config.data.primitives = _fewshot_config("", data_dir).data.primitives
    config.num_grid_clouds = 0
  result = zeroshot.run(config, str(tmp_path / "eval"))
  old = json.load(open(os.path.join(LEGACY, "fewshot", "metrics.json")))
  assert result["confusion_matrix"] == old["per_seed"]["0"]["confusion_matrix"]
  assert tuple(map(tuple, result["views"])) == tuple(map(tuple, SETTINGS["fewshot_views"]))
  assert cameras.views_array(result["views"]).shape == (4, 2)
