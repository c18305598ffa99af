"""configs/prepare.py and the prepare task, in process and through main."""

import os
import subprocess
import sys

import pytest

from clip2point_jax.data import registry
from clip2point_jax.errors import UserError
from clip2point_jax.tasks import prepare
from tests.conftest import REPO_ROOT, task_config


def _get_config(arg):
  return task_config("prepare", arg)


def test_config():
  c = _get_config("dataset=modelnet40")
  assert (c.task, c.dataset, c.data_dir) == ("prepare", "modelnet40",
                                             "~/tensorflow_datasets")
  assert c.num_points_stored == 0 and c.manual_dir == "" and not c.overwrite
  tiny = _get_config("dataset=primitives,tiny")
  assert tiny.num_points_stored == 512 and tiny.num_per_class_train == 4
  with pytest.raises(UserError, match="unknown config argument 'datset'"):
    _get_config("datset=modelnet40")
  with pytest.raises(UserError, match="tiny only applies"):
    _get_config("dataset=modelnet40,tiny")


def test_run_prepares_once(tmp_path, capsys):
  c = _get_config("dataset=primitives,tiny")
  c.data_dir = str(tmp_path)
  path = prepare.run(c, str(tmp_path / "workdir"))
  assert path == registry.dataset_dir("primitives", str(tmp_path))
  out = capsys.readouterr().out
  assert "primitives/train: 32 shapes" in out and "primitives/test: 16" in out
  source, _ = registry.load_split("primitives", "test", str(tmp_path))
  assert source[0]["points"].shape == (512, 3)
  prepare.run(c, str(tmp_path / "workdir"))  # Prepared already: a no-op.


def test_run_reports_skipped_shapes(tmp_path, modelnet40_manual, capsys):
  c = _get_config("dataset=modelnet40")
  c.manual_dir, _ = modelnet40_manual
  c.data_dir = str(tmp_path)
  c.num_points_stored = 32
  prepare.run(c, str(tmp_path))
  assert ("modelnet40/train: 80 shapes, 2 broken ones skipped"
          in capsys.readouterr().out)


def test_run_rejects_options_that_do_not_apply(tmp_path):
  c = _get_config("dataset=modelnet40_h5")
  c.data_dir = str(tmp_path)
  c.seed = 3
  with pytest.raises(UserError, match="config.seed does not apply"):
    prepare.run(c, str(tmp_path))


def test_main_prints_one_line_errors(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "clip2point_jax.main", "--config",
       "configs/prepare.py:dataset=scanobjectnn_objbg",
       f"--config.data_dir={tmp_path}", f"--workdir={tmp_path / 'w'}"],
      cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 1, proc.stderr
  assert ("error: dataset 'scanobjectnn_objbg' is built from files you "
          "download; set manual_dir.") in proc.stderr
  assert "h5_files.zip" in proc.stderr


def test_a_folder_with_other_options_suggests_overwrite(tmp_path):
  c = _get_config("dataset=primitives,tiny")
  c.data_dir = str(tmp_path)
  c.render_images = False
  path = prepare.run(c, str(tmp_path / "workdir"))
  meta = os.path.join(path, "metadata.json")
  with open(meta) as f:
    text = f.read()
  with open(meta, "w") as f:
    f.write(text.replace('"seed": 0', '"seed": 5'))
  with pytest.raises(UserError, match=r"'seed': 5.*; delete that folder, or rerun with "
                                      r"--config.overwrite=True$"):
    prepare.run(c, str(tmp_path / "workdir"))
  c.overwrite = True
  assert prepare.run(c, str(tmp_path / "workdir")) == path
