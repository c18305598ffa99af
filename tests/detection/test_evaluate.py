"""Average precision on small detection lists worked out by hand.

Each case lists the ranked detections as TP/FP, the recall and precision after
each, and the AP: VOC area = sum over recall steps of (step) x (best precision
at that recall or beyond); 11-point = mean over t = 0, 0.1, ..., 1 of the best
precision at recall >= t.
"""

import numpy as np
import pytest

from clip2point_jax.detection import evaluate
from clip2point_jax.detection.evaluate import SceneBoxes


def _cube(x, y=0.0, size=1.0):
  return [x, y, 0.5, size, size, size, 0.0]


def _gt(*rows):
  """rows: (box, label)."""
  if not rows:
    return SceneBoxes(np.zeros((0, 7)), np.zeros(0, int))
  return SceneBoxes(np.array([r[0] for r in rows], float), np.array([r[1] for r in rows]))


def _det(*rows):
  """rows: (box, label, score)."""
  if not rows:
    return SceneBoxes(np.zeros((0, 7)), np.zeros(0, int), np.zeros(0))
  return SceneBoxes(np.array([r[0] for r in rows], float), np.array([r[1] for r in rows]),
                    np.array([r[2] for r in rows], float))


def test_missed_box_and_a_false_positive_across_scenes():
  # Class 0: scene 0 has g1 (x=0) and g2 (x=5, never detected); scene 1 has g3.
  gt = [_gt((_cube(0), 0), (_cube(5), 0)), _gt((_cube(0), 0))]
  # Ranked: 0.9 on g1 (TP), 0.8 in scene 1 far from g3 (FP), 0.7 on g3 (TP).
  det = [_det((_cube(0.05), 0, 0.9)), _det((_cube(3), 0, 0.8), (_cube(0), 0, 0.7))]
  # recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
  # Area: 1/3 * 1 + 1/3 * 2/3 = 5/9. 11-point: t <= 0.3 -> 1 (4 of them),
  # t in 0.4..0.6 -> 2/3 (3), t >= 0.7 -> 0: (4 + 2) / 11.
  result = evaluate.evaluate(det, gt, ["chair"], iou_thresholds=(0.25,))
  assert result["iou_0.25"]["ap"]["chair"] == pytest.approx(5 / 9)
  assert result["iou_0.25"]["recall"]["chair"] == pytest.approx(2 / 3)
  assert result["iou_0.25"]["mAP"] == pytest.approx(5 / 9)
  eleven = evaluate.evaluate(det, gt, ["chair"], iou_thresholds=(0.25,), use_11_point=True)
  assert eleven["iou_0.25"]["ap"]["chair"] == pytest.approx(6 / 11)


def test_a_duplicate_is_a_false_positive():
  # g1 at x=0, g2 at x=10. Ranked: 0.9 on g1 (TP), 0.8 on g1 again (FP, g1 taken), 0.7 on g2 (TP).
  gt = [_gt((_cube(0), 0), (_cube(10), 0))]
  det = [_det((_cube(0), 0, 0.9), (_cube(0.1), 0, 0.8), (_cube(10), 0, 0.7))]
  # recall 1/2, 1/2, 1; precision 1, 1/2, 2/3 -> 1/2 * 1 + 1/2 * 2/3 = 5/6.
  ap = evaluate.evaluate(det, gt, ["chair"], iou_thresholds=(0.25,))["iou_0.25"]["ap"]["chair"]
  assert ap == pytest.approx(5 / 6)
  # 11-point: t <= 0.5 -> 1 (6 of them), t in 0.6..1 -> 2/3 (5): (6 + 10/3) / 11.
  eleven = evaluate.evaluate(det, gt, ["chair"], iou_thresholds=(0.25,), use_11_point=True)
  assert eleven["iou_0.25"]["ap"]["chair"] == pytest.approx((6 + 10 / 3) / 11)


def test_best_box_taken_means_false_positive_even_if_another_box_overlaps():
  # g1 at x=0, g2 at x=0.5 (unit cubes). d1 = g1 (TP). d2 at x=0.2 overlaps
  # g1 by 0.8/1.2 = 2/3 and g2 by 0.7/1.3 = 0.54: its best box g1 is taken, so
  # it is a false positive although g2 is free (the references do not fall back).
  gt = [_gt((_cube(0), 0), (_cube(0.5), 0))]
  det = [_det((_cube(0), 0, 0.9), (_cube(0.2), 0, 0.8))]
  # recall 1/2, 1/2; precision 1, 1/2 -> AP 1/2 * 1 = 1/2.
  ap = evaluate.evaluate(det, gt, ["chair"], iou_thresholds=(0.25,))["iou_0.25"]["ap"]["chair"]
  assert ap == pytest.approx(0.5)


