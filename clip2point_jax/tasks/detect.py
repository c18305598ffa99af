"""Open-vocabulary 3D detection: classify proposals with CLIP2Point, evaluate mAP.

For every scene: crop the points inside each proposal box, drop boxes with
too few points, classify the crops in padded batches on the device, score
each kept box (class probability, times objectness if asked) and evaluate
the detections against the ground truth as VoteNet and 3DETR do.

Writes to the workdir: `metrics.json` (per-class AP and recall and mAP at
each IoU threshold, counts, settings), `detections.json` (per scene, every
kept box with its most probable class and score) and `bev_<scene>.png` for
the first few scenes; prints a per-class table.
"""

import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from clip2point_jax.core import parallel
from clip2point_jax.detection import boxes as box_lib
from clip2point_jax.detection import classifiers, evaluate, pipeline, plots, scannet, synthetic
from clip2point_jax.detection.evaluate import SceneBoxes
from clip2point_jax.errors import UserError
from clip2point_jax.tools import make_tiny_clip


def _read(path):
  with open(path) as f:
    return f.read()


def _prepare_inputs(config, workdir):
  """Makes the synthetic scenes and the tiny CLIP where the config asks for them."""
  updates = {}
  if config.data.name == "synthetic" and not config.data.scans_dir:
    folder = os.path.join(workdir, "synthetic_scenes")
    options = dict(config.data.synthetic)
    stamp = os.path.join(folder, "options.json")
    wanted = json.dumps({"seed": config.seed, **options}, sort_keys=True)

    def write_scenes_once():
      if not os.path.exists(stamp) or _read(stamp) != wanted:
        scene_options = dict(options)
        num_scenes = scene_options.pop("num_scenes")
        synthetic.write_scene_folder(folder, num_scenes, seed=config.seed, **scene_options)
        with open(stamp, "w") as f:
          f.write(wanted)

    parallel.host0_first(write_scenes_once, "synthetic scenes written")
    updates["scans_dir"] = folder
  if config.classifier.kind == "zeroshot" and not config.clip.name:
    clip_dir = make_tiny_clip.ensure_tiny_clip(os.path.join(workdir, "tiny_clip"), seed=config.seed)
    with config.unlocked():
      config.clip.name = clip_dir
    print(f"detect: using a tiny CLIP with RANDOM weights ({clip_dir}); expect near-zero mAP. "
          "Set --config.clip.name to a real CLIP (e.g. openai/clip-vit-base-patch32).")
  if updates:
    with config.unlocked():
      config.data.scans_dir = updates["scans_dir"]


def _check_config(config):
  if config.crop.num_points < 1:
    raise UserError(f"config.crop.num_points={config.crop.num_points} must be positive")
  if config.crop.margin <= -1:
    raise UserError(f"config.crop.margin={config.crop.margin} must be > -1")
  if config.batch_size < 1:
    raise UserError(f"config.batch_size={config.batch_size} must be positive")
  if config.data.name != "synthetic" and not config.data.scans_dir:
    raise UserError("config.data.scans_dir is empty: give the folder of the ScanNet scans "
                    "(and boxes_dir/proposals_dir if those files are elsewhere)")
  thresholds = tuple(config.eval.iou_thresholds)
  if not thresholds or any(not 0 <= t < 1 for t in thresholds):
    raise UserError(f"config.eval.iou_thresholds={thresholds}: give thresholds in [0, 1)")


