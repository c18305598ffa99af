"""The validation layer: field rules, task rules, output folders and workdir ownership."""

import json
import os

import pytest

from clip2point_jax import validation
from clip2point_jax.errors import UserError
from clip2point_jax.validation import fields, tasks, workdir
from tests.conftest import REPO_ROOT, task_config

# Presets that need a user's paths or names before they can run.
NEEDS_INPUT = {"detect": "scans_dir", "classify": "classes", "render": "shapenet_dir"}
CONFIGS = sorted(n[:-3] for n in os.listdir(os.path.join(REPO_ROOT, "configs"))
                 if n.endswith(".py") and n != "common.py")


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("arg", [None, "tiny"])
def test_every_preset_passes_or_asks_for_its_inputs(name, arg):
  config = task_config(name, arg)
  if name in NEEDS_INPUT:
    with pytest.raises(UserError, match=NEEDS_INPUT[name]):
      tasks.check_task(config)
  else:
    tasks.check_task(config)


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "config.batch_size=0: must be at least 1"),
    ("data.num_points", -5, "config.data.num_points=-5: must be at least 1"),
    ("render.mode", "sof", "use one of hard, soft"),
    ("render.fov", 180.0, "must be in (0, 180)"),
    ("render.sigma", 0.0, "must be positive"),
    ("clip.residual_dtype", "float16", "use one of auto, float32, bfloat16"),
    ("prompts", ("a {}", "b"), "template 'b' has no '{}'"),
    ("seed", -1, None),  # Seeds may be any integer.
])
def test_field_rules_name_the_field_and_the_range(field, value, message):
  config = task_config("zeroshot", "tiny")
  block, _, key = field.rpartition(".")
  with config.unlocked():
    (config[block] if block else config)[key] = value
  if message is None:
    fields.check_fields(config)
    return
  with pytest.raises(UserError) as error:
    fields.check_fields(config)
  assert message in str(error.value)


def test_a_nested_task_config_is_named_by_its_path():
  config = task_config("demo", "tiny")
  with config.unlocked():
    config.fewshot.model.fusion = "sum"
  with pytest.raises(UserError, match=r"config\.fewshot\.model\.fusion='sum'"):
    tasks.check_task(config)


def test_the_rules_cover_every_numeric_field_of_every_config():
  """A new int or float field needs a rule (or a place in UNCHECKED): ranges are checked for all."""
  unchecked = {"seed", "b1", "b2", "w_init", "view_init", "logit_scale", "margin", "data.seed",
               "light_direction", "background", "pretrain_distances", "iou_thresholds", "views",
               "view_weights", "views_zero_shot", "seeds", "splits"}
  missing = set()
  for name in CONFIGS:
    for path, value in fields.leaves(task_config(name)):
      if isinstance(value, (int, float)) and not isinstance(value, bool):
        if fields._rule_for(path) is None and path.split(".")[-1] not in unchecked \
            and path not in unchecked:
          missing.add(f"{name}: {path}")
  assert not missing, sorted(missing)


def test_check_writable_refuses_files_and_unwritable_folders(tmp_path, monkeypatch):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  with pytest.raises(UserError, match="is a file; give a folder"):
    workdir.check_writable(str(a_file), "--workdir")
  with pytest.raises(UserError, match=f"{a_file} is a file"):
    workdir.check_writable(str(a_file / "below"), "--workdir")
  workdir.check_writable(str(tmp_path / "new" / "deeper"), "--workdir")
  # Root may write anywhere, so the permission check is exercised through os.access.
  monkeypatch.setattr(os, "access", lambda path, mode: False)
  with pytest.raises(UserError, match=f"no permission to write in {tmp_path}"):
    workdir.check_writable(str(tmp_path / "new"), "--workdir")


def test_a_workdir_belongs_to_the_task_that_claimed_it(tmp_path):
  run = str(tmp_path / "run")
  assert workdir.claim(run, "pretrain")
  assert json.load(open(os.path.join(run, workdir.MARKER))) == {"task": "pretrain"}
  workdir.check_owner(run, "pretrain", share=False)
  with pytest.raises(UserError, match="holds the results of a pretrain run"):
    workdir.check_owner(run, "zeroshot", share=False)
  workdir.check_owner(run, "zeroshot", share=True)
  assert not workdir.claim(run, "zeroshot")  # The first task keeps the record.
  assert workdir.owner(run) == {"task": "pretrain"}


def test_release_removes_only_a_workdir_the_run_left_empty(tmp_path):
  empty, used = str(tmp_path / "empty"), str(tmp_path / "used")
  for run in (empty, used):
    workdir.claim(run, "zeroshot")
  open(os.path.join(used, "metrics.json"), "w").close()
  workdir.release_if_unused(empty)
  workdir.release_if_unused(used)
  assert not os.path.exists(empty)
  assert os.path.isfile(os.path.join(used, "metrics.json"))


def test_check_covers_output_folders_and_the_workdir(tmp_path):
  a_file = tmp_path / "a_file"
  a_file.write_text("x")
  config = task_config("fewshot", "dataset=primitives,tiny")
  validation.check(config, str(tmp_path / "run"))
  with config.unlocked():
    config.cache_dir = str(a_file)
  with pytest.raises(UserError, match="config.cache_dir="):
    validation.check(config, str(tmp_path / "run"))


def test_check_devices_wants_a_batch_that_splits_over_the_devices():
  config = task_config("pretrain", "tiny")
  validation.check_devices(config, 8)
  with pytest.raises(UserError, match="config.batch_size=16 must be a multiple of the 3 devices, e.g. 15"):
    validation.check_devices(config, 3)
  validation.check_devices(task_config("zeroshot", "tiny"), 3)  # Evaluation pads its batches.
