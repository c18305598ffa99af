"""3D boxes: corners, the points inside them, fixed-size crops and IoU.

A box is a row float[7] = [cx, cy, cz, dx, dy, dz, heading]: its centre, its
full extents along its own x, y and z axes, and its rotation in radians about
the up axis (+z), counter-clockwise seen from above, so the box's x axis points
along (cos heading, sin heading, 0). ScanNet's boxes are axis-aligned: the
6-column form [cx, cy, cz, dx, dy, dz] means heading 0. All host-side numpy.
"""

from typing import NamedTuple

import numpy as np

# Crops are computed in chunks of boxes so that boxes x points stays bounded
# (a ScanNet scan has up to ~300k vertices and a detector ~256 proposals).
_CHUNK_ELEMENTS = 1 << 22


def as_boxes(boxes) -> np.ndarray:
  """float[K, 6] (axis-aligned) or float[K, 7] -> float64[K, 7]."""
  boxes = np.asarray(boxes, np.float64)
  if boxes.ndim == 1 and boxes.size == 0:
    boxes = boxes.reshape(0, 7)
  if boxes.ndim != 2 or boxes.shape[1] not in (6, 7):
    raise ValueError(f"boxes must have shape [K, 6] or [K, 7], got {boxes.shape}")
  if boxes.shape[1] == 6:
    boxes = np.concatenate([boxes, np.zeros((len(boxes), 1))], axis=1)
  return boxes


def bev_corners(boxes) -> np.ndarray:
  """The 4 corners of each box seen from above, counter-clockwise.

  Returns:
    float64[K, 4, 2] (x, y).
  """
  boxes = as_boxes(boxes)
  half = boxes[:, 3:5] / 2.0
  signs = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float64)
  local = signs[None] * half[:, None, :]  # [K, 4, 2]
  c, s = np.cos(boxes[:, 6]), np.sin(boxes[:, 6])
  x = c[:, None] * local[..., 0] - s[:, None] * local[..., 1]
  y = s[:, None] * local[..., 0] + c[:, None] * local[..., 1]
  return np.stack([x, y], -1) + boxes[:, None, 0:2]


def to_box_frame(points: np.ndarray, boxes) -> np.ndarray:
  """Points in each box's frame: centred on it, its axes as x, y, z.

  Args:
    points: float[P, 3] (the same points for every box) or float[K, P, 3]
      (each box's own points).
    boxes: float[K, 6 or 7].

  Returns:
    float32[K, P, 3].
  """
  boxes = as_boxes(boxes)
  points = np.asarray(points, np.float32)
  if points.ndim == 2:
    points = points[None]
  rel = points - boxes[:, None, 0:3].astype(np.float32)
  c = np.cos(boxes[:, 6]).astype(np.float32)[:, None]
  s = np.sin(boxes[:, 6]).astype(np.float32)[:, None]
  # Rotation by -heading about z.
  x = c * rel[..., 0] + s * rel[..., 1]
  y = -s * rel[..., 0] + c * rel[..., 1]
  return np.stack([x, y, rel[..., 2]], -1)


def points_in_boxes(points: np.ndarray, boxes, margin: float = 0.0) -> np.ndarray:
  """Which points lie inside each box (boundary included).

  Args:
    points: float[P, 3]. boxes: float[K, 6 or 7].
    margin: each extent is scaled by (1 + margin) first; 0.1 grows the box by
      5% of its size on every side.

  Returns:
    bool[K, P].
  """
  boxes = as_boxes(boxes)
  half = (boxes[:, 3:6] * (1.0 + margin) / 2.0).astype(np.float32)
  return (np.abs(to_box_frame(points, boxes)) <= half[:, None, :]).all(-1)


class Crops(NamedTuple):
  """The points of every box, `num_points` per box, padded and masked."""
  points: np.ndarray  # float32[K, N, 3]: box frame, centred and scaled into the unit ball
  mask: np.ndarray  # bool[K, N]: False on padding
  counts: np.ndarray  # int64[K]: points inside each box (before sampling)
  kept: np.ndarray  # bool[K]: counts >= min_points
  indices: np.ndarray  # int64[K, N]: the scene point behind each crop point (0 on padding)


