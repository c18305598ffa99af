"""What the detect task keeps: metrics.json, detections.json, bird's-eye views and the AP table.

    result = report.summary(config, ap, scenes, class_names, num_proposals=..., ...)
    report.write(config, workdir, scenes, class_names, result)   # host 0
"""

import json
import os
from typing import NamedTuple, Optional, Sequence

import numpy as np

from clip2point_jax.core import throughput
from clip2point_jax.detection import classifiers, plots
from clip2point_jax.detection.evaluate import SceneBoxes


class Scenes(NamedTuple):
  """Per scene, in order: its files, ground truth, top-1 detections; and the scans to draw."""
  files: Sequence  # scannet.SceneFiles
  ground_truth: Sequence[SceneBoxes]
  top1: Sequence[SceneBoxes]  # each kept box with its most probable class
  plotted: dict  # scene index -> scannet.Scan, the first `config.num_plot_scenes`


def summary(config, ap: dict, scenes: Scenes, class_names: Sequence[str], *, num_proposals: int,
            num_detections: int, seconds: float, timer: Optional[throughput.Timer] = None) -> dict:
  """The metrics dict: mAP per IoU threshold, per-class AP (`ap`: `evaluate.evaluate`'s), counts, settings.

  And throughput: `seconds` (the whole pass: reading, cropping, classifying),
  `scenes_per_second` and `boxes_per_second` over it; from the crop
  batcher's `timer` (the oracle has none: nulls), `compile_seconds` (its first
  batch), `crops_per_second` (the crops classified after the first batch over
  their time; with one batch the whole pass's rate, `crops_per_second_note`
  saying so) and `crops_per_second_overall` (kept crops / seconds).
  """
  oracle = config.classifier.kind == classifiers.ORACLE
  num_kept = sum(len(d.labels) for d in scenes.top1)
  if timer is not None and timer.compile_seconds is not None:
    speed = throughput.pass_fields(timer, "crops", num_kept, seconds)
  else:  # the oracle classifies nothing on the device; no crops at all, neither
    speed = {"compile_seconds": None, "crops_per_second": None, "crops_per_second_overall": None}
  return {
      **{f"mAP@{t:g}": ap[f"iou_{t:g}"]["mAP"] for t in config.eval.iou_thresholds},
      "per_threshold": ap,
      "classes": list(class_names),
      "classifier": config.classifier.kind,
      "clip": config.clip.name if not oracle else None,
      "num_scenes": len(scenes.files),
      "num_gt_boxes": int(sum(len(g.labels) for g in scenes.ground_truth)),
      "num_proposals": num_proposals,
      "num_kept_boxes": int(num_kept),
      "num_detections": int(num_detections),
      "seconds": seconds,
      "boxes_per_second": num_kept / max(seconds, 1e-9),
      "scenes_per_second": len(scenes.files) / max(seconds, 1e-9),
      **speed,
      "settings": {
          "num_points": config.crop.num_points, "margin": config.crop.margin,
          "min_points": config.crop.min_points, "crop_where": config.crop.where,
          "use_objectness": config.scores.use_objectness,
          "per_class": config.scores.per_class, "use_11_point": config.eval.use_11_point,
          "views": [list(v) for v in config.views], "prompts": list(config.prompts),
          "label_format": config.data.label_format,
      },
  }


def write(config, workdir: str, scenes: Scenes, class_names: Sequence[str], result: dict) -> None:
  """Writes metrics.json, detections.json and bev_<scene>.png; prints the AP table."""
  with open(os.path.join(workdir, "metrics.json"), "w") as f:
    json.dump(result, f, indent=2)
  with open(os.path.join(workdir, "detections.json"), "w") as f:
    json.dump({"classes": list(class_names), "scenes": {
        s.name: [{"box": np.round(b, 5).tolist(), "class": class_names[int(l)], "score": float(sc)}
                 for b, l, sc in zip(d.boxes, d.labels, d.scores)]
        for s, d in zip(scenes.files, scenes.top1)}}, f)
  for i, scan in scenes.plotted.items():
    gt, det, name = scenes.ground_truth[i], scenes.top1[i], scenes.files[i].name
    best = np.argsort(-det.scores, kind="stable")[:config.plot_max_boxes]
    plots.save_birds_eye_view(
        scan.points, scan.colors, gt.boxes, [class_names[int(l)] for l in gt.labels],
        det.boxes[best], [class_names[int(l)] for l in det.labels[best]], det.scores[best],
        os.path.join(workdir, f"bev_{name}.png"),
        title=f"{name}: {len(gt.labels)} ground-truth boxes (green), "
              f"top {len(best)} of {len(det.labels)} kept boxes (red)")
  print(format_table(result, class_names, tuple(config.eval.iou_thresholds), config.eval.use_11_point))
  print(f"  {result['num_scenes']} scenes, {result['num_proposals']} proposals, "
        f"{result['num_kept_boxes']} kept (>= {config.crop.min_points} points), "
        f"{result['boxes_per_second']:.1f} boxes/s{_crop_speed(result)}; wrote metrics.json, detections.json and "
        f"{len(scenes.plotted)} bev_*.png to {workdir}")


def _crop_speed(result: dict) -> str:
  """" (classifying 812.3 crops/s after a first batch of 4.1 s)", "" for the oracle."""
  if result.get("crops_per_second") is None:
    return ""
  if result.get("crops_per_second_note"):
    return f" (one batch of crops, {result['compile_seconds']:.1f} s with compiling)"
  return (f" (classifying {result['crops_per_second']:.1f} crops/s after a first batch of "
          f"{result['compile_seconds']:.1f} s)")


def format_table(result: dict, class_names: Sequence[str], thresholds: Sequence[float],
                 use_11_point: bool) -> str:
  """Per-class ground-truth and detection counts and AP (in %) at each threshold, then mAP."""
  keys = [f"iou_{t:g}" for t in thresholds]
  per = result["per_threshold"]
  width = max(len(n) for n in list(class_names) + ["class"])
  header = f"{'class':<{width}}  {'GT':>4}  {'det':>5}" + "".join(f"  {'AP@' + k[4:]:>8}" for k in keys)
  lines = [f"\ndetection ({result['classifier']}), {'11-point ' if use_11_point else ''}AP in %:",
           header, "-" * len(header)]
  first = per[keys[0]]
  for name in class_names:
    if first["ap"][name] is None:
      continue
    cells = "".join(f"  {100 * per[k]['ap'][name]:8.2f}" for k in keys)
    lines.append(f"{name:<{width}}  {first['num_gt'][name]:>4}  {first['num_detections'][name]:>5}{cells}")
  lines.append("-" * len(header))
  cells = "".join(f"  {100 * per[k]['mAP']:8.2f}" for k in keys)
  lines.append(f"{'mAP':<{width}}  {result['num_gt_boxes']:>4}  {result['num_detections']:>5}{cells}")
  return "\n".join(lines)
