"""Scenes -> crops -> padded batches on the device -> logits -> scored detections."""

from typing import NamedTuple, Sequence

import jax
import numpy as np

from clip2point_jax.core import parallel, throughput
from clip2point_jax.detection import classifiers
from clip2point_jax.detection import scannet
from clip2point_jax.detection.evaluate import SceneBoxes


class Scene(NamedTuple):
  name: str
  scan: scannet.Scan
  gt: SceneBoxes  # boxes, labels
  proposals: np.ndarray  # float64[K, 7]
  objectness: np.ndarray  # float64[K]


def load_scene(files: scannet.SceneFiles, class_names: Sequence[str], label_format: str) -> Scene:
  """Reads one scene's scan, ground truth and proposals (errors name the file)."""
  scan = scannet.read_scan(files.scan, files.meta)
  gt = scannet.read_gt_boxes(files.boxes, class_names, label_format)
  proposals = scannet.read_proposals(files.proposals)
  return Scene(files.name, scan, SceneBoxes(gt.boxes, gt.labels), proposals.boxes, proposals.objectness)


class CropBatcher:
  """Packs crops of any number of scenes into fixed-size batches for `classify`.

  Crops are added scene by scene; each full batch of `batch_size` crops is
  sent to the device at once (dispatch is asynchronous, so the host crops the
  next scene meanwhile) and its logits stay there until `finish`, which pads
  and sends the last batch and gathers everything once. Every batch has the
  same shape, so a jitted classifier compiles once. With several hosts each
  host supplies its slice of every global batch (all hosts add the same crops).

  `timer` times the batches: the first (compiling) apart, then the crops
  classified after it (`throughput.pass_fields(batcher.timer, "crops", ...)`).
  """

  def __init__(self, classify: classifiers.BoxClassifier, batch_size: int, num_points: int, mesh):
    self.classify = classify
    self.mesh = mesh
    self.batch_size = parallel.round_to_devices(batch_size, mesh)
    self.num_points = num_points
    self._points = np.zeros((self.batch_size, num_points, 3), np.float32)
    self._mask = np.zeros((self.batch_size, num_points), bool)
    self._fill = 0
    self._outputs = []
    self.num_crops = 0
    self.num_batches = 0
    self.timer = throughput.Timer()

  def add(self, points: np.ndarray, mask: np.ndarray) -> None:
    """points: float32[M, N, 3], mask: bool[M, N] (the kept crops of a scene)."""
    start = 0
    while start < len(points):
      take = min(len(points) - start, self.batch_size - self._fill)
      self._points[self._fill:self._fill + take] = points[start:start + take]
      self._mask[self._fill:self._fill + take] = mask[start:start + take]
      self._fill += take
      start += take
      if self._fill == self.batch_size:
        self._send()
    self.num_crops += len(points)

  def _send(self) -> None:
    hosts, host = jax.process_count(), jax.process_index()
    share = self.batch_size // hosts
    rows = slice(host * share, (host + 1) * share)
    batch = parallel.global_batch(self.mesh, {"points": self._points[rows], "mask": self._mask[rows]})
    # Only the crops count, not the padding of the last batch.
    self._outputs.append(self.timer.call(self.classify, batch["points"], batch["mask"], crops=self._fill))
    self.num_batches += 1
    # New buffers: the device may still be reading the old ones.
    self._points = np.zeros_like(self._points)
    self._mask = np.zeros_like(self._mask)
    self._fill = 0

  def finish(self) -> np.ndarray:
    """float32[M, C]: the logits of every crop added, in order."""
    if self._fill:
      self._send()
    if not self._outputs:
      return np.zeros((0, 0), np.float32)
    self.timer.lap(self._outputs[-1])
    logits = parallel.concat_to_host(self._outputs)
    self._outputs = []
    return logits[:self.num_crops]


def softmax(logits: np.ndarray) -> np.ndarray:
  logits = np.asarray(logits, np.float64)
  e = np.exp(logits - logits.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def detections_from_logits(boxes: np.ndarray, objectness: np.ndarray, logits: np.ndarray, *,
                           use_objectness: bool = True, per_class: bool = False) -> SceneBoxes:
  """Scored, labelled detections of one scene's kept boxes.

  Args:
    boxes: float[K, 7] kept proposals. objectness: float[K].
    logits: float[K, C] from the classifier.
    use_objectness: multiply each score by the box's objectness.
    per_class: one detection per box and class, scored by that class's
      probability (VoteNet's and 3DETR's `per_class_proposal`); otherwise one
      per box, its most probable class scored by its probability.

  Returns:
    `SceneBoxes` with labels and scores.
  """
  probs = softmax(logits) if len(logits) else np.zeros((0, logits.shape[-1] if logits.ndim == 2 else 0))
  weight = np.asarray(objectness, np.float64) if use_objectness else np.ones(len(boxes))
  if per_class:
    k, c = probs.shape
    return SceneBoxes(np.repeat(np.asarray(boxes), c, axis=0), np.tile(np.arange(c), k),
                      (probs * weight[:, None]).reshape(-1))
  labels = probs.argmax(-1) if len(probs) else np.zeros(0, np.int64)
  scores = probs[np.arange(len(probs)), labels] * weight if len(probs) else np.zeros(0)
  return SceneBoxes(np.asarray(boxes), labels, scores)
