"""A task's data config -> a labelled split (random-access source, class names).

`config.data.name` is a prepared dataset (see `registry.DATASETS`) or `files`:
the files matching `config.data.files`, labelled by their folder's name.
"""

import glob
import os

import numpy as np

from clip2point_jax.core import parallel
from clip2point_jax.core import paths as storage  # `paths` names file lists here
from clip2point_jax.data import point_files, registry
from clip2point_jax.errors import UserError


class ArraySource:
  """Random access over stacked arrays, like a TFDS data source."""

  def __init__(self, points: np.ndarray, labels: np.ndarray, ids=None):
    self.points, self.labels = points, labels
    self.ids = ids if ids is not None else [str(i) for i in range(len(labels))]

  def __len__(self):
    return len(self.labels)

  def __getitem__(self, i):
    return {"points": self.points[i], "label": self.labels[i], "id": self.ids[i]}


def expand_files(pattern: str) -> list[str]:
  """Sorted files matching a glob (`**` recurses); a clear error if none, or if it is remote."""
  pattern = storage.require_local(pattern, "the file glob", "reading point files (trimesh, h5py)")
  paths = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
  if not paths:
    raise UserError(f"{pattern!r} matches no files")
  return paths


def read_files(paths, num_points: int, seed: int = 0) -> np.ndarray:
  """float32[len(paths), num_points, 3]; each file read as `read_points` does."""
  return np.stack([point_files.read_points(p, num_points, seed=seed) for p in paths])


def require_classes(class_names, what: str, hint: str) -> None:
  """UserError unless there are two classes or more: with one, top-1 is 100% whatever the model does."""
  if len(class_names) < 2:
    raise UserError(f"{what} gives {len(class_names)} class ({', '.join(class_names) or 'none'}); "
                    f"classification needs at least two: {hint}")


def files_split(data):
  """The files matching `data.files`; each one's folder names its class."""
  paths = expand_files(data.files)
  folders = [os.path.basename(os.path.dirname(p)) for p in paths]
  class_names = [c.strip() for c in data.classes.split(",") if c.strip()] or sorted(set(folders))
  unknown = sorted(set(folders) - set(class_names))
  if unknown:
    raise UserError(f"files in folders {unknown} are not among config.data.classes={class_names}")
  where = ", ".join(sorted({os.path.dirname(p) for p in paths}))
  require_classes(class_names, f"config.data.files={data.files!r} (files in {where})",
                  "put each class's files in a folder of its own, or name the classes in "
                  "config.data.classes")
  labels = np.asarray([class_names.index(f) for f in folders], np.int32)
  return ArraySource(read_files(paths, data.num_points, data.seed), labels, paths), tuple(class_names)


def data_dir(data, workdir: str) -> str:
  """`data.data_dir`, or `<workdir>/tensorflow_datasets` when it is empty."""
  return storage.expand(data.data_dir) if data.data_dir else os.path.join(workdir, "tensorflow_datasets")


def load(data, split: str, workdir: str):
  """(source, class_names) for `split` of the dataset `data` configures.

  For `primitives`, `data.primitives` (if non-empty) holds the options to
  prepare it with on first use, e.g. fewer clouds for a quick demo.
  """
  if data.name == "files":
    return files_split(data)
  root = data_dir(data, workdir)
  options = registry.options_of(data)
  if options:
    parallel.host0_first(lambda: registry.prepare("primitives", root, **options),
                         "built-in shapes prepared")
  source, class_names = registry.load_split(data.name, split, root, options=options)
  require_classes(class_names, f"dataset {data.name!r} split {split!r}", "use another dataset")
  return source, class_names
