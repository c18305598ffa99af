"""Zero-shot classification with CLIP on projected depth maps.

  python -m clip2point_jax.main --config configs/zeroshot.py:dataset=modelnet40 \
      --workdir runs/zeroshot_modelnet40

Arguments after the colon: `dataset=<name>`, one of modelnet40, modelnet10,
modelnet40_aligned, modelnet40_h5, scanobjectnn_objbg, scanobjectnn_objonly,
scanobjectnn_pb_t50_rs, shapenet55, primitives (prepared once with
configs/prepare.py; see docs/datasets.md) or `files` (a glob of
your own files in one folder per class); and `tiny` for the small settings
that tests and CI use.

The `render` block (configs/common.py) sets the projector for the classifier
and the depth_maps.png it draws, e.g. `--config.render.mode=soft
--config.render.camera=perspective --config.render.fov=50`.
"""

import ml_collections

from renderers import cameras
from clip2point_jax.core.config_args import load_sibling, parse_arg

common = load_sibling(__file__, "common")


def get_config(arg=None):
  a = parse_arg(arg, dataset="modelnet40", tiny=False)
  c = ml_collections.ConfigDict()
  c.task = "zeroshot"  # the task module that runs (clip2point_jax/tasks/)
  c.seed = 0  # seed of the run's random draws (and of a tiny random CLIP)

  c.data = common.classify_data_config(a["dataset"])  # the clouds classified

  c.clip = common.clip_config()  # name empty: a tiny random CLIP made in the workdir
  # A pre-training workdir or checkpoint (configs/pretrain.py, or the authors'
  # converted release): its depth encoder replaces CLIP's image tower.
  # Empty: plain CLIP.
  c.depth_encoder = ""

  # A trained GDPA (a few-shot / fine-tuning workdir or its seed_<s> folder)
  # instead of zero-shot CLIP; its CLIP, views, render settings and prompts win.
  c.gdpa = ""
  c.prompts = ("image of a {}",)  # text templates; {} is the class name; the text features average over them
  c.views = tuple(cameras.VIEWS_ZERO_SHOT)  # (elevation, azimuth) pairs in degrees, one depth map each
  c.view_weights = ()  # empty: every view counts the same

  c.render = common.render_config()
  # render.mode pointclip_v2 where PointCLIP V2 published no recipe for this
  # dataset or CLIP: True scores it with equal view weights and PointCLIP's
  # template, labelled untuned; False: an error.
  c.untuned_recipe = False

  c.batch_size = 32  # clouds per step (global, over all devices)
  c.num_grid_clouds = 4  # clouds drawn in depth_maps.png

  if a["tiny"]:
    # Offline: a tiny random CLIP made in <workdir>/tiny_clip (224 px, 32 px
    # patches); float32, since CPUs have no fast bfloat16 matmuls.
    c.clip.name = ""
    c.clip.dtype = "float32"
    c.data.num_points = 256
    c.batch_size = 8
    # Zero-shot reads clouds only: skip rendering the RGB views.
    c.data.primitives = ml_collections.ConfigDict(dict(
        num_per_class_train=2, num_per_class_test=2, num_points_stored=512,
        render_images=False))
  return c

