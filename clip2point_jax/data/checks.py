"""Checks and per-shape seeding shared by the readers and builders."""

import zlib

import numpy as np

from clip2point_jax.errors import UserError


def require_finite(points: np.ndarray, path: str, what: str = "coordinates"):
  """Raises `UserError` naming `path` if any value of `points` is NaN or inf."""
  bad = ~np.isfinite(points)
  if bad.any():
    first = np.argwhere(bad)[0].tolist()
    raise UserError(
        f"{path}: {int(bad.sum())} non-finite {what} (NaN or inf), the first "
        f"at index {first}; the file is corrupt.")


MIN_DISTINCT_POINTS = 3  # Fewer span no plane: nothing a depth map could show as a shape.


def require_distinct(points: np.ndarray, path: str) -> None:
  """Raises `UserError` naming `path` if float[M, 3] `points` hold fewer than 3 distinct rows."""
  distinct = len(np.unique(np.asarray(points), axis=0)) if len(points) else 0
  if distinct < MIN_DISTINCT_POINTS:
    raise UserError(f"{path}: only {distinct} distinct point(s); a point cloud needs at least "
                    f"{MIN_DISTINCT_POINTS}, so the file is empty or degenerate.")


def check_points(points: np.ndarray, source: str = "points") -> np.ndarray:
  """Host-side validation of clouds before they enter a jitted function.

  Args:
    points: float[..., N, 3] numpy array.
    source: what to name in the error (a file path, "batch 3", ...).

  Returns:
    The points as float32.

  Raises:
    UserError naming `source` and the first offending cloud if the shape is
    wrong, a cloud is empty or a coordinate is NaN/inf.
  """
  array = np.asarray(points)
  if array.ndim < 2 or array.shape[-1] != 3:
    raise UserError(f"{source}: expected points of shape [..., N, 3], got {array.shape}")
  if array.shape[-2] == 0:
    raise UserError(f"{source}: the point cloud is empty")
  finite = np.isfinite(array).all(axis=-1)
  if not finite.all():
    bad = np.argwhere(~finite)[0]
    where = f"cloud {tuple(int(i) for i in bad[:-1])}, " if len(bad) > 1 else ""
    raise UserError(f"{source}: non-finite coordinate (NaN or inf) at {where}point {bad[-1]} "
                    f"({int((~finite).sum())} bad points in all)")
  return array.astype(np.float32)


def read_text_lines(path: str) -> list[str]:
  """The lines of a text file (undecodable bytes replaced); UserError naming it if unreadable."""
  try:
    with open(path, "r", encoding="utf-8", errors="replace") as f:
      return f.read().splitlines()
  except OSError as e:
    raise UserError(f"{path}: cannot read the file: {e}") from e


def shape_rng(seed: int, key: str) -> np.random.Generator:
  """A generator for one shape, from the global seed and a stable shape key.

  crc32 rather than `hash()`: Python salts string hashes per process.
  """
  return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
