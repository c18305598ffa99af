"""A trained depth encoder or GDPA fills in the CLIP and render settings it was trained with."""

import json
import os

import jax
import numpy as np
import pytest

from clip2point_jax.core import checkpoints, parallel
from clip2point_jax.errors import UserError
from clip2point_jax.loading import classifier, depth_encoder, tiny_clip, trained_gdpa, trained_settings
from clip2point_jax.models import gdpa
from clip2point_jax.projection import dual_path
from renderers import cameras
from tests.conftest import set_fields, task_config

CLASSES = ("box", "cone")


def _pretrained(root, clip_name, **fields):
  """An encoder-only pre-training checkpoint whose meta records configs/pretrain.py:tiny."""
  config = set_fields(task_config("pretrain", "tiny"), **{"clip.name": clip_name, **fields})
  workdir = os.path.join(root, "pretrain")
  depth_encoder.save(os.path.join(workdir, depth_encoder.CHECKPOINTS),
                     {"visual_projection": {"kernel": np.zeros((2, 2), np.float32)}},
                     meta={"config": json.loads(config.to_json_best_effort())})
  return workdir, config


@pytest.fixture(scope="module")
def trained_gdpa_dir(tiny_clip_dir, tmp_path_factory):
  """A GDPA (untrained, but saved and described as few-shot saves one) on the tiny CLIP."""
  from clip2point_jax.training import gdpa_run  # pylint: disable=g-import-not-at-top

  config = set_fields(task_config("fewshot", "dataset=primitives,tiny"), **{"clip.name": tiny_clip_dir})
  paths = dual_path.load_frozen_paths(config.clip, "")
  model = gdpa.from_config(config.model, len(config.views))
  variables = jax.tree.map(np.asarray, gdpa.init_variables(model, jax.random.key(0), len(config.views),
                                                           paths.feature_dim))
  workdir = str(tmp_path_factory.mktemp("fewshot"))
  seed = os.path.join(workdir, "seed_0")
  ckpt = checkpoints.Checkpointer(os.path.join(seed, "checkpoints"), keep=1, async_save=False)
  ckpt.save(7, {"train": {"params": variables["params"], "batch_stats": variables["batch_stats"]},
                "frozen": {}})
  ckpt.close()
  with open(os.path.join(seed, trained_gdpa.MODEL_FILE), "w") as f:
    json.dump(gdpa_run.model_description(config, paths, CLASSES, {}, False), f)
  return workdir


def test_configs_without_a_trained_model_are_left_alone():
  for name, arg in (("zeroshot", "dataset=primitives,tiny"), ("fewshot", "dataset=primitives"),
                    ("detect", "dataset=synthetic"), ("classify", "")):
    config = task_config(name, arg)
    before = config.to_dict()
    assert trained_settings.fill_in(config, frozenset({"clip.name"})) == []
    assert config.to_dict() == before


def test_a_pretrained_encoder_gives_its_clip_and_render_settings(tmp_path):
  clip_dir = str(tmp_path / "tiny_clip")
  workdir, pretrain = _pretrained(str(tmp_path), clip_dir)
  config = set_fields(task_config("zeroshot", "dataset=primitives,tiny"), depth_encoder=workdir)
  filled = trained_settings.fill_in(config, frozenset({"depth_encoder", "data.num_points"}))
  assert config.clip.name == clip_dir and config.clip.dtype == "float32"
  assert config.render.to_dict() == pretrain.render.to_dict()
  assert (config.render.image_size, config.render.radius) == (64, 0.06)
  assert f"clip.name={clip_dir!r}" in filled and "render.image_size=64" in filled
  assert len(config.views) == 6  # zero-shot's own views, not pre-training's
  # An override that agrees is fine; filling again changes nothing.
  assert trained_settings.fill_in(config, frozenset({"render.image_size", "clip.name"})) == []

  config = set_fields(task_config("fewshot", "dataset=primitives,tiny"), depth_encoder=workdir,
                      **{"render.image_size": 224})
  with pytest.raises(UserError, match=r"--config\.render\.image_size=224 but the depth encoder .* "
                                      r"trained with render\.image_size=64; drop the override"):
    trained_settings.fill_in(config, frozenset({"render.image_size"}))
  with pytest.raises(UserError, match=r"--config\.render\.image_size=224 "):
    trained_settings.fill_in(config, frozenset({"render"}))  # a whole block counts as set


def test_a_relative_tiny_clip_still_resolves_and_a_converted_release_fills_nothing(tmp_path):
  workdir, _ = _pretrained(str(tmp_path), "runs/somewhere/tiny_clip")
  os.makedirs(os.path.join(workdir, "tiny_clip"))
  config = set_fields(task_config("zeroshot", "dataset=primitives"), depth_encoder=workdir)
  trained_settings.fill_in(config, frozenset())
  assert config.clip.name == os.path.join(workdir, "tiny_clip")

  converted = depth_encoder.save(str(tmp_path / "converted"), {"w": np.zeros(1, np.float32)},
                                 meta={"converted_from": "/x/best_model.pth"})
  config = set_fields(task_config("zeroshot", "dataset=primitives"), depth_encoder=converted)
  assert trained_settings.fill_in(config, frozenset({"clip.name"})) == []
  assert config.clip.name == "openai/clip-vit-base-patch32"


