"""Fixture trees shared by the builder tests (built once per session)."""

import os

import data_fixtures as fx
import numpy as np
import pytest

from clip2point_jax.data import classnames
from clip2point_jax.data.builders import modelnet

MODELNET_COUNTS = {"train": 2, "test": 1}


@pytest.fixture(scope="session")
def modelnet40_manual(tmp_path_factory):
  """manual_dir holding ModelNet40/ with 2 train + 1 test box per class, two
  broken train meshes in 'chair'; returns (manual_dir, {rel: (lo, hi)})."""
  manual = tmp_path_factory.mktemp("modelnet40_manual")
  root = os.path.join(manual, "ModelNet40")
  folders = [modelnet.class_folder(c) for c in classnames.MODELNET40]
  boxes = fx.write_modelnet_tree(root, folders, MODELNET_COUNTS,
                                 np.random.default_rng(0))
  with open(os.path.join(root, "chair/train/chair_9998.off"), "w") as f:
    f.write(fx.off_text(*fx.random_box(np.random.default_rng(1))[:2])[:60])
  with open(os.path.join(root, "chair/train/chair_9999.off"), "w") as f:
    f.write("OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n")
  return str(manual), boxes
