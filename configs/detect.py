"""Open-vocabulary 3D detection: classify box proposals with CLIP2Point, then mAP.

  # ScanNet: scans, VoteNet's *_bbox.npy and a detector's proposals.
  python -m clip2point_jax.main --config configs/detect.py \
      --config.data.scans_dir=~/scannet/scans \
      --config.data.boxes_dir=~/scannet/scannet_train_detection_data \
      --config.data.proposals_dir=~/proposals \
      --config.clip.name=openai/clip-vit-base-patch32 --workdir runs/detect

  # Synthetic scenes of the built-in shapes, made in the workdir (no download).
  python -m clip2point_jax.main --config configs/detect.py:dataset=synthetic \
      --workdir runs/detect_synthetic

Arguments after the colon: `dataset=scannet` (default) or `synthetic`, and
`tiny` for the small settings tests and CI use. File formats are in
`clip2point_jax/detection/scannet.py` and docs/detection.md.
"""

import ml_collections

from renderers import cameras
from clip2point_jax.core.config_args import load_sibling, parse_arg

common = load_sibling(__file__, "common")

DATASETS = ("scannet", "synthetic")


def get_config(arg=None):
  a = parse_arg(arg, dataset="scannet", tiny=False)
  if a["dataset"] not in DATASETS:
    from clip2point_jax.errors import UserError  # pylint: disable=g-import-not-at-top
    raise UserError(f"config argument dataset={a['dataset']!r}; use one of {', '.join(DATASETS)}")
  synthetic = a["dataset"] == "synthetic"
  c = ml_collections.ConfigDict()
  c.task = "detect"  # the task module that runs (clip2point_jax/tasks/)
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = a["dataset"]
  # Folders (flat, or one sub-folder per scene). Empty boxes/proposals dirs
  # mean the folder before. synthetic: empty scans_dir = <workdir>/synthetic_scenes.
  c.data.scans_dir = ""
  c.data.boxes_dir = ""  # the *_bbox.npy ground-truth boxes (empty: scans_dir)
  c.data.proposals_dir = ""  # a detector's box proposals (empty: boxes_dir)
  c.data.scenes = ""  # comma-separated scene names (default: every *_bbox.npy)
  c.data.max_scenes = 0  # 0: all
  c.data.classes = "primitives" if synthetic else "scannet18"  # or 'a,b,c'
  c.data.label_format = "index" if synthetic else "nyu40"  # _bbox.npy labels: nyu40 ids or indices
  c.data.z_up = True  # scenes are z-up; crops are turned y-up before rendering
  # synthetic only: the scenes to make (when scans_dir is empty).
  c.data.synthetic = ml_collections.ConfigDict()
  c.data.synthetic.num_scenes = 8  # scenes to make
  c.data.synthetic.num_objects = 4  # built-in shapes per scene
  c.data.synthetic.points_per_object = 1500  # points sampled on each shape's surface
  c.data.synthetic.floor_points = 6000  # points of the floor under them

  c.crop = ml_collections.ConfigDict()
  c.crop.num_points = 1024  # points per crop (sampled; fewer are padded)
  c.crop.margin = 0.1  # box extents x (1 + margin) when cropping
  c.crop.min_points = 5  # boxes with fewer points are dropped (VoteNet's empty-box rule)
  # "device": crops made by one jitted program on the device (detection/device_crops.py);
  # "host": in numpy on the host (boxes.crop_boxes). The same crops either way.
  c.crop.where = "device"

  c.classifier = ml_collections.ConfigDict()
  # "zeroshot", "gdpa" (a trained adapter: set classifier.checkpoint) or "oracle"
  # (ground-truth labels: the best these proposals allow).
  c.classifier.kind = "zeroshot"
  c.classifier.checkpoint = ""  # gdpa: a fewshot or finetune workdir

  # Empty name: a tiny random CLIP made in the workdir.
  c.clip = common.clip_config("" if synthetic else "openai/clip-vit-base-patch32")
  c.depth_encoder = ""  # zeroshot: a pre-training workdir or checkpoint (empty: CLIP's tower)
  c.prompts = ("image of a {}",)
  c.views = tuple(cameras.VIEWS_ZERO_SHOT)
  c.view_weights = ()
  c.render = common.render_config()

  c.scores = ml_collections.ConfigDict()
  c.scores.use_objectness = True  # score = class probability x objectness
  c.scores.per_class = False  # True: every class of every box is a detection (VoteNet's eval)

  c.eval = ml_collections.ConfigDict()
  c.eval.iou_thresholds = (0.25, 0.5)  # mAP at each 3D IoU threshold
  c.eval.use_11_point = False  # True: VOC07 11-point AP instead of the area under the curve

  c.batch_size = 32  # box crops classified per batch
  c.num_plot_scenes = 3  # scenes drawn with their boxes
  c.plot_max_boxes = 12  # highest-scoring predictions drawn per scene

  if a["tiny"]:
    c.data.synthetic.update(num_scenes=2, num_objects=4, points_per_object=300, floor_points=1500)
    c.crop.num_points = 128
    c.batch_size = 8
    c.num_plot_scenes = 1
  return c
