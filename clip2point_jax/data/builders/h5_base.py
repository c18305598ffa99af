"""Shared part of the builders whose release is a few HDF5 files of clouds."""

import os

import numpy as np

from clip2point_jax.data import h5
from clip2point_jax.data.builders import base
from clip2point_jax.errors import UserError


class H5Builder(base.PointCloudBuilder, skip_registration=True):
  """Stores each cloud of the files; subclasses list the files per split."""

  DEFAULT_NUM_POINTS = 2048
  OPTIONS = ("num_points_stored",)

  def _order(self, points: np.ndarray) -> np.ndarray:
    """float32[n, P, 3] -> float32[n, S, 3]: which S points to keep, in order."""
    return points[:, :self._num_points]

  def _generate_examples(self, split, paths):
    count = 0
    for path in paths:
      clouds = h5.read_h5(path, len(self.CLASS_NAMES), skip_nonfinite=True)
      name = os.path.basename(path)
      for row in clouds.dropped:
        self._skip(split, f"{name}/{row}", "NaN or inf coordinates")
      if clouds.points.shape[1] < self._num_points:
        raise UserError(
            f"{path}: clouds have {clouds.points.shape[1]} points, fewer than "
            f"num_points_stored={self._num_points}.")
      points = self._order(clouds.points)
      for k in self._progress(range(len(points)), f"{split} {name}"):
        key = f"{name}/{clouds.rows[k]}"
        count += 1
        yield key, {"points": points[k], "label": clouds.labels[k],
                    "id": key}
    self._require_any(split, count, ", ".join(paths))
