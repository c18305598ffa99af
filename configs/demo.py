"""The demo: CLIP2Point's whole story on the built-in shapes, no download needed.

  python -m clip2point_jax.main --config configs/demo.py --workdir runs/demo

It prepares the built-in procedural shapes (clouds and their 10 rendered RGB
views) as a TFDS dataset in the workdir, writes a tiny random CLIP in Hugging
Face format there, then:
  1. pre-trains a depth encoder with image-depth contrastive learning;
  2. classifies the test shapes zero-shot with CLIP's image tower and with
     the pre-trained depth encoder;
  3. trains the Gated Dual-Path Adapter on 16 shapes per class (path P: the
     pre-trained encoder, path C: CLIP) and tests it.
Each step writes its own folder of metrics and pictures. With random CLIP
weights the zero-shot accuracies are near chance (the text tower knows no
words); the few-shot adapter learns from labels and beats chance. Point
`--config.clip_name` at a real CLIP (e.g. openai/clip-vit-base-patch32, at
its 224x224 input: also set `--config.image_size=224 --config.radius=0.02`)
for real numbers. `tiny` is a shorter run for the tests.
"""

import ml_collections

from clip2point_jax.core.config_args import load_sibling, parse_arg

pretrain = load_sibling(__file__, "pretrain")
zeroshot = load_sibling(__file__, "zeroshot")
fewshot = load_sibling(__file__, "fewshot")


def get_config(arg=None):
  a = parse_arg(arg, tiny=False)
  c = ml_collections.ConfigDict()
  c.task = "demo"  # the task module that runs (clip2point_jax/tasks/)
  c.seed = 0  # every step's seed
  # Shared by every step. Empty: a tiny random CLIP made in <workdir>/tiny_clip
  # for 64x64 images (16x16 patches), so the demo runs in about two minutes on
  # two CPU cores.
  c.clip_name = ""
  c.image_size = 64  # every step's render.image_size (the CLIP's input size)
  c.radius = 0.06  # every step's render.radius (0.02 covers under a pixel at 64 px)
  c.num_points = 256  # points per cloud in every step
  # The built-in shapes every step uses (8 classes).
  c.primitives = ml_collections.ConfigDict()
  c.primitives.num_per_class_train = 16  # training shapes per class
  c.primitives.num_per_class_test = 8  # test shapes per class
  c.primitives.num_points_stored = 512  # points stored per shape

  c.pretrain = pretrain.get_config("tiny")
  c.zeroshot = zeroshot.get_config("dataset=primitives,tiny")
  c.fewshot = fewshot.get_config("dataset=primitives,tiny")
  c.fewshot.shots = 16

  if a["tiny"]:
    c.primitives = ml_collections.ConfigDict(dict(
        num_per_class_train=4, num_per_class_test=2, num_points_stored=512))
    c.pretrain.num_steps = 40
    c.pretrain.eval_every_steps = 20
    c.pretrain.checkpoint.every_steps = 20
    c.pretrain.optim.restart_steps = 20
    c.fewshot.shots = 4
    c.fewshot.epochs = 10
  return c
