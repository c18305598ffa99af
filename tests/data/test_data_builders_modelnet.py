"""ModelNet .off builders through the registry: prepare, read, break, resume."""

import os
import re
import sys

import data_fixtures as fx
import numpy as np
import pytest

from clip2point_jax.data import classnames
from clip2point_jax.data import checks
from clip2point_jax.data import off
from clip2point_jax.data import registry
from clip2point_jax.data.builders import modelnet
from clip2point_jax.errors import UserError

S = 256


def _by_id(source):
  return {e["id"].decode(): e for e in (source[i] for i in range(len(source)))}


def test_modelnet40_prepares_reads_and_skips_broken(tmp_path,
                                                    modelnet40_manual):
  manual, boxes = modelnet40_manual
  data_dir = str(tmp_path)
  registry.prepare("modelnet40", data_dir, manual, num_points_stored=S)
  meta = registry.metadata("modelnet40", data_dir)
  assert meta["options"] == {"num_points_stored": S, "seed": 0}
  assert meta["point_order"] == "uniform"
  skipped = meta["skipped"]["train"]
  assert skipped["count"] == 2 and "test" not in meta["skipped"]
  reasons = {s["id"]: s["reason"] for s in skipped["shapes"]}
  assert "truncated" in reasons["chair/train/chair_9998.off"]
  assert "zero total area" in reasons["chair/train/chair_9999.off"]

  for split, count in (("train", 80), ("test", 40)):
    source, names = registry.load_split("modelnet40", split, data_dir)
    assert names == classnames.MODELNET40 and len(source) == count
    examples = _by_id(source)
    assert sorted(examples) == sorted(r for r in boxes if f"/{split}/" in r)
    for rel, e in examples.items():
      assert e["points"].shape == (S, 3) and e["points"].dtype == np.float32
      assert modelnet.class_folder(names[e["label"]]) == rel.split("/")[0]
      assert fx.on_box_surface(e["points"], *boxes[rel]).all()
    rel = sorted(examples)[5]
    expected = off.sample_off(os.path.join(manual, "ModelNet40", rel), S,
                              checks.shape_rng(0, rel))
    np.testing.assert_array_equal(examples[rel]["points"], expected)
  assert "tensorflow" not in sys.modules


def test_modelnet10_default_size_and_aligned_layouts(tmp_path):
  rng = np.random.default_rng(2)
  folders = [modelnet.class_folder(c) for c in classnames.MODELNET10]
  fx.write_modelnet_tree(str(tmp_path / "m10" / "ModelNet10"), folders,
                         {"train": 1, "test": 1}, rng)
  registry.prepare("modelnet10", str(tmp_path / "tfds"), str(tmp_path / "m10"))
  source, names = registry.load_split("modelnet10", "test",
                                      str(tmp_path / "tfds"))
  assert names == classnames.MODELNET10 and len(source) == 10
  assert source[0]["points"].shape == (8192, 3)  # The default S.
  # Aligned: class folders straight in manual_dir.
  folders40 = [modelnet.class_folder(c) for c in classnames.MODELNET40]
  fx.write_modelnet_tree(str(tmp_path / "aligned"), folders40,
                         {"train": 1, "test": 1}, rng)
  registry.prepare("modelnet40_aligned", str(tmp_path / "tfds"),
                   str(tmp_path / "aligned"), num_points_stored=64)
  source, names = registry.load_split("modelnet40_aligned", "train",
                                      str(tmp_path / "tfds"))
  assert names == classnames.MODELNET40 and len(source) == 40


def test_interrupted_preparation_leaves_nothing_and_reruns(
    tmp_path, modelnet40_manual, monkeypatch):
  manual, _ = modelnet40_manual
  data_dir = str(tmp_path / "a")
  real = off.sample_off
  calls = []

  def dies_midway(*args):
    calls.append(1)
    if len(calls) == 30:
      raise KeyboardInterrupt  # As if the user pressed Ctrl-C.
    return real(*args)

  monkeypatch.setattr(off, "sample_off", dies_midway)
  with pytest.raises(KeyboardInterrupt):
    registry.prepare("modelnet40", data_dir, manual, num_points_stored=S)
  monkeypatch.setattr(off, "sample_off", real)
  assert not registry.is_prepared("modelnet40", data_dir)
  assert os.listdir(os.path.join(data_dir, "modelnet40")) == []
  with pytest.raises(UserError, match=re.escape(
      "python -m clip2point_jax.main --config "
      "configs/prepare.py:dataset=modelnet40 --config.manual_dir=")):
    registry.load_split("modelnet40", "train", data_dir)

  # A kill -9 leaves TFDS's temporary folder behind; a rerun clears it.
  stale = os.path.join(data_dir, "modelnet40", "incomplete.X1Y2Z3_1.0.0")
  os.makedirs(stale)
  open(os.path.join(stale, "modelnet40-train.array_record-00000-of-00001"),
       "w").write("half")
  registry.prepare("modelnet40", data_dir, manual, num_points_stored=S)
  assert os.listdir(os.path.join(data_dir, "modelnet40")) == ["1.0.0"]

  # The same as an uninterrupted build.
  registry.prepare("modelnet40", str(tmp_path / "b"), manual,
                   num_points_stored=S)
  for split in ("train", "test"):
    a = _by_id(registry.load_split("modelnet40", split, data_dir)[0])
    b = _by_id(registry.load_split("modelnet40", split,
                                   str(tmp_path / "b"))[0])
    assert sorted(a) == sorted(b)
    for key in a:
      np.testing.assert_array_equal(a[key]["points"], b[key]["points"])