def test_tied_scores_keep_input_order():
  # One box g1. Two detections with the same score: a miss and a hit.
  gt = [_gt((_cube(0), 0))]
  miss_first = [_det((_cube(4), 0, 0.8), (_cube(0), 0, 0.8))]
  # FP then TP: recall 0, 1; precision 0, 1/2 -> AP 1 * 1/2.
  ap = evaluate.evaluate(miss_first, gt, ["chair"], iou_thresholds=(0.25,))["iou_0.25"]["ap"]["chair"]
  assert ap == pytest.approx(0.5)
  hit_first = [_det((_cube(0), 0, 0.8), (_cube(4), 0, 0.8))]
  # TP then FP: recall 1, 1; precision 1, 1/2 -> AP 1.
  ap = evaluate.evaluate(hit_first, gt, ["chair"], iou_thresholds=(0.25,))["iou_0.25"]["ap"]["chair"]
  assert ap == pytest.approx(1.0)
  # Across scenes, the earlier scene's detection ranks first on a tie.
  gt2 = [_gt(), _gt((_cube(0), 0))]
  det2 = [_det((_cube(0), 0, 0.8)), _det((_cube(0), 0, 0.8))]  # FP (no box in scene 0), then TP
  ap = evaluate.evaluate(det2, gt2, ["chair"], iou_thresholds=(0.25,))["iou_0.25"]["ap"]["chair"]
  assert ap == pytest.approx(0.5)


def test_classes_without_ground_truth_or_without_detections():
  names = ["chair", "table", "sofa", "lamp"]
  gt = [_gt((_cube(0), 0), (_cube(3), 2))]
  # chair: one hit -> AP 1. table: a detection but no ground truth -> AP 0,
  # and it counts in the mean. sofa: ground truth, no detection -> AP 0.
  # lamp: neither -> not evaluated.
  det = [_det((_cube(0), 0, 0.9), (_cube(6), 1, 0.5))]
  result = evaluate.evaluate(det, gt, names, iou_thresholds=(0.25,))["iou_0.25"]
  assert result["ap"] == {"chair": 1.0, "table": 0.0, "sofa": 0.0, "lamp": None}
  assert result["evaluated_classes"] == ["chair", "table", "sofa"]
  assert result["mAP"] == pytest.approx(1 / 3)
  assert result["recall"]["chair"] == 1.0 and result["recall"]["lamp"] is None
  assert result["num_gt"] == {"chair": 1, "table": 0, "sofa": 1, "lamp": 0}
  assert result["num_detections"] == {"chair": 1, "table": 1, "sofa": 0, "lamp": 0}


def test_iou_threshold_is_strict_and_per_threshold():
  # Cubes of side 5 offset by 3: IoU exactly 0.25 (50 / 200), not a match at 0.25.
  gt = [_gt(([0, 0, 0, 5, 5, 5, 0], 0))]
  exact = [_det(([3, 0, 0, 5, 5, 5, 0], 0, 0.9))]
  assert evaluate.evaluate(exact, gt, ["a"], (0.25,))["iou_0.25"]["ap"]["a"] == 0.0
  # Offset 2: IoU 3/7 = 0.43: a hit at 0.25, a miss at 0.5.
  near = [_det(([2, 0, 0, 5, 5, 5, 0], 0, 0.9))]
  result = evaluate.evaluate(near, gt, ["a"], (0.25, 0.5))
  assert result["iou_0.25"]["ap"]["a"] == 1.0 and result["iou_0.5"]["ap"]["a"] == 0.0


def test_labels_must_match_and_oriented_boxes_count():
  # A perfect box with the wrong label is a false positive for its class and
  # leaves the right class's box missed.
  gt = [_gt(([0, 0, 0, 2, 1, 1, np.pi / 2], 0))]
  wrong = [_det(([0, 0, 0, 2, 1, 1, np.pi / 2], 1, 0.9))]
  result = evaluate.evaluate(wrong, gt, ["a", "b"], (0.25,))["iou_0.25"]
  assert result["ap"] == {"a": 0.0, "b": 0.0} and result["mAP"] == 0.0
  # The same box unturned overlaps it by 1/3: a hit at 0.25 only.
  unturned = [_det(([0, 0, 0, 2, 1, 1, 0], 0, 0.9))]
  result = evaluate.evaluate(unturned, gt, ["a", "b"], (0.25, 0.5))
  assert result["iou_0.25"]["ap"]["a"] == 1.0 and result["iou_0.5"]["ap"]["a"] == 0.0