def normalize_crops(points: np.ndarray, mask: np.ndarray) -> np.ndarray:
  """Centres each crop at the mean of its valid points and scales it into the unit ball.

  The rule of `renderers.points.normalize_points` (a crop whose points all
  coincide goes to the origin), in numpy.

  Args:
    points: float32[K, N, 3]. mask: bool[K, N].

  Returns:
    float32[K, N, 3]; padded entries are 0.
  """
  w = mask[..., None]
  count = np.maximum(mask.sum(-1), 1)[:, None, None]
  centred = np.where(w, points - np.where(w, points, 0).sum(1, keepdims=True) / count, 0.0)
  scale = np.linalg.norm(centred, axis=-1).max(-1, initial=0.0)[:, None, None]
  magnitude = np.abs(np.where(w, points, 0)).max(axis=(1, 2), initial=0.0)[:, None, None]
  degenerate = scale <= 1e-6 * (1.0 + magnitude)
  return np.where(degenerate, 0.0, centred / np.where(degenerate, 1.0, scale)).astype(np.float32)


def box_frames(boxes, margin: float = 0.0):
  """The float32 numbers the inside test and `to_box_frame` use for each box.

  Both croppers (this module's and `device_crops`) take them from here, so
  they test points with the same float32 values.

  Args:
    boxes: float[K, 6 or 7]. margin: see `points_in_boxes`.

  Returns:
    (centre float32[K, 3], cos float32[K], sin float32[K] of the heading,
    half extents float32[K, 3], scaled by 1 + margin).
  """
  boxes = as_boxes(boxes)
  half = (boxes[:, 3:6] * (1.0 + margin) / 2.0).astype(np.float32)
  return (boxes[:, 0:3].astype(np.float32), np.cos(boxes[:, 6]).astype(np.float32),
          np.sin(boxes[:, 6]).astype(np.float32), half)


def sampling_draws(rng: np.random.Generator, num_boxes: int, num_points: int) -> np.ndarray:
  """float32[K, N]: the uniform draws of `crop_boxes`' stratified sampling, row k for box k.

  Drawn once per call, in box order, whatever the cropper, so the host and
  the device cropper sample the same points from the same generator.
  """
  return rng.random((num_boxes, num_points), dtype=np.float32)


def run_offsets(u: np.ndarray, run_length: np.ndarray) -> np.ndarray:
  """int64[...]: floor(u x run_length), below run_length; in float32, as `device_crops` computes it.

  One float32 product (correctly rounded on every backend, nothing to
  contract) and a floor, so both croppers get the same offsets; the clip
  guards against a product rounded up to the run's length.
  """
  offset = np.floor(u * run_length.astype(np.float32)).astype(np.int64)
  return np.minimum(offset, run_length - 1)


def _inside(points, candidate, centre, c, s, half):
  """bool[K, W]: whether points[candidate[k, w]] lies in box k (`box_frames`' numbers of the K boxes).

  The test of `points_in_boxes` with the same float32 arithmetic as
  `to_box_frame`, one coordinate at a time to keep temporaries small.
  `device_crops` repeats these operations in this order.
  """
  c, s = c[:, None], s[:, None]
  dz = points[candidate, 2] - centre[:, 2:3]
  inside = np.abs(dz) <= half[:, 2:3]
  dx = points[candidate, 0] - centre[:, 0:1]
  dy = points[candidate, 1] - centre[:, 1:2]
  inside &= np.abs(c * dx + s * dy) <= half[:, 0:1]
  inside &= np.abs(-s * dx + c * dy) <= half[:, 1:2]
  return inside