def test_tiny_clips_are_made_at_the_render_size_with_absolute_paths(tmp_path, monkeypatch, capsys):
  monkeypatch.chdir(tmp_path)
  config = set_fields(task_config("zeroshot", "dataset=primitives,tiny"), **{"render.image_size": 64})
  assert tiny_clip.use_if_unnamed(config, "run", "zeroshot")
  assert config.clip.name == str(tmp_path / "run" / "tiny_clip")
  vision = json.load(open(os.path.join(config.clip.name, "config.json")))["vision_config"]
  assert (vision["image_size"], vision["patch_size"]) == (64, 16)
  assert capsys.readouterr().out.count("RANDOM weights") == 1
  assert not tiny_clip.use_if_unnamed(config, "run", "zeroshot")  # named now
  other = set_fields(task_config("zeroshot", "dataset=primitives,tiny"), **{"render.image_size": 96})
  with pytest.raises(UserError, match=r"tiny CLIP for 64 px images .*render\.image_size=96"):
    tiny_clip.use_if_unnamed(other, "run", "zeroshot")
  with pytest.raises(UserError, match=r"config\.render\.image_size=100 is not a multiple of .*16"):
    tiny_clip.make_in_workdir("run2", 100)


def test_a_gdpa_gives_its_clip_views_prompts_and_render(trained_gdpa_dir, tiny_clip_dir):
  for name, arg, field in (("zeroshot", "dataset=modelnet40", "gdpa"),
                           ("classify", "", "gdpa"),
                           ("detect", "dataset=synthetic", "classifier.checkpoint")):
    config = set_fields(task_config(name, arg), **{field: trained_gdpa_dir, "classifier.kind": "gdpa"}
                        if name == "detect" else {field: trained_gdpa_dir})
    filled = trained_settings.fill_in(config, frozenset({field}))
    assert config.clip.name == tiny_clip_dir and config.clip.dtype == "float32", name
    assert config.views == tuple(tuple(v) for v in cameras.VIEWS_PRETRAIN) and config.view_weights == ()
    assert config.render.radius == 0.08 and "render.radius=0.08" in filled
  config = set_fields(task_config("zeroshot", "dataset=modelnet40"), gdpa=trained_gdpa_dir,
                      views=((0.0, 0.0),))
  with pytest.raises(UserError, match=r"--config\.views=\[\[0\.0, 0\.0\]\] but the GDPA of config\.gdpa "
                                      r"\(.*seed_0/gdpa\.json\) was trained with views="):
    trained_settings.fill_in(config, frozenset({"views"}))
  # The z-buffer's implementation changes no image: the user's choice stands.
  config = set_fields(task_config("zeroshot", "dataset=modelnet40"), gdpa=trained_gdpa_dir,
                      **{"render.zbuffer": "sort"})
  trained_settings.fill_in(config, frozenset({"gdpa", "render.zbuffer"}))
  assert config.render.zbuffer == "sort"
  # Library users' adopt_settings: the same as fill_in without overrides.
  adopted = set_fields(task_config("zeroshot", "dataset=modelnet40"), gdpa=trained_gdpa_dir)
  assert trained_gdpa.adopt_settings(adopted)["class_names"] == list(CLASSES)
  filled = set_fields(task_config("zeroshot", "dataset=modelnet40"), gdpa=trained_gdpa_dir)
  trained_settings.fill_in(filled, frozenset())
  assert adopted.to_dict() == filled.to_dict()


@pytest.mark.parametrize("content, problem", [
    ('{"config": {"clip": ', "not a readable GDPA description"),
    ("[1, 2]", "no a JSON object"),
    ('{"config": {"clip": {}}, "class_names": [], "feature_dim": 32, "fingerprints": {}}',
     "no config.views, config.prompts, config.render, config.model"),
    ("\xff\xfe", "not a readable GDPA description"),
])
def test_a_broken_gdpa_json_is_one_error_naming_the_file(tmp_path, content, problem):
  os.makedirs(tmp_path / "seed_0")
  with open(tmp_path / "seed_0" / trained_gdpa.MODEL_FILE, "w", encoding="latin-1") as f:
    f.write(content)
  config = set_fields(task_config("zeroshot", "dataset=modelnet40"), gdpa=str(tmp_path))
  with pytest.raises(UserError) as e:
    trained_settings.fill_in(config, frozenset())
  message = str(e.value)
  assert "\n" not in message and problem in message and "rerun the few-shot" in message
  assert message.startswith(str(tmp_path / "seed_0" / trained_gdpa.MODEL_FILE))


def _copy(src, dst):
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.copytree(src, dst)
  return str(dst)


def test_a_truncated_or_emptied_gdpa_checkpoint_is_one_error(trained_gdpa_dir, tmp_path, capfd):
  mesh = parallel.make_mesh()
  trained_gdpa.load(trained_gdpa_dir, mesh)  # the intact one loads

  cut = _copy(trained_gdpa_dir, tmp_path / "cut")
  state = os.path.join(cut, "seed_0", "checkpoints", "7", "state")
  for folder, _, files in os.walk(state):
    for name in files:
      path = os.path.join(folder, name)
      with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
  capfd.readouterr()
  with pytest.raises(UserError, match=r"seed_0/checkpoints/7: (not a readable GDPA checkpoint|"
                                      r"cannot restore the GDPA)"):
    trained_gdpa.load(cut, mesh)
  assert capfd.readouterr().err.count("Traceback") == 0

  emptied = _copy(trained_gdpa_dir, tmp_path / "emptied")
  for folder, _, files in os.walk(os.path.join(emptied, "seed_0", "checkpoints")):
    for name in files:
      os.remove(os.path.join(folder, name))
  with pytest.raises(UserError, match=r"seed_0/checkpoints/7: (not a readable|cannot restore)"):
    trained_gdpa.load(emptied, mesh)

  gone = _copy(trained_gdpa_dir, tmp_path / "gone")
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(os.path.join(gone, "seed_0", "checkpoints"))
  with pytest.raises(UserError, match=r"checkpoints: no GDPA checkpoint beside gdpa\.json"):
    trained_gdpa.load(gone, mesh)