def test_voc_ap_envelope_by_hand():
  # recall 0.2, 0.4, 0.4, 0.6; precision 1, 1, 2/3, 3/4. Envelope at each
  # recall step: 1 (0 -> 0.2), 1 (0.2 -> 0.4), 3/4 (0.4 -> 0.6): 0.2 + 0.2 + 0.15.
  rec = np.array([0.2, 0.4, 0.4, 0.6])
  prec = np.array([1.0, 1.0, 2 / 3, 0.75])
  assert evaluate.voc_ap(rec, prec) == pytest.approx(0.55)
  # 11-point: t = 0 ... 0.4 -> 1; 0.5 -> 3/4; rest 0. The 7th threshold is
  # 6 * 0.1 = 0.6000000000000001, as in the references' np.arange(0, 1.1, 0.1),
  # so a final recall of exactly 0.6 does not reach it.
  assert evaluate.voc_ap(rec, prec, use_11_point=True) == pytest.approx((5 + 0.75) / 11)


def _naive_ap(det, gt, c, threshold):
  """The matching rule as a plain loop over globally ranked detections."""
  flat = [(score, s, box) for s, d in enumerate(det)
          for box, label, score in zip(d.boxes, d.labels, d.scores) if label == c]
  flat.sort(key=lambda t: -t[0])  # Python's sort is stable too.
  taken = {s: [False] * int(np.sum(g.labels == c)) for s, g in enumerate(gt)}
  hits = []
  for _, s, box in flat:
    boxes = gt[s].boxes[gt[s].labels == c]
    best, best_j = -np.inf, -1
    for j, g in enumerate(boxes):
      lo = np.maximum(box[:3] - box[3:6] / 2, g[:3] - g[3:6] / 2)
      hi = np.minimum(box[:3] + box[3:6] / 2, g[:3] + g[3:6] / 2)
      inter = np.prod(np.clip(hi - lo, 0, None))
      iou = inter / (np.prod(box[3:6]) + np.prod(g[3:6]) - inter)
      if iou > best:
        best, best_j = iou, j
    hit = best > threshold and not taken[s][best_j]
    if hit:
      taken[s][best_j] = True
    hits.append(hit)
  npos = sum(len(v) for v in taken.values())
  tp = np.cumsum(hits)
  recall = tp / npos
  precision = tp / np.arange(1, len(hits) + 1)
  # Area under the precision envelope, summed over the detections' recall steps.
  area, previous = 0.0, 0.0
  for i in range(len(hits)):
    if recall[i] > previous:
      area += (recall[i] - previous) * precision[i:].max()
      previous = recall[i]
  return area


def test_random_scenes_against_a_plain_loop():
  rng = np.random.default_rng(0)
  det, gt = [], []
  for _ in range(5):
    g = rng.integers(1, 5)
    gboxes = np.concatenate([rng.uniform(0, 3, (g, 3)), rng.uniform(0.5, 1.0, (g, 3)), np.zeros((g, 1))], 1)
    glabels = rng.integers(0, 2, g)
    d = rng.integers(0, 8)
    near = gboxes[rng.integers(0, g, d)] + np.concatenate(
        [rng.normal(0, 0.2, (d, 3)), rng.normal(0, 0.1, (d, 3)), np.zeros((d, 1))], 1)
    near[:, 3:6] = np.abs(near[:, 3:6]) + 0.1
    scores = rng.choice([0.2, 0.5, 0.7, 0.9], d)  # ties on purpose
    det.append(SceneBoxes(near, rng.integers(0, 2, d), scores))
    gt.append(SceneBoxes(gboxes, glabels))
  result = evaluate.evaluate(det, gt, ["a", "b"], (0.25, 0.5))
  for key, threshold in (("iou_0.25", 0.25), ("iou_0.5", 0.5)):
    for c, name in enumerate(["a", "b"]):
      assert result[key]["ap"][name] == pytest.approx(_naive_ap(det, gt, c, threshold), abs=1e-12)
  assert 0.1 < result["iou_0.25"]["mAP"] < 0.95  # neither trivial case