def crop_boxes(points: np.ndarray, boxes, *, num_points: int, margin: float = 0.0,
               min_points: int = 1, rng: np.random.Generator) -> Crops:
  """The points inside each box, as fixed-size normalised crops.

  A box holding c >= N = `num_points` points gets a stratified random sample
  of them without repeats: its points, ordered by x (then file order), are
  cut into N runs [floor(j c / N), floor((j + 1) c / N)) and one point is
  drawn from each (offset floor(u L) in a run of length L, u the box's row
  of `sampling_draws`). A box holding fewer gets all of them and padding (mask
  False). Vectorised over boxes: each box only tests the points whose x lies
  within its reach (a window of the x-sorted cloud); boxes are processed in
  chunks of similar window length to bound memory.

  Args:
    points: float[P, 3] scene points.
    boxes: float[K, 6 or 7].
    num_points: N, points per crop.
    margin: see `points_in_boxes`.
    min_points: boxes with fewer points inside are marked not kept.
    rng: sampling generator; `sampling_draws` takes K x N uniforms from it.

  Returns:
    `Crops`; crops are in each box's frame (x along the box's heading, z up),
    then normalised by `normalize_crops`. `device_crops.crop_boxes` returns
    the same on the device.
  """
  boxes = as_boxes(boxes)
  points = np.asarray(points, np.float32)
  k, p, n = len(boxes), len(points), int(num_points)
  u = sampling_draws(rng, k, n)
  out = np.zeros((k, n, 3), np.float32)
  mask = np.zeros((k, n), bool)
  counts = np.zeros((k,), np.int64)
  indices = np.zeros((k, n), np.int64)
  if not k or not p:
    return Crops(out, mask, counts, counts >= max(int(min_points), 1), indices)
  order = np.argsort(points[:, 0], kind="stable")
  sorted_x = points[order, 0]
  half = boxes[:, 3:6] * (1.0 + margin) / 2.0
  frames = box_frames(boxes, margin)
  # Half-width in x of the turned box, widened a little so float32 rounding
  # in the exact test below never meets the window's edge.
  reach = np.abs(np.cos(boxes[:, 6])) * half[:, 0] + np.abs(np.sin(boxes[:, 6])) * half[:, 1]
  reach = reach * (1 + 1e-5) + 1e-5
  lo = np.searchsorted(sorted_x, boxes[:, 0] - reach, side="left")
  window = np.searchsorted(sorted_x, boxes[:, 0] + reach, side="right") - lo
  by_window = np.argsort(window, kind="stable")
  sorted_window = np.maximum(window[by_window], 1)
  start = 0
  while start < k:  # Chunks of boxes of bounded boxes x window, not a loop per box.
    # Windows ascend, so m boxes from `start` take m x (the m-th window) elements.
    cost = np.arange(1, k - start + 1) * sorted_window[start:]
    size = max(1, int(np.searchsorted(cost, _CHUNK_ELEMENTS, side="right")))
    rows = by_window[start:start + size]
    start += size
    width = int(sorted_window[start - 1])
    offsets = np.arange(width)[None, :]
    in_window = offsets < window[rows, None]
    candidate = order[np.minimum(lo[rows, None] + offsets, p - 1)]  # [k', W] scene indices
    inside = in_window & _inside(points, candidate, *(f[rows] for f in frames))
    count = inside.sum(1)
    many = count >= n
    j = np.arange(n)[None, :]
    # Rank (0-based, among the box's inside points) of each sampled point.
    # Runs [floor(j c / N), floor((j + 1) c / N)) are disjoint and non-empty when c >= N.
    run_start = j * count[:, None] // n
    run_length = (j + 1) * count[:, None] // n - run_start
    rank = np.where(many[:, None], run_start + run_offsets(u[rows], run_length), j)
    valid = (many[:, None] | (j < count[:, None])) & (count[:, None] > 0)
    rank = np.where(valid, rank, 0)
    # The r-th inside point of row i is where the running count over the
    # flattened [k', W] mask first reaches (points inside earlier rows) + r + 1.
    running = np.cumsum(inside.reshape(-1), dtype=np.int64)
    before = np.concatenate([[0], np.cumsum(count)[:-1]])
    flat = np.searchsorted(running, before[:, None] + rank + 1, side="left")
    column = np.clip(flat - np.arange(len(rows))[:, None] * width, 0, width - 1)
    chosen = np.where(valid, np.take_along_axis(candidate, column, axis=1), 0)
    out[rows] = np.where(valid[..., None], to_box_frame(points[chosen], boxes[rows]), 0.0)
    mask[rows] = valid
    counts[rows] = count
    indices[rows] = chosen
  kept = counts >= max(int(min_points), 1)
  return Crops(normalize_crops(out, mask), mask, counts, kept, indices)


