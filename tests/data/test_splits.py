"""A task's labelled split: classification needs at least two classes."""

import os

import ml_collections
import numpy as np
import pytest

from clip2point_jax.data import registry, splits
from clip2point_jax.errors import UserError


def _files(root, folders, per_folder=2):
  rng = np.random.default_rng(0)
  for folder in folders:
    os.makedirs(os.path.join(root, folder), exist_ok=True)
    for i in range(per_folder):
      np.save(os.path.join(root, folder, f"{i}.npy"), rng.normal(size=(40, 3)))
  return ml_collections.ConfigDict(dict(name="files", files=os.path.join(root, "*", "*.npy"),
                                        classes="", num_points=16, seed=0))


def test_files_in_one_folder_are_refused_naming_the_glob_and_class(tmp_path):
  data = _files(str(tmp_path), ["chair"])
  with pytest.raises(UserError, match=r"config.data.files='.*\*\.npy' \(files in .*chair\) gives 1 class "
                                      r"\(chair\); classification needs at least two"):
    splits.load(data, "test", str(tmp_path))
  with data.unlocked():
    data.classes = "chair"
  with pytest.raises(UserError, match="gives 1 class"):
    splits.load(data, "test", str(tmp_path))
  # Two named classes, all files in one of them: a real (if lopsided) two-way test.
  with data.unlocked():
    data.classes = "chair,table"
  source, names = splits.load(data, "test", str(tmp_path))
  assert names == ("chair", "table") and len(source) == 2


def test_two_folders_make_two_classes(tmp_path):
  source, names = splits.load(_files(str(tmp_path), ["table", "chair"]), "test", str(tmp_path))
  assert names == ("chair", "table") and source.labels.tolist() == [0, 0, 1, 1]
  assert source[0]["points"].shape == (16, 3)


def test_a_prepared_dataset_with_one_class_is_refused(tmp_path, monkeypatch):
  monkeypatch.setattr(registry, "load_split", lambda name, split, root, options=None: ([{"label": 0}], ("only",)))
  data = ml_collections.ConfigDict(dict(name="modelnet40", data_dir=str(tmp_path)))
  with pytest.raises(UserError, match="dataset 'modelnet40' split 'test' gives 1 class \\(only\\)"):
    splits.load(data, "test", str(tmp_path))
