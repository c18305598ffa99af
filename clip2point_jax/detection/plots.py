"""Bird's-eye views of scenes with ground-truth and predicted labelled boxes."""

import matplotlib

matplotlib.use("Agg")  # Files only; no display on servers and CI.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from clip2point_jax.detection import boxes as box_lib  # noqa: E402

GT_COLOR = "#1a9641"
PRED_COLOR = "#d7191c"


def save_birds_eye_view(points: np.ndarray, colors: np.ndarray | None, gt_boxes: np.ndarray,
                        gt_names, pred_boxes: np.ndarray, pred_names, pred_scores, path: str,
                        title: str = "", max_points: int = 20000, seed: int = 0) -> None:
  """The scene seen from above (x right, y up) with labelled boxes.

  Args:
    points: float[P, 3]; colors: uint8[P, 3] or None (grey).
    gt_boxes: float[G, 7] drawn solid green with their class names.
    gt_names: G class names.
    pred_boxes: float[D, 7] drawn dashed red with "name score".
    pred_names, pred_scores: D names and scores.
    path: the PNG to write.
    max_points: points drawn (a random subset), to keep the file small.
  """
  points = np.asarray(points)
  if len(points) > max_points:
    keep = np.random.default_rng(seed).choice(len(points), max_points, replace=False)
    keep.sort()
    points = points[keep]
    colors = None if colors is None else np.asarray(colors)[keep]
  order = np.argsort(points[:, 2])  # higher points drawn last, as seen from above
  fig, ax = plt.subplots(figsize=(6.4, 5.6))
  ax.scatter(points[order, 0], points[order, 1], s=0.6, linewidths=0,
             c=(np.asarray(colors)[order] / 255.0) if colors is not None else "0.6")
  for boxes, names, scores, color, style in (
      (gt_boxes, gt_names, None, GT_COLOR, "-"), (pred_boxes, pred_names, pred_scores, PRED_COLOR, "--")):
    if not len(boxes):
      continue
    corners = box_lib.bev_corners(boxes)
    for i, quad in enumerate(corners):
      closed = np.concatenate([quad, quad[:1]])
      ax.plot(closed[:, 0], closed[:, 1], style, color=color, linewidth=1.4)
      label = names[i] if scores is None else f"{names[i]} {scores[i]:.2f}"
      # Ground truth labelled at the box's top-left corner, predictions below its bottom-right.
      if scores is None:
        anchor, va, ha = quad[np.argmin(quad[:, 0] - quad[:, 1])], "bottom", "left"
      else:
        anchor, va, ha = quad[np.argmax(quad[:, 0] - quad[:, 1])], "top", "right"
      ax.text(anchor[0], anchor[1], label, color=color, fontsize=7, va=va, ha=ha,
              bbox=dict(facecolor="white", alpha=0.7, edgecolor="none", pad=0.5))
  ax.plot([], [], "-", color=GT_COLOR, label="ground truth")
  ax.plot([], [], "--", color=PRED_COLOR, label="prediction (class, score)")
  ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
  ax.set_aspect("equal")
  ax.set_xlabel("x (m)")
  ax.set_ylabel("y (m)")
  ax.set_title(title, fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
