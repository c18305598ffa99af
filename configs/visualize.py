"""Pictures of a dataset's RGB views and depth maps (the supplementary's Figs. 1-4).

  python -m clip2point_jax.main --config configs/visualize.py:dataset=primitives \
      --workdir runs/visualize

Writes `views.png` (the 10 labelled pre-training views of one shape: its RGB
renderings above the depth maps of its cloud) and `classes.png` (one shape per
class: an RGB view beside the depth map from the same pose). Works on any
prepared dataset that stores images: `primitives` (prepared on first use) and
`shapenet55` prepared with CLIP2Point's or our renderings. Arguments after the
colon: `dataset=<name>` and `tiny` for the small settings the tests use.
"""

import ml_collections

from clip2point_jax.core.config_args import load_sibling, parse_arg
from renderers import cameras

common = load_sibling(__file__, "common")


def get_config(arg=None):
  a = parse_arg(arg, dataset="primitives", tiny=False)
  c = ml_collections.ConfigDict()
  c.task = "visualize"  # the task module that runs (clip2point_jax/tasks/)
  c.data = ml_collections.ConfigDict()
  c.data.name = a["dataset"]  # a prepared dataset (docs/datasets.md)
  c.data.split = "train"  # the split drawn
  c.data.data_dir = "~/tensorflow_datasets"  # empty: <workdir>/tensorflow_datasets
  c.data.num_points = 2048  # The first N stored points make the depth maps.
  # primitives only: options to prepare it with on first use (empty: defaults).
  c.data.primitives = ml_collections.ConfigDict()

  c.shape = 0  # Index in the split of the shape whose 10 views are drawn...
  c.shape_id = ""  # ...or its id, e.g. torus_0000 or 02691156-1a04e3eab45ca15dd86060f189eb133.
  c.view = 0  # The view shown per class: an index into `views`.
  c.views = tuple(cameras.VIEWS_PRETRAIN)  # The poses the images were rendered from.
  c.max_classes = 60  # classes drawn in the per-class grid
  c.render = common.render_config()

  if a["tiny"]:
    c.data.data_dir = ""
    c.data.num_points = 512
    c.data.primitives = ml_collections.ConfigDict(dict(
        num_per_class_train=1, num_per_class_test=1, num_points_stored=512))
  return c
