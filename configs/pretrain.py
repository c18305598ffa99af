"""CLIP2Point image-depth contrastive pre-training.

  python -m clip2point_jax.main --config configs/pretrain.py --workdir runs/pretrain

The default is the paper's recipe at full scale: CLIP ViT-B/32, ShapeNet-55
with its ten RGB renderings per shape, batch 256, 100 epochs, LAMB (lr 6e-3,
weight decay 1e-4), cosine annealing with warm restarts every 2 epochs down to
1e-5, tau = 0.7 (supplementary Sec. 1), negatives from the whole global batch.

Arguments after the colon:
  released_code  what the authors' released code ran: tau = 0.07 and
                 negatives only within each GPU's share of the batch
                 (nn.DataParallel), i.e. groups of batch_size / gpus samples.
  gpus=<n>       with released_code: the GPU count to emulate (default 8; the
                 authors' code and README do not state theirs).
  tiny           a tiny random CLIP and the built-in shapes (`primitives` with
                 their rendered views), a few hundred steps on a CPU.
  encoder=point_transformer
                 the supplementary's Sec. 4: a Point Transformer on the points
                 instead of the depth encoder (trainable: point_encoder/.* and
                 w); with tiny, a small one (widths 8-32) that runs on a CPU.
"""

import ml_collections

from clip2point_jax.core.config_args import default_data_dir, load_sibling, parse_arg
from renderers import cameras


common = load_sibling(__file__, "common")


def _zero_shot_eval(dataset: str, views, batch_size: int = 64) -> ml_collections.ConfigDict:
  """A zero-shot evaluation during training (fields as in configs/zeroshot.py)."""
  e = ml_collections.ConfigDict()
  e.data = ml_collections.ConfigDict()
  e.data.name = dataset
  e.data.split = "test"  # the split it evaluates
  e.data.data_dir = ""  # empty: config.data.data_dir
  e.data.num_points = 1024
  e.data.sampling = "first"
  e.data.align_modelnet = dataset.startswith("modelnet")  # ModelNet is z-up.
  e.data.primitives = ml_collections.ConfigDict()
  e.views = tuple(views)
  e.view_weights = ()
  e.prompts = ("image of a {}",)  # text templates; {} is the class name
  e.batch_size = batch_size
  return e


