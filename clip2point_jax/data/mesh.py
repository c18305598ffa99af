"""Triangle meshes: fan triangulation and area-weighted surface sampling."""

from typing import Sequence

import numpy as np

from clip2point_jax.data import checks
from clip2point_jax.errors import UserError


def fan_triangulate(polygons: Sequence[Sequence[int]]) -> np.ndarray:
  """Splits polygons into triangles sharing each polygon's first vertex.

  Args:
    polygons: vertex index lists; those with fewer than 3 vertices (points,
      edges) carry no area and are dropped.

  Returns:
    int64[T, 3] vertex indices.
  """
  tris = [(p[0], p[j], p[j + 1])
          for p in polygons if len(p) >= 3 for j in range(1, len(p) - 1)]
  return np.asarray(tris, np.int64).reshape(-1, 3)


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """Areas of triangles: vertices float[V, 3], faces int[F, 3] -> float64[F]."""
  tri = np.asarray(vertices, np.float64)[faces]
  cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
  return 0.5 * np.linalg.norm(cross, axis=1)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, num_points: int,
                   rng: np.random.Generator, path: str = "<mesh>") -> np.ndarray:
  """Uniform samples on a mesh surface: faces picked by area, then a point in it.

  Args:
    vertices: float[V, 3].
    faces: int[F, 3] triangles.
    num_points: N.
    rng: the shape's generator (see `checks.shape_rng`), so results are
      reproducible per shape whatever the order shapes are read in.
    path: the source file, named in errors.

  Returns:
    float32[N, 3].
  """
  faces = np.asarray(faces, np.int64).reshape(-1, 3)
  if not len(faces):
    raise UserError(f"{path}: the mesh has no faces, so no surface to sample.")
  checks.require_finite(np.asarray(vertices), path, "vertex coordinates")
  areas = triangle_areas(vertices, faces)
  cdf = np.cumsum(areas)
  total = cdf[-1]
  if not (np.isfinite(total) and total > 0):
    raise UserError(
        f"{path}: the mesh's {len(faces)} faces have zero total area "
        "(all degenerate), so no surface to sample.")
  # side="right" never picks a zero-area face: its cdf equals its predecessor's.
  face = np.searchsorted(cdf, rng.random(num_points) * total, side="right")
  face = np.minimum(face, len(faces) - 1)
  # sqrt makes the barycentric draw uniform over the triangle's area.
  r1 = np.sqrt(rng.random(num_points))[:, None]
  r2 = rng.random(num_points)[:, None]
  tri = np.asarray(vertices, np.float64)[faces[face]]
  points = ((1 - r1) * tri[:, 0] + r1 * (1 - r2) * tri[:, 1]
            + r1 * r2 * tri[:, 2])
  return points.astype(np.float32)
