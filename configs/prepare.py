"""Prepares a dataset once into TFDS array_record files (no TensorFlow).

  python -m clip2point_jax.main --config configs/prepare.py:dataset=modelnet40 \
      --config.manual_dir=/path/to/dir_with_ModelNet40

Arguments after the colon: `dataset=<name>` (see docs/datasets.md) and `tiny`
(primitives only: a few small clouds, for tests and CI).
"""

import ml_collections

from clip2point_jax.core.config_args import default_data_dir, parse_arg
from clip2point_jax.errors import UserError


def get_config(arg=None):
  a = parse_arg(arg, dataset="primitives", tiny=False)
  c = ml_collections.ConfigDict()
  c.task = "prepare"  # the task module that runs (clip2point_jax/tasks/)
  c.dataset = a["dataset"]  # which dataset to prepare (docs/datasets.md lists them)
  c.manual_dir = ""  # The unpacked download; see docs/datasets.md.
  c.data_dir = default_data_dir()  # $TFDS_DATA_DIR, else ~/tensorflow_datasets
  c.num_points_stored = 0  # 0: the dataset's default (8192 meshes, 2048 h5).
  c.seed = 0  # Surface sampling and point order; recorded in the metadata.
  c.overwrite = False  # Rebuild even if prepared already.
  c.renderings_dir = ""  # shapenet55 only: <synset>_<model>/{0..9}.png.
  c.num_per_class_train = 0  # primitives only; 0: the default (64).
  c.num_per_class_test = 0  # primitives only; 0: the default (16).
  c.render_images = True  # primitives only: also store 10 rendered RGB views per shape.
  if a["tiny"]:
    if c.dataset != "primitives":
      raise UserError("config argument tiny only applies to dataset=primitives")
    c.num_points_stored = 512
    c.num_per_class_train = 4
    c.num_per_class_test = 2
  return c