def iou_axis_aligned(a, b) -> np.ndarray:
  """IoU of every pair of boxes, ignoring headings (VoteNet's `calc_iou`).

  Args:
    a: float[Ka, 6 or 7]. b: float[Kb, 6 or 7].

  Returns:
    float64[Ka, Kb].
  """
  a, b = as_boxes(a), as_boxes(b)
  lo_a, hi_a = a[:, None, 0:3] - a[:, None, 3:6] / 2, a[:, None, 0:3] + a[:, None, 3:6] / 2
  lo_b, hi_b = b[None, :, 0:3] - b[None, :, 3:6] / 2, b[None, :, 0:3] + b[None, :, 3:6] / 2
  inter = np.prod(np.clip(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b), 0.0, None), -1)
  union = np.prod(a[:, 3:6], -1)[:, None] + np.prod(b[:, 3:6], -1)[None, :] - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _clip_polygon(subject: np.ndarray, clipper: np.ndarray) -> np.ndarray:
  """Sutherland-Hodgman: `subject` polygon cut by the convex CCW `clipper`."""
  polygon = subject
  for i in range(len(clipper)):
    if not len(polygon):
      break
    p, q = clipper[i], clipper[(i + 1) % len(clipper)]
    edge = q - p
    side = edge[0] * (polygon[:, 1] - p[1]) - edge[1] * (polygon[:, 0] - p[0])  # >= 0: inside
    kept = []
    for j in range(len(polygon)):
      cur, nxt = polygon[j], polygon[(j + 1) % len(polygon)]
      s_cur, s_nxt = side[j], side[(j + 1) % len(polygon)]
      if s_cur >= 0:
        kept.append(cur)
      if (s_cur >= 0) != (s_nxt >= 0):
        t = s_cur / (s_cur - s_nxt)
        kept.append(cur + t * (nxt - cur))
    polygon = np.asarray(kept).reshape(-1, 2)
  return polygon


def _polygon_area(polygon: np.ndarray) -> float:
  if len(polygon) < 3:
    return 0.0
  x, y = polygon[:, 0], polygon[:, 1]
  return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def iou_3d(a, b) -> np.ndarray:
  """IoU of every pair of boxes, headings included.

  The overlap is the area of the intersection of the two boxes seen from above
  times the overlap of their z ranges (as VoteNet's and 3DETR's `box3d_iou`).
  Pairs of axis-aligned boxes take the closed form; pairs with a heading and
  overlapping bounding circles clip one rectangle by the other.

  Args:
    a: float[Ka, 6 or 7]. b: float[Kb, 6 or 7].

  Returns:
    float64[Ka, Kb].
  """
  a, b = as_boxes(a), as_boxes(b)
  iou = iou_axis_aligned(a, b)
  rotated = (a[:, None, 6] != 0) | (b[None, :, 6] != 0)
  if not rotated.any():
    return iou
  radius_a = np.linalg.norm(a[:, 3:5], axis=-1) / 2
  radius_b = np.linalg.norm(b[:, 3:5], axis=-1) / 2
  gap = np.linalg.norm(a[:, None, 0:2] - b[None, :, 0:2], axis=-1)
  z_overlap = np.clip(np.minimum(a[:, None, 2] + a[:, None, 5] / 2, b[None, :, 2] + b[None, :, 5] / 2)
                      - np.maximum(a[:, None, 2] - a[:, None, 5] / 2, b[None, :, 2] - b[None, :, 5] / 2),
                      0.0, None)
  iou = np.where(rotated, 0.0, iou)
  corners_a, corners_b = bev_corners(a), bev_corners(b)
  volume_a, volume_b = np.prod(a[:, 3:6], -1), np.prod(b[:, 3:6], -1)
  for i, j in zip(*np.nonzero(rotated & (gap < radius_a[:, None] + radius_b[None, :]) & (z_overlap > 0))):
    inter = _polygon_area(_clip_polygon(corners_a[i], corners_b[j])) * z_overlap[i, j]
    union = volume_a[i] + volume_b[j] - inter
    iou[i, j] = inter / union if union > 0 else 0.0
  return iou
