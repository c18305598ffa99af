"""Zero-shot classification with CLIP on projected depth maps.

  python -m clip2point_jax.main --config configs/zeroshot.py:dataset=primitives \
      --config.clip.name=/path/to/clip --workdir runs/zeroshot

Arguments after the colon: `dataset=<name>` (primitives, files) and `tiny`
(the small settings tests and CI use).
"""

import ml_collections

from clip2point_jax import projection
from clip2point_jax.config_args import parse_arg


def get_config(arg=None):
  a = parse_arg(arg, dataset="primitives", tiny=False)
  c = ml_collections.ConfigDict()
  c.task = "zeroshot"
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = a["dataset"]
  c.data.split = "test"
  c.data.num_points = 1024
  # ModelNet is z-up; CLIP2Point turns it y-up before rendering.
  c.data.align_modelnet = a["dataset"].startswith("modelnet")
  c.data.seed = 0
  c.data.num_per_class = 16  # primitives only
  c.data.files = ""  # files only: a glob; each file's folder names its class.
  c.data.classes = ""  # files only: comma-separated names (default: the folders).

  c.clip = ml_collections.ConfigDict()
  c.clip.name = "openai/clip-vit-base-patch32"  # Hub id or local HF directory.
  c.clip.dtype = "float32"  # or bfloat16

  c.prompts = ("image of a {}",)
  c.views = tuple(projection.VIEWS_ZERO_SHOT)
  c.view_weights = ()  # empty: every view counts the same

  c.render = ml_collections.ConfigDict()
  c.render.image_size = projection.IMAGE_SIZE
  c.render.radius = projection.POINT_RADIUS
  c.render.distance = 1.0

  c.batch_size = 32
  c.num_grid_clouds = 4

  if a["tiny"]:
    c.data.num_per_class = 2
    c.data.num_points = 256
    c.batch_size = 8
  return c
