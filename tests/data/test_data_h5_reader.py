"""HDF5 reader on PointNet and ScanObjectNN layouts, and their breakages."""

import re

import data_fixtures as fx
import h5py
import numpy as np
import pytest

from clip2point_jax.data import h5
from clip2point_jax.errors import UserError


def _raises_naming(path, word):
  return pytest.raises(UserError, match=re.escape(str(path)) + ".*" + word)


def test_pointnet_layout(tmp_path):
  rng = np.random.default_rng(0)
  files = fx.write_pointnet_h5_tree(str(tmp_path), rng)
  path = tmp_path / "modelnet40_ply_hdf5_2048" / "ply_data_train0.h5"
  clouds = h5.read_h5(str(path), 40)
  data, label = files["ply_data_train0.h5"]
  np.testing.assert_array_equal(clouds.points, data)
  np.testing.assert_array_equal(clouds.labels, label[:, 0])
  assert clouds.labels.dtype == np.int32 and clouds.points.dtype == np.float32
  np.testing.assert_array_equal(clouds.rows, np.arange(len(data)))
  assert clouds.dropped.size == 0


def test_scanobjectnn_layout(tmp_path):
  out = fx.write_scanobjectnn_tree(str(tmp_path), np.random.default_rng(1))
  path = tmp_path / "h5_files" / "main_split" / "test_objectdataset.h5"
  clouds = h5.read_h5(str(path), 15)
  np.testing.assert_array_equal(clouds.points, out["test"][0])
  np.testing.assert_array_equal(clouds.labels, out["test"][1])


def test_nonfinite_rows_raise_or_are_dropped(tmp_path):
  data = fx.random_clouds(np.random.default_rng(2), 4, 64)
  data[2, 5, 1] = np.nan
  path = fx.write_h5(str(tmp_path / "x.h5"), data, np.arange(4))
  with _raises_naming(path, "cloud 2 has NaN"):
    h5.read_h5(path, 15)
  clouds = h5.read_h5(path, 15, skip_nonfinite=True)
  assert clouds.rows.tolist() == [0, 1, 3] and clouds.dropped.tolist() == [2]
  np.testing.assert_array_equal(clouds.points, data[[0, 1, 3]])


@pytest.mark.parametrize("case,word", [
    ("missing_label", "missing key"),
    ("mismatched", "inconsistent"),
    ("out_of_range", "outside"),
    ("negative_label", "outside"),
    ("float_labels", "non-integer"),
    ("bad_shape", "shape"),
    ("empty", "no clouds"),
])
def test_bad_contents(tmp_path, case, word):
  rng = np.random.default_rng(3)
  data = fx.random_clouds(rng, 3, 32)
  label = np.array([[0], [4], [1]], np.uint8)
  path = str(tmp_path / f"{case}.h5")
  if case == "missing_label":
    with h5py.File(path, "w") as f:
      f.create_dataset("data", data=data)
  elif case == "mismatched":
    fx.write_h5(path, data, label[:2])
  elif case == "out_of_range":
    fx.write_h5(path, data, np.array([0, 15, 1]))
  elif case == "negative_label":
    fx.write_h5(path, data, np.array([0, -1, 1]))
  elif case == "float_labels":
    fx.write_h5(path, data, np.array([0.0, 1.5, 2.0]))
  elif case == "bad_shape":
    fx.write_h5(path, data[:, :, :2], label)
  elif case == "empty":
    fx.write_h5(path, data[:0], label[:0])
  with _raises_naming(path, word):
    h5.read_h5(path, 15)


def test_truncated_and_non_hdf5_files(tmp_path):
  data = fx.random_clouds(np.random.default_rng(4), 8, 256)
  path = fx.write_h5(str(tmp_path / "t.h5"), data, np.arange(8))
  raw = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(raw[:len(raw) // 2])
  with _raises_naming(path, "truncated"):
    h5.read_h5(path, 15)
  text = tmp_path / "notes.h5"
  text.write_text("not hdf5 at all")
  with _raises_naming(text, "not a readable HDF5"):
    h5.read_h5(str(text))
