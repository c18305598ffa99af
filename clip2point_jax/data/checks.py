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


def shape_rng(seed: int, key: str) -> np.random.Generator:
  """A generator for one shape, from the global seed and a stable shape key.

  crc32 rather than `hash()`: Python salts string hashes per process.
  """
  return np.random.default_rng([int(seed), zlib.crc32(key.encode("utf-8"))])