def run(config, workdir: str) -> dict:
  """Detects and evaluates; returns the metrics dict it writes."""
  os.makedirs(workdir, exist_ok=True)
  _check_config(config)
  _prepare_inputs(config, workdir)
  # 1. Mesh.
  mesh = parallel.make_mesh()

  # 2. Data: the scene files (read one scene at a time in the loop).
  class_names, prompt_names = scannet.resolve_classes(config.data.classes)
  files = scannet.find_scenes(config.data.scans_dir, config.data.boxes_dir, config.data.proposals_dir,
                              config.data.scenes)
  if config.data.max_scenes:
    files = files[:config.data.max_scenes]

  # 3. Model: the box classifier (the seam in detection/classifiers.py);
  # 4. step: it is the jitted crops -> logits function the batcher calls;
  # 5. checkpoint restore: a builder that needs one (GDPA) restores it itself.
  oracle = config.classifier.kind == classifiers.ORACLE
  classify = None if oracle else classifiers.build(config, prompt_names, mesh)
  batcher = None if oracle else pipeline.CropBatcher(classify, config.batch_size, config.crop.num_points, mesh)

  # 6./7. One pass over the scenes: crop on the host, classify on the device.
  start = time.time()
  ground_truth, kept_boxes, kept_objectness, oracle_logits = [], [], [], []
  num_proposals = 0
  plotted = {}
  for i, f in enumerate(tqdm(files, desc="detect", unit="scene", disable=jax.process_index() != 0)):
    scene = pipeline.load_scene(f, class_names, config.data.label_format)
    crops = box_lib.crop_boxes(scene.scan.points, scene.proposals, num_points=config.crop.num_points,
                               margin=config.crop.margin, min_points=config.crop.min_points,
                               rng=np.random.default_rng([config.seed, i]))
    ground_truth.append(scene.gt)
    kept_boxes.append(scene.proposals[crops.kept])
    kept_objectness.append(scene.objectness[crops.kept])
    num_proposals += len(scene.proposals)
    if oracle:
      oracle_logits.append(classifiers.oracle_logits(
          kept_boxes[-1], scene.gt.boxes, scene.gt.labels, len(class_names),
          min(config.eval.iou_thresholds)))
    else:
      batcher.add(crops.points[crops.kept], crops.mask[crops.kept])
    if i < config.num_plot_scenes:
      plotted[i] = scene.scan
  if oracle:
    logits = np.concatenate(oracle_logits) if oracle_logits else np.zeros((0, len(class_names)))
  else:
    logits = batcher.finish()
  seconds = time.time() - start
  num_kept = [len(b) for b in kept_boxes]
  per_scene_logits = np.split(logits, np.cumsum(num_kept)[:-1]) if len(files) else []
  detections = [pipeline.detections_from_logits(b, o, l, use_objectness=config.scores.use_objectness,
                                                per_class=config.scores.per_class)
                for b, o, l in zip(kept_boxes, kept_objectness, per_scene_logits)]
  top1 = [pipeline.detections_from_logits(b, o, l, use_objectness=config.scores.use_objectness)
          for b, o, l in zip(kept_boxes, kept_objectness, per_scene_logits)]
  ap = evaluate.evaluate(detections, ground_truth, class_names, tuple(config.eval.iou_thresholds),
                         config.eval.use_11_point)

  result = {
      **{f"mAP@{t:g}": ap[f"iou_{t:g}"]["mAP"] for t in config.eval.iou_thresholds},
      "per_threshold": ap,
      "classes": list(class_names),
      "classifier": config.classifier.kind,
      "clip": config.clip.name if not oracle else None,
      "num_scenes": len(files),
      "num_gt_boxes": int(sum(len(g.labels) for g in ground_truth)),
      "num_proposals": num_proposals,
      "num_kept_boxes": int(sum(num_kept)),
      "num_detections": int(sum(len(d.labels) for d in detections)),
      "seconds": seconds,
      "boxes_per_second": sum(num_kept) / max(seconds, 1e-9),
      "settings": {
          "num_points": config.crop.num_points, "margin": config.crop.margin,
          "min_points": config.crop.min_points, "use_objectness": config.scores.use_objectness,
          "per_class": config.scores.per_class, "use_11_point": config.eval.use_11_point,
          "views": [list(v) for v in config.views], "prompts": list(config.prompts),
          "label_format": config.data.label_format,
      },
  }
  if jax.process_index() == 0:
    _write_outputs(config, workdir, files, class_names, ground_truth, top1, plotted, result)
  return result


def _write_outputs(config, workdir, files, class_names, ground_truth, top1, plotted, result):
  with open(os.path.join(workdir, "metrics.json"), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(workdir, "detections.json"), "w") as f:
    json.dump({"classes": list(class_names), "scenes": {
        s.name: [{"box": np.round(b, 5).tolist(), "class": class_names[int(l)], "score": float(sc)}
                 for b, l, sc in zip(d.boxes, d.labels, d.scores)]
        for s, d in zip(files, top1)}}, f)
  for i, scan in plotted.items():
    gt, det = ground_truth[i], top1[i]
    best = np.argsort(-det.scores, kind="stable")[:config.plot_max_boxes]
    plots.save_birds_eye_view(
        scan.points, scan.colors, gt.boxes, [class_names[int(l)] for l in gt.labels],
        det.boxes[best], [class_names[int(l)] for l in det.labels[best]], det.scores[best],
        os.path.join(workdir, f"bev_{files[i].name}.png"),
        title=f"{files[i].name}: {len(gt.labels)} ground-truth boxes (green), "
              f"top {len(best)} of {len(det.labels)} kept boxes (red)")
  _print_table(result, class_names, config)
  print(f"  {result['num_scenes']} scenes, {result['num_proposals']} proposals, "
        f"{result['num_kept_boxes']} kept (>= {config.crop.min_points} points), "
        f"{result['boxes_per_second']:.1f} boxes/s; wrote metrics.json, detections.json and "
        f"{len(plotted)} bev_*.png to {workdir}")


def _print_table(result, class_names, config):
  keys = [f"iou_{t:g}" for t in config.eval.iou_thresholds]
  per = result["per_threshold"]
  width = max(len(n) for n in list(class_names) + ["class"])
  header = f"{'class':<{width}}  {'GT':>4}  {'det':>5}" + "".join(f"  {'AP@' + k[4:]:>8}" for k in keys)
  print(f"\ndetection ({result['classifier']}), {'11-point ' if config.eval.use_11_point else ''}AP in %:")
  print(header)
  print("-" * len(header))
  first = per[keys[0]]
  for name in class_names:
    if first["ap"][name] is None:
      continue
    cells = "".join(f"  {100 * per[k]['ap'][name]:8.2f}" for k in keys)
    print(f"{name:<{width}}  {first['num_gt'][name]:>4}  {first['num_detections'][name]:>5}{cells}")
  print("-" * len(header))
  cells = "".join(f"  {100 * per[k]['mAP']:8.2f}" for k in keys)
  print(f"{'mAP':<{width}}  {result['num_gt_boxes']:>4}  {result['num_detections']:>5}{cells}")
