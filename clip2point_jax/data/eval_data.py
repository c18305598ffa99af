"""Evaluation data for the tasks: a labelled split and its padded batches.

A split's `source` is random access (`len`, `source[i]` -> dict with
`points` float32[N, 3] and `label` int), like a TFDS data source.
"""

import dataclasses
import glob
import os
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from clip2point_jax.data import point_files, primitives
from clip2point_jax.errors import UserError


@dataclasses.dataclass
class EvalSplit:
  source: Any
  class_names: Sequence[str]


class _InMemorySource:
  """Random access over stacked arrays."""

  def __init__(self, points: np.ndarray, labels: np.ndarray):
    self.points, self.labels = points, labels

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {"points": self.points[i], "label": self.labels[i]}


def _primitives_split(data) -> EvalSplit:
  # Test clouds use another seed than training ones (seed + 1 vs seed).
  seed = data.seed + (1 if data.split == "test" else 0)
  points, labels = primitives.generate(data.num_per_class, data.num_points, seed)
  return EvalSplit(_InMemorySource(points, labels), primitives.CLASS_NAMES)


def _files_split(data) -> EvalSplit:
  """Files under `data.files` (a glob); the label is the parent folder's name."""
  paths = sorted(p for p in glob.glob(os.path.expanduser(data.files), recursive=True) if os.path.isfile(p))
  if not paths:
    raise UserError(f"config.data.files={data.files!r} matches no files")
  folders = [os.path.basename(os.path.dirname(p)) for p in paths]
  class_names = [c.strip() for c in data.classes.split(",") if c.strip()] or sorted(set(folders))
  unknown = sorted(set(folders) - set(class_names))
  if unknown:
    raise UserError(f"files in folders {unknown} are not among config.data.classes={class_names}")
  points = np.stack([point_files.read_points(p, data.num_points, seed=data.seed) for p in paths])
  labels = np.asarray([class_names.index(f) for f in folders], np.int32)
  return EvalSplit(_InMemorySource(points, labels), class_names)


def load_eval_split(data) -> EvalSplit:
  """The split that `data` (a config's `data` field) names."""
  if data.name == "primitives":
    return _primitives_split(data)
  if data.name == "files":
    return _files_split(data)
  raise UserError(f"config.data.name={data.name!r}: use primitives or files")


def num_batches(source, global_batch_size: int) -> int:
  return -(-len(source) // global_batch_size)


def eval_batches(source, global_batch_size: int, seed: int = 0,
                 process_index: int | None = None,
                 process_count: int | None = None) -> Iterator[dict]:
  """This host's slices of fixed-size batches covering `source` once, in order.

  The last batch is padded by repeating examples; `mask` is False there.

  Yields:
    {"points": float32[b, N, 3], "label": int32[b], "mask": bool[b]}, with
    b = global_batch_size // process_count.
  """
  del seed  # Evaluation order is the source's; kept for the training twin.
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch_size % process_count:
    raise UserError(f"batch size {global_batch_size} does not split over {process_count} hosts")
  local = global_batch_size // process_count
  total = len(source)
  for start in range(0, total, global_batch_size):
    index = np.arange(start + process_index * local, start + (process_index + 1) * local)
    mask = index < total
    examples = [source[int(i)] for i in np.where(mask, index, index % max(total, 1))]
    yield {
        "points": np.stack([np.asarray(e["points"], np.float32) for e in examples]),
        "label": np.asarray([e["label"] for e in examples], np.int32),
        "mask": mask,
    }
