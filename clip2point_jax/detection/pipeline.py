"""Scenes -> crops -> padded batches on the device -> logits -> scored detections."""

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
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

  `on_device=True` builds the batches on the device instead, from crops
  already there (`device_crops.crop_boxes`'s; numpy crops are sent first):
  the rows of each batch are gathered from the crop arrays by one jitted
  program per crop-array shape, so crops made on the device reach the
  classifier without a trip through the host. With several hosts each
  host's share of a batch still goes through the host (`global_batch`).

  `timer` times the batches: the first (compiling) apart, then the crops
  classified after it (`throughput.pass_fields(batcher.timer, "crops", ...)`).
  """

  def __init__(self, classify: classifiers.BoxClassifier, batch_size: int, num_points: int, mesh, *,
               on_device: bool = False):
    self.classify = classify
    self.mesh = mesh
    self.batch_size = parallel.round_to_devices(batch_size, mesh)
    self.num_points = num_points
    self.on_device = on_device
    self._empty()
    self._outputs = []
    self.num_crops = 0
    self.num_batches = 0
    self.timer = throughput.Timer()

  def _empty(self) -> None:
    """A new batch of padding. New buffers on the host: the device may still be reading the old ones."""
    shape = (self.batch_size, self.num_points)
    if self.on_device:
      self._points, self._mask = jnp.zeros((*shape, 3), jnp.float32), jnp.zeros(shape, bool)
    else:
      self._points, self._mask = np.zeros((*shape, 3), np.float32), np.zeros(shape, bool)
    self._fill = 0

  def add(self, points, mask, rows=None) -> None:
    """Adds crops `rows` (default all, in order) of points: float32[M, N, 3], mask: bool[M, N].

    numpy arrays, or jax.Arrays with `on_device` (e.g. a scene's
    `DeviceCrops.points` and `.mask` with rows = its kept boxes).
    """
    rows = np.arange(len(points)) if rows is None else np.asarray(rows, np.int64).reshape(-1)
    if self.on_device:
      points, mask = jnp.asarray(points), jnp.asarray(mask)
    start = 0
    while start < len(rows):
      take = min(len(rows) - start, self.batch_size - self._fill)
      chunk = rows[start:start + take]
      if self.on_device:
        # A new array per call, never written after: the CPU backend may
        # read a numpy argument in place, after the call has returned.
        source = np.full((self.batch_size,), -1, np.int32)
        source[self._fill:self._fill + take] = chunk
        self._points, self._mask = _place(self._points, self._mask, points, mask, source)
      else:
        self._points[self._fill:self._fill + take] = points[chunk]
        self._mask[self._fill:self._fill + take] = mask[chunk]
      self._fill += take
      start += take
      if self._fill == self.batch_size:
        self._send()
    self.num_crops += len(rows)

  def _send(self) -> None:
    hosts, host = jax.process_count(), jax.process_index()
    if self.on_device and hosts == 1:
      batch = jax.device_put({"points": self._points, "mask": self._mask}, parallel.data_sharding(self.mesh))
    else:
      share = self.batch_size // hosts
      rows = slice(host * share, (host + 1) * share)
      batch = parallel.global_batch(self.mesh, {"points": np.asarray(self._points[rows]),
                                                "mask": np.asarray(self._mask[rows])})
    # Only the crops count, not the padding of the last batch.
    self._outputs.append(self.timer.call(self.classify, batch["points"], batch["mask"], crops=self._fill))
    self.num_batches += 1
    self._empty()

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


@jax.jit
def _place(batch_points, batch_mask, points, mask, source):
  """A batch with row b replaced by crop `source[b]` wherever source[b] >= 0.

  Args:
    batch_points: float32[B, N, 3]. batch_mask: bool[B, N].
    points: float32[M, N, 3]. mask: bool[M, N] (a scene's crops).
    source: int32[B], -1 where the batch keeps its row.
  """
  take = source >= 0
  i = jnp.maximum(source, 0)
  return (jnp.where(take[:, None, None], points[i], batch_points), jnp.where(take[:, None], mask[i], batch_mask))


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
