"""The `clip` and `render` blocks every task shares (loaded with `load_sibling(__file__, "common")`)."""

import ml_collections
from ml_collections import config_dict

from clip2point_jax.core.config_args import default_data_dir
from renderers import points as projector


def clip_config(name: str = "openai/clip-vit-base-patch32") -> ml_collections.ConfigDict:
  """Which CLIP, and how it computes."""
  c = ml_collections.ConfigDict()
  c.name = name  # Hub id or local HF directory.
  # bfloat16: bf16 matmuls with float32 accumulation, float32 parameters,
  # layer-norm statistics and softmax (the fast path); float32: the plain
  # reference path.
  c.dtype = "bfloat16"
  # Pallas kernels on GPUs in half precision (attention; layer norms and
  # quick-GELU at inference), else XLA; "cudnn": cuDNN's attention and XLA's
  # passes; "xla": XLA only.
  c.attention = "auto"
  # auto: the residual stream in the compute dtype, as torch's autocast keeps
  # it; float32: a float32 stream (~12% slower zero-shot on an H200, a little
  # more exact).
  c.residual_dtype = "auto"
  return c


def render_config(**overrides) -> ml_collections.ConfigDict:
  """How clouds are projected to depth maps (`clip2point_jax/projection/settings.py`)."""
  c = ml_collections.ConfigDict()
  c.image_size = projector.IMAGE_SIZE  # must be the CLIP's input size (every mode's views reach CLIP at it)
  c.radius = projector.POINT_RADIUS  # point radius in NDC units (the image spans [-1, 1])
  c.distance = 1.0  # camera distance
  # "hard": CLIP2Point's z-buffer; "soft": differentiable discs and z-buffer;
  # "pointclip", "pointclip_v2": those methods' projectors with their own views
  # (docs/projector.md), and in zero-shot their published prompts and weights.
  c.mode = "hard"
  c.sigma = projector.SOFT_SIGMA  # soft only: half-width of a disc's smoothed edge
  c.gamma = projector.SOFT_GAMMA  # soft only: depth temperature of the soft z-buffer
  # hard only: how each pixel keeps its nearest depth: "scatter" (a scatter-min),
  # "sort" or "dense" (scatter-free, for TPUs), "auto" (dense on TPUs, else
  # scatter); the images are the same, bit for bit.
  c.zbuffer = "auto"
  c.camera = "orthographic"  # CLIP2Point's; or "perspective" (FoVPerspectiveCameras)
  c.fov = 60.0  # perspective only: vertical field of view in degrees
  # CLIP's mean/std on the views (True/False); unset: as each method's code
  # (CLIP2Point's modes yes, the PointCLIPs no).
  c.clip_normalize = config_dict.placeholder(bool)
  c.update(overrides)
  return c


def classify_data_config(dataset: str) -> ml_collections.ConfigDict:
  """The `data` block of a task that classifies one split (zero-shot, compare)."""
  c = ml_collections.ConfigDict()
  c.name = dataset  # a prepared dataset (docs/datasets.md) or files (your own)
  c.split = "test"  # the split classified
  # $TFDS_DATA_DIR, else ~/tensorflow_datasets; empty: <workdir>/tensorflow_datasets.
  c.data_dir = default_data_dir()
  c.num_points = 1024  # points per cloud projected
  c.sampling = "first"  # Builders store points so the first N are the subset to use.
  # ModelNet is z-up; CLIP2Point turns it y-up before rendering.
  c.align_modelnet = dataset.startswith("modelnet")
  c.seed = 0  # files: surface sampling of meshes.
  c.files = ""  # files only: a glob; each file's folder names its class.
  c.classes = ""  # files only: comma-separated names (default: the folders).
  # primitives only: options to prepare it with on first use (empty: defaults).
  c.primitives = ml_collections.ConfigDict()
  return c
