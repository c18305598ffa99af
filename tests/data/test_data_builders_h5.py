"""modelnet40_h5 and the ScanObjectNN builders on real-layout h5 files."""

import os
import sys

import data_fixtures as fx
import numpy as np
import pytest

from clip2point_jax.data import classnames
from clip2point_jax.data import fps
from clip2point_jax.data import registry
from clip2point_jax.errors import UserError


def _by_id(source):
  return {e["id"].decode(): e for e in (source[i] for i in range(len(source)))}


def test_modelnet40_h5(tmp_path):
  files = fx.write_pointnet_h5_tree(str(tmp_path / "manual"),
                                    np.random.default_rng(0))
  data, _ = files["ply_data_train1.h5"]
  data[1, 7] = np.inf  # One broken cloud: skipped and counted.
  fx.write_h5(str(tmp_path / "manual" / "modelnet40_ply_hdf5_2048" /
                  "ply_data_train1.h5"), data, files["ply_data_train1.h5"][1])
  data_dir = str(tmp_path / "tfds")
  registry.prepare("modelnet40_h5", data_dir, str(tmp_path / "manual"))
  meta = registry.metadata("modelnet40_h5", data_dir)
  assert meta["skipped"]["train"]["count"] == 1
  assert meta["skipped"]["train"]["shapes"][0]["id"] == "ply_data_train1.h5/1"
  assert meta["point_order"] == "source"
  for split, count in (("train", 8), ("test", 3)):
    source, names = registry.load_split("modelnet40_h5", split, data_dir)
    assert names == classnames.MODELNET40 and len(source) == count
    for key, e in _by_id(source).items():
      name, row = key.split("/")
      assert split in name
      data, label = files[name]
      np.testing.assert_array_equal(e["points"], data[int(row)])  # Order kept.
      assert e["label"] == label[int(row), 0]
  assert "tensorflow" not in sys.modules


def test_modelnet40_h5_errors(tmp_path):
  rng = np.random.default_rng(1)
  data_dir = str(tmp_path / "tfds")
  # A listed file missing.
  fx.write_pointnet_h5_tree(str(tmp_path / "a"), rng)
  os.remove(tmp_path / "a" / "modelnet40_ply_hdf5_2048" / "ply_data_train1.h5")
  with pytest.raises(UserError, match="ply_data_train1.h5, which is missing"):
    registry.prepare("modelnet40_h5", data_dir, str(tmp_path / "a"))
  # Labels past 40 mean the wrong release: the whole file is refused.
  fx.write_pointnet_h5_tree(str(tmp_path / "b"), rng, num_classes=41)
  with pytest.raises(UserError, match=r"ply_data_\w+.h5: label 40 .* outside"):
    registry.prepare("modelnet40_h5", data_dir, str(tmp_path / "b"))
  # Asking for more points than the files hold.
  fx.write_pointnet_h5_tree(str(tmp_path / "c"), rng)
  with pytest.raises(UserError, match="fewer than num_points_stored=4096"):
    registry.prepare("modelnet40_h5", data_dir, str(tmp_path / "c"),
                     num_points_stored=4096)
  assert not registry.is_prepared("modelnet40_h5", data_dir)


@pytest.mark.parametrize("name,folder,suffix", [
    ("scanobjectnn_objbg", "main_split", ""),
    ("scanobjectnn_objonly", "main_split_nobg", ""),
    ("scanobjectnn_pb_t50_rs", "main_split", "_augmentedrot_scale75"),
])
def test_scanobjectnn_stores_fps_order(tmp_path, name, folder, suffix):
  out = fx.write_scanobjectnn_tree(str(tmp_path / "manual"),
                                   np.random.default_rng(2), folder, suffix,
                                   sizes=(3, 2))
  data_dir = str(tmp_path / "tfds")
  # manual_dir may be the h5_files folder itself.
  registry.prepare(name, data_dir, str(tmp_path / "manual" / "h5_files"))
  assert registry.metadata(name, data_dir)["point_order"] == "fps"
  for split, (data, label) in out.items():
    source, names = registry.load_split(name, split, data_dir)
    assert names == classnames.SCANOBJECTNN and len(source) == len(data)
    for key, e in _by_id(source).items():
      row = int(key.split("/")[1])
      assert e["label"] == label[row] and e["points"].shape == (2048, 3)
      # A permutation of the cloud whose prefixes are FPS subsets.
      np.testing.assert_array_equal(e["points"][:256],
                                    fps.farthest_point_sample(data[row], 256))
      np.testing.assert_array_equal(np.sort(e["points"], axis=0),
                                    np.sort(data[row], axis=0))
  assert "tensorflow" not in sys.modules


def test_scanobjectnn_missing_test_file(tmp_path):
  fx.write_scanobjectnn_tree(str(tmp_path), np.random.default_rng(3),
                             sizes=(2, 2))
  os.remove(tmp_path / "h5_files" / "main_split" / "test_objectdataset.h5")
  with pytest.raises(UserError, match="test_objectdataset.h5 is missing"):
    registry.prepare("scanobjectnn_objbg", str(tmp_path / "tfds"),
                     str(tmp_path))
  # The OBJ_ONLY folder is absent altogether.
  with pytest.raises(UserError, match="has no main_split_nobg"):
    registry.prepare("scanobjectnn_objonly", str(tmp_path / "tfds"),
                     str(tmp_path))
