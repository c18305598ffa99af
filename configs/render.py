"""Renders ShapeNetCore v2 meshes to CLIP2Point's 10 RGB pre-training views.

  python -m clip2point_jax.main --config configs/render.py \
      --config.shapenet_dir=/path/to/ShapeNetCore.v2 \
      --config.lists_dir=/path/to/ShapeNet55-34 \
      --config.out_dir=/path/to/ShapeNet55-34/rendering --workdir runs/render

Every model listed in ShapeNet-55's train.txt and test.txt is rendered to
`<out_dir>/<synset>_<model>/{0..9}.png`, the layout the shapenet55 builder
reads. Finished models are skipped, so the same command resumes. Unreadable
meshes are listed with the reason in `<workdir>/render_report.json`.
`--config.shard=i/n` renders the i-th of n parts (one process per GPU or
host). Arguments after the colon: `tiny` for the small settings the tests use.
"""

import ml_collections

from clip2point_jax.core.config_args import parse_arg
from renderers import cameras


def get_config(arg=None):
  a = parse_arg(arg, tiny=False)
  c = ml_collections.ConfigDict()
  c.task = "render"  # the task module that runs (clip2point_jax/tasks/)
  c.shapenet_dir = ""  # ShapeNetCore v2: <synset>/<model>/models/model_normalized.obj
  c.lists_dir = ""  # Holds ShapeNet-55/{train,test}.txt (Point-BERT's ShapeNet55-34).
  c.splits = ("train", "test")  # the ShapeNet-55 lists rendered
  c.out_dir = ""  # Empty: <workdir>/rendering.
  c.shard = "0/1"  # i/n: this process renders every n-th model from the i-th.

  c.image_size = 224  # pixels per side of each view
  c.views = tuple(cameras.VIEWS_PRETRAIN)  # (elevation, azimuth) pairs in degrees, one image each
  c.distance = 1.0  # camera distance from the normalised mesh
  c.camera = "orthographic"  # or "perspective" (then `fov`, degrees)
  c.fov = 60.0  # perspective only: vertical field of view in degrees
  c.light = "headlight"  # or "directional": a fixed light from `light_direction`
  c.light_direction = (0.0, 1.0, 0.0)  # directional light only: where the light comes from
  c.background = (1.0, 1.0, 1.0)  # RGB in [0, 1] where no face is drawn
  c.edge_rule = "top_left"  # watertight; "pytorch3d": centres on a shared edge stay background

  c.faces_per_batch = 1 << 19  # Meshes are batched by face count up to this many faces.
  c.max_batch = 32  # Memory: shading keeps ~15 MB per 224x224 view.
  c.atlas_size = 1024  # Each mesh's textures are packed into one square atlas.
  c.loader = "processes"  # or "threads": who reads meshes while the device renders.
  c.load_workers = 8  # processes or threads reading meshes
  c.write_workers = 4  # Host threads encoding and writing PNGs.

  if a["tiny"]:
    c.image_size = 32
    c.faces_per_batch = 1 << 10
    c.max_batch = 4
    c.atlas_size = 32
    c.loader = "threads"
    c.load_workers = 2
    c.write_workers = 2
  return c
