"""GDPA few-shot classification: K shots per class, several seeds in one command.

  python -m clip2point_jax.main --config configs/fewshot.py:dataset=modelnet40,shots=16 \
      --config.clip.name=openai/clip-vit-base-patch32 --workdir runs/fewshot_modelnet40_16

Arguments after the colon: `dataset=<name>` (a prepared dataset, see the
docs/datasets.md), `shots=K` (1, 2, 4, 8, 16...; 0 = the whole
training split) and `tiny` for the small settings that tests and CI use.
Seeds: `--config.seeds='(0,1,2,3,4)'`; mean and standard deviation over them
are reported.
"""

import ml_collections

from renderers import cameras
from clip2point_jax.core.config_args import default_data_dir, load_sibling, parse_arg

common = load_sibling(__file__, "common")


def get_config(arg=None):
  a = parse_arg(arg, dataset="modelnet40", shots=16, tiny=False)
  c = ml_collections.ConfigDict()
  c.task = "fewshot"  # the task module that runs (clip2point_jax/tasks/)
  c.seeds = (0, 1, 2)  # Each seed draws its own shots, initialisation, dropout and order.
  c.shots = a["shots"]  # per class; 0 = every training cloud (configs/finetune.py)
  c.epochs = 100  # passes over the shots
  c.batch_size = 32  # training clouds per step (cut to the training set)
  c.eval_batch_size = 1024  # clouds per evaluation batch
  # > 0: a stratified validation split carved out of train before the shots are
  # drawn; the test accuracy at the best validation epoch is then reported too.
  c.val_fraction = 0.0
  # False: train on cached features. True: re-render every step from a fresh
  # random subset of each cloud's stored points (slower: the encoders run live;
  # data.num_points must be below the stored count).
  c.augment = False
  c.checkpoint_every_epochs = 0  # 0: only the final checkpoint.

  c.data = ml_collections.ConfigDict()
  c.data.name = a["dataset"]  # a prepared dataset (docs/datasets.md)
  c.data.train_split = "train"  # the split the shots are drawn from
  c.data.test_split = "test"  # the split tested
  # $TFDS_DATA_DIR, else ~/tensorflow_datasets; empty: <workdir>/tensorflow_datasets.
  c.data.data_dir = default_data_dir()
  c.data.num_points = 1024  # points per cloud projected
  c.data.sampling = "first"  # first: the first N stored points; fps: farthest-point sampling
  c.data.align_modelnet = a["dataset"].startswith("modelnet")  # z-up -> y-up, as CLIP2Point
  c.data.primitives = ml_collections.ConfigDict()  # primitives only: options to prepare with

  c.clip = common.clip_config()  # path C, and the text tower; name empty: a tiny random CLIP
  # Path P: a CLIP2Point pre-trained depth encoder; empty = CLIP's own image tower.
  c.depth_encoder = ""
  c.prompts = ("image of a {}",)  # text templates; {} is the class name
  # (elevation, azimuth) pairs in degrees, one depth map each (CLIP2Point's 10).
  c.views = tuple(cameras.VIEWS_PRETRAIN)

  c.render = common.render_config()

  c.encode_batch_size = 32  # clouds per batch of the caching pass (x views images)
  c.cache_dir = ""  # empty: <workdir>/feature_cache

  c.model = ml_collections.ConfigDict()
  # "gdpa": CLIP2Point's Gated Dual-Path Adapter; "linear_probe": CLIP's linear
  # probe on the views' mean features (models/linear_probe.py; the fields below are the GDPA's).
  c.model.kind = "gdpa"
  c.model.fusion = "gate"  # or "mean": the released code's fixed 0.5/0.5
  c.model.dropout = 0.075  # dropout in both adapters
  c.model.view_init = 0.5  # initial value of each view's learned weight
  c.model.logit_scale = 1.0  # 1.0: none, as released
  c.model.learn_logit_scale = False  # train the logit scale too

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 1e-3  # AdamW learning rate
  c.optim.weight_decay = 1e-4  # AdamW weight decay
  # Regexes over the model's parameter paths (the GDPA's adapter_depth/fc1/kernel,
  # gate/bias...; the probe's adapter_probe/kernel, /bias); the rest is frozen.
  # The default trains all of either kind. The encoders are always frozen.
  c.optim.trainable = ("adapter_.*", "gate/.*", "logit_scale")
  c.optim.lr_mults = ()  # ((regex, multiplier), ...)

  if a["tiny"]:
    # Offline: a tiny random CLIP made in <workdir>/tiny_clip (224 px, 32 px
    # patches); float32, since CPUs have no fast bfloat16 matmuls.
    c.clip.name = ""
    c.clip.dtype = "float32"
    c.seeds = (0,)
    c.batch_size = 8
    c.eval_batch_size = 64
    c.encode_batch_size = 16
    c.data.num_points = 512
    # Discs that fill the surfaces: a random tiny CLIP tells the 8 built-in
    # shapes apart far better from them than from sparse dots (about 45% test
    # top-1 at radius 0.08 against 31% at 0.06 and 24% at 0.02, 12.5% chance).
    c.render.radius = 0.08
    c.data.primitives = ml_collections.ConfigDict(dict(
        num_per_class_train=16, num_per_class_test=8, num_points_stored=512))
  return c
