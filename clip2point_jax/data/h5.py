"""Reader for point-cloud HDF5 files: PointNet's ModelNet40 and ScanObjectNN.

Both keep clouds under `data` (float[n, P, 3], P = 2048) and classes under
`label` (int[n] or int[n, 1]); other keys (`normal`, `mask`, ...) are ignored.
"""

from typing import NamedTuple, Optional

import h5py
import numpy as np

from clip2point_jax.errors import UserError


class Clouds(NamedTuple):
  """What `read_h5` returns."""
  points: np.ndarray  # float32[n, P, 3]
  labels: np.ndarray  # int32[n]
  rows: np.ndarray  # int64[n]: each kept cloud's row in the file
  dropped: np.ndarray  # int64[d]: rows left out for NaN/inf


def _load(path: str) -> tuple[np.ndarray, np.ndarray]:
  try:
    with h5py.File(path, "r") as f:
      missing = [k for k in ("data", "label") if k not in f]
      if missing:
        raise UserError(
            f"{path}: missing key(s) {missing}; it has {sorted(f.keys())}. "
            "Expected 'data' float[n, P, 3] and 'label' int[n] or int[n, 1].")
      return f["data"][()], f["label"][()]
  except UserError:
    raise
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"{path}: not a readable HDF5 file ({e}); the download "
                    "is probably truncated or corrupt.") from e


def read_h5(path: str, num_classes: Optional[int] = None, *,
            skip_nonfinite: bool = False) -> Clouds:
  """Reads the clouds and labels of one HDF5 file.

  Args:
    path: the .h5 file.
    num_classes: when given, labels must lie in [0, num_classes).
    skip_nonfinite: drop clouds holding NaN/inf (a few broken shapes in a
      large release) instead of raising.

  Returns:
    `Clouds(points, labels, rows, dropped)`; `dropped` is empty unless
    `skip_nonfinite`.

  Raises:
    UserError: naming `path`, for an unreadable file, missing keys, bad
      shapes, mismatched lengths, labels out of range or non-integer, or (with
      `skip_nonfinite=False`) NaN/inf coordinates.
  """
  data, label = _load(path)
  if data.ndim != 3 or data.shape[2] < 3 or not np.issubdtype(
      data.dtype, np.number):
    raise UserError(f"{path}: 'data' has shape {data.shape} and dtype "
                    f"{data.dtype}; expected numbers of shape [n, P, 3].")
  if label.ndim == 2 and label.shape[1] == 1:
    label = label[:, 0]
  if label.ndim != 1 or not np.issubdtype(label.dtype, np.number):
    raise UserError(f"{path}: 'label' has shape {label.shape}; expected [n] "
                    "or [n, 1] integers.")
  if len(label) != len(data):
    raise UserError(f"{path}: 'data' has {len(data)} clouds but 'label' has "
                    f"{len(label)} entries; the file is inconsistent.")
  if not len(data):
    raise UserError(f"{path}: the file holds no clouds.")
  if not np.all(np.isfinite(label)) or np.any(label != np.round(label)):
    raise UserError(f"{path}: 'label' holds non-integer values.")
  labels = label.astype(np.int64)
  if num_classes is not None:
    out = (labels < 0) | (labels >= num_classes)
    if out.any():
      k = int(np.argmax(out))
      raise UserError(
          f"{path}: label {labels[k]} at row {k} is outside [0, {num_classes})"
          f"; is this the right dataset for {num_classes} classes?")
  points = data[..., :3].astype(np.float32)
  finite = np.isfinite(points).all(axis=(1, 2))
  if not finite.all() and not skip_nonfinite:
    k = int(np.argmin(finite))
    raise UserError(f"{path}: cloud {k} has NaN or inf coordinates; the file "
                    "is corrupt.")
  rows = np.flatnonzero(finite)
  return Clouds(points[rows], labels[rows].astype(np.int32), rows,
                np.flatnonzero(~finite))
