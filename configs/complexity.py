"""Computation per cloud and trainable parameters of zero-shot, GDPA and pre-training.

  python -m clip2point_jax.main --config configs/complexity.py --workdir runs/complexity

Analyses ViT-B/32 shapes with random weights (nothing is downloaded or run:
XLA's cost analysis of the compiled functions), and the Point Transformer
that `configs/pretrain.py:encoder=point_transformer` trains; `--config.clip.name=<dir or
Hub id>` takes another CLIP's architecture from its config.json. `tiny`
analyses the tests' tiny CLIP instead.
"""

import ml_collections

from renderers import cameras
from clip2point_jax.core.config_args import load_sibling, parse_arg

fewshot = load_sibling(__file__, "fewshot")
pretrain = load_sibling(__file__, "pretrain")


def get_config(arg=None):
  a = parse_arg(arg, tiny=False)
  trained = fewshot.get_config("dataset=modelnet40")
  c = ml_collections.ConfigDict()
  c.task = "complexity"  # the task module that runs (clip2point_jax/tasks/)
  c.clip = ml_collections.ConfigDict()
  c.clip.name = ""  # "": ViT-B/32 shapes; "tiny": the tests' CLIP; else a checkpoint's config.json
  c.num_points = 1024  # points per cloud
  c.num_classes = 40  # ModelNet40's text features (zero-shot and GDPA logits)
  c.batch_size = 2  # clouds per analysed batch; the MACs are per cloud
  # "compiled": the optimised program; "lowered": before optimisation (faster, within ~1%).
  c.cost_analysis = "compiled"
  c.views_zero_shot = tuple(cameras.VIEWS_ZERO_SHOT)  # the zero-shot row's views
  # The GDPA exactly as configs/fewshot.py trains it.
  c.views = trained.views
  c.render = trained.render
  c.model = trained.model
  c.optim = trained.optim
  # Pre-training renders each cloud at two camera distances from [0.9, 1.1).
  c.pretrain_distances = (0.9, 1.1)
  # The 3D encoder row (supplementary Sec. 4), as configs/pretrain.py's
  # encoder=point_transformer builds it; its head is the CLIP's embedding width.
  c.point_transformer = pretrain.get_config("encoder=point_transformer").point_transformer
  if a["tiny"]:
    c.clip.name = "tiny"
    c.num_points = 256
    c.cost_analysis = "lowered"
    c.point_transformer = pretrain.get_config("tiny,encoder=point_transformer").point_transformer
  return c
