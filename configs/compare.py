"""Zero-shot CLIP2Point, PointCLIP and PointCLIP V2 on the same clouds with the same CLIP.

  python -m clip2point_jax.main --config configs/compare.py:dataset=modelnet40 \
      --workdir runs/compare_modelnet40

Arguments after the colon: `dataset=<name>` (a prepared dataset, as for
configs/zeroshot.py), `clip=<Hub id or folder>` (default ViT-B/32), and
`tiny` for small settings with a tiny random CLIP (with dataset=primitives:
the built-in shapes, offline in seconds).

Writes compare.json and compare.md (top-1, per-class accuracy, clouds/s on
the current device, each method's recipe and whether it was tuned on the
test set) and projections.png (docs/compare.md).
"""

import ml_collections

from renderers import cameras
from clip2point_jax.core.config_args import load_sibling, parse_arg

common = load_sibling(__file__, "common")


def get_config(arg=None):
  a = parse_arg(arg, dataset="modelnet40", clip="openai/clip-vit-base-patch32", tiny=False)
  c = ml_collections.ConfigDict()
  c.task = "compare"  # the task module that runs (clip2point_jax/tasks/)
  c.seed = 0  # seed of the run's random draws (and of a tiny random CLIP)
  # The methods compared, in table order: clip2point, pointclip, pointclip_v2.
  c.methods = ("clip2point", "pointclip", "pointclip_v2")
  # Where a method published no recipe for this dataset or CLIP (PointCLIP V2
  # beyond ModelNet40 and ScanObjectNN, or another CLIP): True scores it with
  # equal view weights and PointCLIP's template, labelled untuned; False: an error.
  c.untuned_recipe = False

  # The clouds every method classifies (ModelNet turned y-up only for CLIP2Point:
  # the PointCLIPs use clouds as given).
  c.data = common.classify_data_config(a["dataset"])

  c.clip = common.clip_config(a["clip"])  # name empty: a tiny random CLIP made in the workdir
  # CLIP2Point's row: its text templates ({} is the class name), views and view weights.
  c.prompts = ("image of a {}",)
  c.views = tuple(cameras.VIEWS_ZERO_SHOT)  # CLIP2Point's row: (elevation, azimuth) pairs in degrees
  c.view_weights = ()  # CLIP2Point's row: empty, every view counts the same

  # render.mode is CLIP2Point's row (hard or soft); the PointCLIP rows use their
  # own modes. image_size and clip_normalize apply to every row.
  c.render = common.render_config()

  c.batch_size = 32  # clouds per step (global, over all devices)
  c.num_grid_clouds = 3  # clouds drawn in projections.png, each by every method

  if a["tiny"]:
    # Offline: the built-in shapes and a tiny random CLIP made in
    # <workdir>/tiny_clip; float32, since CPUs have no fast bfloat16 matmuls.
    c.clip.name = ""
    c.clip.dtype = "float32"
    c.data.num_points = 256
    c.batch_size = 8
    # No recipe is published for the built-in shapes or a random CLIP.
    c.untuned_recipe = True
    c.data.primitives = ml_collections.ConfigDict(dict(
        num_per_class_train=2, num_per_class_test=2, num_points_stored=512,
        render_images=False))
  return c
