"""The built-in shapes' option sets each live in a folder of their own, and never refuse each other."""

import os

import pytest

from clip2point_jax.data import registry
from clip2point_jax.data.builders import primitives as builder
from clip2point_jax.errors import UserError

SMALL = dict(num_per_class_train=1, num_per_class_test=1, num_points_stored=64, render_images=False)


def test_folder_names_spell_the_non_default_options():
  assert builder.Primitives.folder_name({}) == ""
  assert builder.Primitives.folder_name({"num_per_class_train": 64, "render_images": True}) == ""
  assert builder.Primitives.folder_name(dict(num_per_class_train=8, num_per_class_test=2,
                                             num_points_stored=512, render_images=False)) == \
      "train8_test2_points512_noimages"
  assert builder.Primitives.folder_name({"seed": 3, "num_points_stored": None}) == "seed3"


def test_two_option_sets_coexist_and_the_defaults_keep_todays_folder(tmp_path, capfd):
  data_dir = str(tmp_path)
  other = {**SMALL, "num_per_class_test": 2}
  first = registry.prepare("primitives", data_dir, **SMALL)
  second = registry.prepare("primitives", data_dir, **other)
  assert first == os.path.join(data_dir, "primitives", "train1_test1_points64_noimages", "1.0.0")
  assert second == os.path.join(data_dir, "primitives", "train1_test2_points64_noimages", "1.0.0")
  assert registry.dataset_dir("primitives", data_dir, {}) == os.path.join(data_dir, "primitives", "1.0.0")
  out = capfd.readouterr()
  assert "Unknown size" not in out.out + out.err and "Using custom data configuration" not in out.err
  assert out.out.count("preparing the built-in shapes into") == 2
  for options, per_class in ((SMALL, 1), (other, 2)):
    assert registry.metadata("primitives", data_dir, options)["options"]["num_per_class_test"] == per_class
    source, names = registry.load_split("primitives", "test", data_dir, options=options)
    assert len(source) == per_class * len(names) and source[0]["points"].shape == (64, 3)
  # Asked again: both are prepared already, nothing is rebuilt or refused.
  assert registry.prepare("primitives", data_dir, **SMALL) == first
  assert "preparing" not in capfd.readouterr().out


def test_a_copy_with_other_options_in_a_folder_is_refused_naming_no_task_field(tmp_path):
  data_dir = str(tmp_path)
  path = registry.prepare("primitives", data_dir, **SMALL)
  # As an older version left it: another option set in this set's folder.
  meta = os.path.join(path, "metadata.json")
  with open(meta) as f:
    text = f.read()
  with open(meta, "w") as f:
    f.write(text.replace('"seed": 0', '"seed": 5'))
  with pytest.raises(UserError, match=r"was prepared with .*'seed': 5.*; delete that folder to "
                                      r"prepare it again, or call registry.prepare with overwrite=True$") as e:
    registry.prepare("primitives", data_dir, **SMALL)
  assert "--config" not in str(e.value)


def test_a_data_block_gives_its_options():
  import ml_collections  # pylint: disable=g-import-not-at-top
  tiny = ml_collections.ConfigDict(dict(name="primitives", primitives=dict(num_per_class_train=2)))
  assert registry.options_of(tiny) == {"num_per_class_train": 2}
  assert registry.options_of(ml_collections.ConfigDict(dict(name="primitives", primitives={}))) == {}
  assert registry.options_of(ml_collections.ConfigDict(dict(name="modelnet40"))) is None
  assert registry.dataset_dir("primitives", "/d", registry.options_of(tiny)) == "/d/primitives/train2/1.0.0"