def get_config(arg=None):
  a = parse_arg(arg, released_code=False, gpus=8, tiny=False, encoder="depth")
  c = ml_collections.ConfigDict()
  c.task = "pretrain"  # the task module that runs (clip2point_jax/tasks/)
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "shapenet55"  # needs its renderings (prepare with the Rendering archive)
  c.data.split = "train"  # the split it trains on
  # $TFDS_DATA_DIR, else ~/tensorflow_datasets; empty: <workdir>/tensorflow_datasets.
  c.data.data_dir = default_data_dir()
  c.data.num_points = 1024  # drawn at random from the stored points at every step
  # primitives only: options to prepare it with on first use (empty: defaults).
  c.data.primitives = ml_collections.ConfigDict()

  # The clip block every task shares (bfloat16 matmuls; parameters, optimiser,
  # loss and layer norms stay float32). Name empty: a tiny random CLIP.
  c.clip = common.clip_config()
  c.clip.tiny_patch_size = 32  # only for the tiny random CLIP (name empty)

  # The encoder trained: "depth" (CLIP2Point's: a copy of CLIP's image tower on
  # depth maps) or "point_transformer" (a 3D network on the points, trained from
  # scratch, params under point_encoder/; use the argument encoder=point_transformer,
  # which also sets optim.trainable). docs/pretraining.md says how its loss reads.
  c.encoder = "depth"
  c.point_transformer = ml_collections.ConfigDict()
  # Modules per stage: authors (2, 3, 4, 6, 3), cls26, cls38 or cls50 (Pointcept's).
  c.point_transformer.preset = "authors"
  # Its Linear layers' compute dtype; parameters, BatchNorm and softmax stay float32.
  c.point_transformer.dtype = "bfloat16"
  # Stages with fewer points than neighbours: "pointcept" (zero features) or "authors".
  c.point_transformer.missing_neighbours = "pointcept"
  c.point_transformer.blocks = ()  # modules per stage (transition included); empty: the preset's
  c.point_transformer.planes = ()  # widths per stage; empty: (32, 64, 128, 256, 512)
  c.point_transformer.strides = ()  # subsampling per stage; empty: (1, 4, 4, 4, 4)
  c.point_transformer.neighbours = ()  # k per stage; empty: (8, 16, 16, 16, 16)
  # The two augmentations of each cloud the intra-modal loss compares (after
  # centring it in the unit ball), each drawn from (seed, step) in the step.
  c.point_transformer.augment = ml_collections.ConfigDict()
  # Per-axis scale factors, uniform in [low, high) (Point-BERT's ShapeNet-55 range).
  c.point_transformer.augment.scale = (2.0 / 3.0, 1.5)
  c.point_transformer.augment.jitter_sigma = 0.01  # per-point Gaussian noise (PointNet's)
  c.point_transformer.augment.jitter_clip = 0.05  # the noise is clipped to +-this
  c.point_transformer.augment.rotate = True  # a uniform rotation about the up (y) axis

  # F_I of the frozen image encoder: "cache" computes it once for every
  # (shape, view) and stores it beside the dataset; "live" runs E_I in the step.
  c.image_features = "cache"
  c.image_cache = ml_collections.ConfigDict()
  c.image_cache.dir = ""  # empty: <dataset folder>/clip_image_features/<clip>/<split>
  c.image_cache.dtype = "float16"  # float16, bfloat16 or float32
  c.image_cache.batch_size = 64  # shapes per batch (10 views each)
  c.workers = 8  # threads decoding PNGs

  # Every projector setting of the block (mode, camera, radius, ...) reaches
  # the train step and the zero-shot evaluations.
  c.render = common.render_config()
  # The two depth maps of a view are taken at distances
  # render.distance * (1 + jitter (2U - 1)), U ~ U[0, 1): [0.9, 1.1) as in the paper.
  c.render.distance_jitter = 0.1

  c.loss = ml_collections.ConfigDict()
  c.loss.temperature = 0.7  # tau of both contrastive losses (the paper; released code: 0.07)
  c.loss.negatives_group = 0  # 0: the whole global batch; k: groups of k samples
  c.w_init = 1.0  # L = L_cross + L_intra / w^2 + log(w + 1), w trained

  c.batch_size = 256  # global, over all devices and hosts
  c.num_epochs = 100  # passes over the training shapes
  c.num_steps = 0  # > 0: train this many steps instead of num_epochs

  c.optim = ml_collections.ConfigDict()
  c.optim.learning_rate = 6e-3  # LAMB peak learning rate
  c.optim.weight_decay = 1e-4  # decoupled, as LAMB applies it
  c.optim.b1 = 0.9  # LAMB moment decay rates
  c.optim.b2 = 0.999  # LAMB second-moment decay rate
  c.optim.eps = 1e-6  # LAMB epsilon
  c.optim.clamp_value = 10.0  # upper bound of the LAMB trust ratio
  c.optim.restart_epochs = 2  # CosineAnnealingWarmRestarts period, stepped per iteration
  c.optim.restart_steps = 0  # > 0: the period in steps instead
  c.optim.eta_min = 1e-5  # the learning rate at the end of each cosine period
  # Regexes over parameter paths ("depth_encoder/vision_model/encoder/layers_0/
  # mlp/fc1/kernel", "w"); the rest stays at its initial value.
  c.optim.trainable = ("depth_encoder/.*", "w")
  c.optim.lr_mults = ()  # (regex, multiplier) pairs, first match wins
  # The train state (and its checkpoints) holds the encoder's 12 layers as one
  # stacked array per kind of tensor, so LAMB runs a few kernels per kind
  # rather than per tensor (clip2point_jax/core/layer_stack.py); the same updates.
  # Off: on an H200 the step is no faster (bench/RESULTS.md).
  c.optim.stack_layers = False
  # (regex, partition spec) pairs for the parameters (and their optimiser
  # state), e.g. ((".*kernel", (None, "data")),) for FSDP; default replicated.
  # With optim.stack_layers they see the state's paths (".../encoder/layers/...")
  # and arrays with the layer axis first.
  c.sharding_rules = ()

  c.log_every = 20  # steps between metric records (and device-to-host copies)
  c.eval_every_epochs = 2  # 0: only at the end
  c.eval_every_steps = 0  # > 0: instead of eval_every_epochs
  c.evals = ml_collections.ConfigDict()
  # Validation, used for model selection: ShapeNet-55 test, 55 classes, 10 views.
  c.evals.val = _zero_shot_eval("shapenet55", cameras.VIEWS_PRETRAIN)
  # Downstream, reported only: ModelNet40 (aligned, as CLIP2Point), 6 views.
  c.evals.downstream = _zero_shot_eval("modelnet40_aligned", cameras.VIEWS_ZERO_SHOT)

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 1000  # and at every evaluation and at the end
  c.checkpoint.keep = 2  # the latest N, plus the best by validation
  c.checkpoint.async_save = True  # write checkpoints while training goes on
  c.prefetch = 2  # batches read and sent to the devices ahead of the step (a background thread)

  if a["released_code"]:
    c.loss.temperature = 0.07
    if c.batch_size % a["gpus"]:
      from clip2point_jax.errors import UserError  # pylint: disable=g-import-not-at-top
      raise UserError(f"gpus={a['gpus']} does not divide the batch size {c.batch_size}")
    c.loss.negatives_group = c.batch_size // a["gpus"]

  if a["encoder"] not in ("depth", "point_transformer"):
    from clip2point_jax.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f"config argument encoder={a['encoder']!r}; use depth or point_transformer")
  if a["encoder"] == "point_transformer":
    c.encoder = "point_transformer"
    # The 3D network is trained whole, from scratch.
    c.optim.trainable = ("point_encoder/.*", "w")

  if a["tiny"]:
    c.clip.name = ""  # a tiny random CLIP made in <workdir>/tiny_clip
    c.clip.dtype = "float32"  # CPUs have no fast bfloat16 matmuls
    c.data.name = "primitives"
    c.data.data_dir = ""
    c.data.num_points = 256
    c.data.primitives = ml_collections.ConfigDict(dict(
        num_per_class_train=8, num_per_class_test=2, num_points_stored=512))
    c.render.image_size = 64
    # 0.02 covers under a pixel at 64 px and leaves near-empty depth maps.
    c.render.radius = 0.06
    c.clip.tiny_patch_size = 16
    c.batch_size = 16
    c.num_steps = 300
    c.optim.restart_steps = 100
    c.optim.learning_rate = 1e-2
    c.image_cache.batch_size = 8
    c.workers = 2
    c.log_every = 10
    c.eval_every_steps = 100
    c.checkpoint.every_steps = 100
    for name, views in (("val", cameras.VIEWS_PRETRAIN), ("downstream", cameras.VIEWS_ZERO_SHOT)):
      e = _zero_shot_eval("primitives", views, batch_size=16)
      e.data.num_points = 256
      e.data.primitives = c.data.primitives
      c.evals[name] = e
    # A Point Transformer small enough for a CPU: three stages (N, N/4, N/16
    # points), two attention blocks after the first, widths 8 to 32.
    c.point_transformer.dtype = "float32"
    c.point_transformer.blocks = (1, 2, 2)
    c.point_transformer.planes = (8, 16, 32)
    c.point_transformer.strides = (1, 4, 4)
    c.point_transformer.neighbours = (8, 8, 8)
  return c