def test_other_options_need_overwrite(tmp_path, modelnet40_manual):
  manual, _ = modelnet40_manual
  data_dir = str(tmp_path)
  registry.prepare("modelnet40", data_dir, manual, num_points_stored=32)
  registry.prepare("modelnet40", data_dir, manual, num_points_stored=32)
  with pytest.raises(UserError, match="overwrite=True"):
    registry.prepare("modelnet40", data_dir, manual, num_points_stored=48)
  registry.prepare("modelnet40", data_dir, manual, num_points_stored=48,
                   overwrite=True)
  source, _ = registry.load_split("modelnet40", "test", data_dir)
  assert source[0]["points"].shape == (48, 3)
  meta = registry.metadata("modelnet40", data_dir)
  assert meta["skipped"]["train"]["count"] == 2  # Not 4: counts restart.


def _modelnet10_tree(root, counts, rng=None):
  folders = [modelnet.class_folder(c) for c in classnames.MODELNET10]
  return fx.write_modelnet_tree(os.path.join(root, "ModelNet10"), folders,
                                counts, rng or np.random.default_rng(3))


def test_layout_errors(tmp_path):
  data_dir = str(tmp_path / "tfds")
  with pytest.raises(UserError, match="set manual_dir"):
    registry.prepare("modelnet10", data_dir)
  with pytest.raises(UserError, match="does not exist or is empty"):
    registry.prepare("modelnet10", data_dir, str(tmp_path / "nowhere"))
  zipped = tmp_path / "zipped"
  zipped.mkdir()
  (zipped / "ModelNet10.zip").write_bytes(b"PK")
  with pytest.raises(UserError, match="ModelNet10.zip: unpack it"):
    registry.prepare("modelnet10", data_dir, str(zipped))
  # No test meshes at all: an empty split.
  _modelnet10_tree(str(tmp_path / "no_test"), {"train": 1})
  with pytest.raises(UserError, match="no .off files for split 'test'"):
    registry.prepare("modelnet10", data_dir, str(tmp_path / "no_test"))
  # A class folder missing.
  _modelnet10_tree(str(tmp_path / "no_sofa"), {"train": 1, "test": 1})
  os.rename(tmp_path / "no_sofa" / "ModelNet10" / "sofa",
            tmp_path / "no_sofa" / "ModelNet10" / "sofas")
  with pytest.raises(UserError, match="class folder .*sofa is missing"):
    registry.prepare("modelnet10", data_dir, str(tmp_path / "no_sofa"))
  with pytest.raises(UserError, match="renderings_dir do not apply"):
    registry.prepare("modelnet10", data_dir, str(tmp_path / "no_sofa"),
                     renderings_dir=str(tmp_path))
  assert not registry.is_prepared("modelnet10", data_dir)


def test_a_split_of_only_broken_shapes_is_an_error(tmp_path):
  boxes = _modelnet10_tree(str(tmp_path), {"train": 1, "test": 1})
  for rel in boxes:
    if "/test/" in rel:
      open(tmp_path / "ModelNet10" / rel, "w").write("OFF\n")
  with pytest.raises(UserError, match="split 'test' has no usable shapes"):
    registry.prepare("modelnet10", str(tmp_path / "tfds"), str(tmp_path),
                     num_points_stored=16)
  assert not registry.is_prepared("modelnet10", str(tmp_path / "tfds"))


def test_unknown_dataset_and_split(tmp_path):
  with pytest.raises(UserError, match="unknown dataset 'modelnet41'"):
    registry.load_split("modelnet41", "train", str(tmp_path))
  registry.prepare("primitives", str(tmp_path), num_per_class_train=1,
                   num_per_class_test=1, num_points_stored=16)
  with pytest.raises(UserError, match="no split 'val'"):
    registry.load_split("primitives", "val", str(tmp_path))
