"""Average precision of 3D detections, as VoteNet's and 3DETR's `eval_det`.

Per class and IoU threshold:

1. The class's detections of all scenes are sorted by score, highest first.
   Ties keep their input order (scenes in the order given, then the order of
   detections within a scene): a stable sort, where the references' default
   numpy sort leaves tie order unspecified.
2. Going down that list, a detection is a true positive when its best-IoU
   ground-truth box of the same class in the same scene (the first one on
   equal IoU) overlaps it by IoU > threshold (strictly) and was not matched
   before; otherwise (no box above the threshold, or that box already taken,
   even if another box is still free) it is a false positive. Each
   ground-truth box is matched at most once.
3. recall = cumulative TP / number of ground-truth boxes,
   precision = cumulative TP / cumulative detections; AP is the area under the
   precision envelope (VOC 2010+), or with `use_11_point` the mean over recall
   thresholds 0, 0.1, ..., 1 of the best precision at recall >= threshold
   (VOC 2007).

A class is evaluated when it has ground truth or detections in any scene. A
class with ground truth and no detections, or with detections and no ground
truth, has AP 0 (3DETR's rule; VoteNet's gives NaN for the second). mAP is the
mean AP over the evaluated classes; classes with neither are left out and
reported as None.
"""

from typing import NamedTuple, Sequence

import numpy as np

from clip2point_jax.detection import boxes as box_lib


class SceneBoxes(NamedTuple):
  """Labelled boxes of one scene: ground truth (scores unused) or detections."""
  boxes: np.ndarray  # float[K, 7]
  labels: np.ndarray  # int[K], class indices
  scores: np.ndarray | None = None  # float[K]; None for ground truth


def voc_ap(recall: np.ndarray, precision: np.ndarray, use_11_point: bool = False) -> float:
  """VOC average precision from recall and precision, in detection order.

  Args:
    recall, precision: float[D], after each of the D ranked detections.
    use_11_point: VOC 2007's 11-point interpolation instead of the area.
  """
  recall = np.asarray(recall, np.float64)
  precision = np.asarray(precision, np.float64)
  if use_11_point:
    # i * 0.1, the same floats as the references' np.arange(0, 1.1, 0.1).
    total = 0.0
    for t in np.arange(11) * 0.1:
      reached = recall >= t
      total += precision[reached].max() if reached.any() else 0.0
    return total / 11.0
  r = np.concatenate([[0.0], recall, [1.0]])
  p = np.concatenate([[0.0], precision, [0.0]])
  envelope = np.maximum.accumulate(p[::-1])[::-1]
  steps = np.nonzero(r[1:] != r[:-1])[0]
  return float(np.sum((r[steps + 1] - r[steps]) * envelope[steps + 1]))


def match_detections(detections: Sequence[SceneBoxes], ground_truth: Sequence[SceneBoxes],
                     class_index: int, iou_threshold: float):
  """True/false positives of one class's detections, in ranked order.

  Args:
    detections, ground_truth: one `SceneBoxes` per scene, same scene order.
    class_index: the class to evaluate.
    iou_threshold: a match needs IoU > this.

  Returns:
    (scores float64[D] sorted high to low, is_tp bool[D], num_gt int).
  """
  scene_of, index_of, scores = [], [], []
  for s, det in enumerate(detections):
    idx = np.nonzero(np.asarray(det.labels) == class_index)[0]
    scene_of.append(np.full(len(idx), s))
    index_of.append(idx)
    scores.append(np.asarray(det.scores, np.float64)[idx])
  scene_of, index_of, scores = map(np.concatenate, (scene_of, index_of, scores))
  order = np.argsort(-scores, kind="stable")
  scene_of, index_of, scores = scene_of[order], index_of[order], scores[order]
  is_tp = np.zeros(len(scores), bool)
  num_gt = 0
  for s, (det, gt) in enumerate(zip(detections, ground_truth)):
    gt_idx = np.nonzero(np.asarray(gt.labels) == class_index)[0]
    num_gt += len(gt_idx)
    ranked = np.nonzero(scene_of == s)[0]  # this scene's detections, in ranked order
    if not len(ranked) or not len(gt_idx):
      continue
    iou = box_lib.iou_3d(np.asarray(det.boxes)[index_of[ranked]], np.asarray(gt.boxes)[gt_idx])
    best, overlap = iou.argmax(1), iou.max(1)
    taken = np.zeros(len(gt_idx), bool)
    # Only detections above the threshold can match; the loop is over those.
    for r in np.nonzero(overlap > iou_threshold)[0]:
      if not taken[best[r]]:
        taken[best[r]] = True
        is_tp[ranked[r]] = True
  return scores, is_tp, num_gt


def average_precision(detections: Sequence[SceneBoxes], ground_truth: Sequence[SceneBoxes],
                      class_index: int, iou_threshold: float, use_11_point: bool = False):
  """AP and final recall of one class, or (None, None) if it is not evaluated."""
  scores, is_tp, num_gt = match_detections(detections, ground_truth, class_index, iou_threshold)
  if not num_gt and not len(scores):
    return None, None
  if not num_gt or not len(scores):
    return 0.0, 0.0
  tp = np.cumsum(is_tp)
  fp = np.cumsum(~is_tp)
  recall = tp / float(num_gt)
  precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
  return voc_ap(recall, precision, use_11_point), float(recall[-1])


def evaluate(detections: Sequence[SceneBoxes], ground_truth: Sequence[SceneBoxes],
             class_names: Sequence[str], iou_thresholds=(0.25, 0.5),
             use_11_point: bool = False) -> dict:
  """Per-class AP and recall, and mAP, at each IoU threshold.

  Args:
    detections: per scene, boxes with labels and scores.
    ground_truth: per scene (same order), boxes with labels.
    class_names: names of the class indices.
    iou_thresholds: e.g. (0.25, 0.5) for mAP@0.25 and mAP@0.5.
    use_11_point: VOC 2007's 11-point AP.

  Returns:
    JSON-ready: {"iou_0.25": {"mAP", "mean_recall", "ap": {class: AP or None},
    "recall": {...}, "num_gt": {...}, "num_detections": {...},
    "evaluated_classes": [...]}, ...}.
  """
  if len(detections) != len(ground_truth):
    raise ValueError(f"{len(detections)} scenes of detections but {len(ground_truth)} of ground truth")
  result = {}
  for threshold in iou_thresholds:
    ap, recall, num_gt, num_det = {}, {}, {}, {}
    for c, name in enumerate(class_names):
      ap[name], recall[name] = average_precision(detections, ground_truth, c, threshold, use_11_point)
      num_gt[name] = int(sum(np.sum(np.asarray(g.labels) == c) for g in ground_truth))
      num_det[name] = int(sum(np.sum(np.asarray(d.labels) == c) for d in detections))
    evaluated = [n for n in class_names if ap[n] is not None]
    result[f"iou_{threshold:g}"] = {
        "iou_threshold": float(threshold),
        "mAP": float(np.mean([ap[n] for n in evaluated])) if evaluated else 0.0,
        "mean_recall": float(np.mean([recall[n] for n in evaluated])) if evaluated else 0.0,
        "ap": ap, "recall": recall, "num_gt": num_gt, "num_detections": num_det,
        "evaluated_classes": evaluated,
    }
  return result
