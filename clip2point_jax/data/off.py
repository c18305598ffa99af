"""Reader for Object File Format (.off) meshes as Princeton ModelNet ships them.

Some ModelNet files have the counts on the header line
("OFF490 518 0" instead of "OFF" then "490 518 0"); both forms are read.
Polygons are fan-triangulated; '#' starts a comment.
"""

import warnings

import numpy as np

from clip2point_jax.data import checks
from clip2point_jax.data import mesh
from clip2point_jax.errors import UserError


def _content_lines(path: str) -> list[str]:
  try:
    with open(path, "rb") as f:
      raw = f.read()
  except OSError as e:
    raise UserError(f"{path}: cannot read the file: {e}") from e
  # latin-1 maps every byte, so binary junk surfaces as a parse error below.
  lines = raw.decode("latin-1").splitlines()
  if b"#" in raw:
    lines = [line.split("#", 1)[0] for line in lines]
  return [line.strip() for line in lines if line and not line.isspace()]


def _numbers(text: str, dtype, path: str, what: str) -> np.ndarray:
  try:
    with warnings.catch_warnings():
      # numpy < 2.3 only warns, and returns what it parsed, when the text
      # stops being numbers; an error either way here.
      warnings.simplefilter("error", DeprecationWarning)
      return np.fromstring(text, dtype=dtype, sep=" ")
  except (ValueError, DeprecationWarning) as e:
    raise UserError(f"{path}: a {what} line is not numbers ({e}); the file is "
                    "corrupt.") from e


def _parse_vertices(lines: list[str], path: str) -> np.ndarray:
  flat = _numbers(" ".join(lines), np.float64, path, "vertex")
  if flat.size == 3 * len(lines):
    return flat.reshape(-1, 3)
  # Extra columns (colours, normals): one row at a time, keep x y z.
  rows = [_numbers(line, np.float64, path, "vertex") for line in lines]
  for k, row in enumerate(rows):
    if row.size < 3:
      raise UserError(f"{path}: vertex {k} has fewer than 3 coordinates: "
                      f"{lines[k]!r}; the file is corrupt.")
  return np.stack([row[:3] for row in rows])


def _parse_faces(lines: list[str], num_vertices: int, path: str) -> np.ndarray:
  """Face lines "k i1 .. ik [colour]" -> int64[T, 3] triangles."""
  flat = _numbers(" ".join(lines), np.int64, path, "face")
  if flat.size == 4 * len(lines) and (flat[::4] == 3).all():
    faces = flat.reshape(-1, 4)[:, 1:]  # All triangles: the common case.
  else:
    polygons = []
    for k, line in enumerate(lines):
      row = _numbers(line, np.int64, path, "face")
      if row.size < row[0] + 1:
        raise UserError(f"{path}: face {k} lists fewer than its {row[0]} "
                        f"vertices: {line!r}; the file is corrupt.")
      polygons.append(row[1:row[0] + 1].tolist())
    faces = mesh.fan_triangulate(polygons)
  bad = faces[(faces < 0) | (faces >= num_vertices)]
  if bad.size:
    raise UserError(f"{path}: a face uses vertex {bad[0]}, but the file has "
                    f"{num_vertices} vertices; the file is corrupt.")
  return faces


def read_off(path: str, allow_no_faces: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Reads an .off mesh and fan-triangulates its polygons.

  Args:
    path: the .off file.
    allow_no_faces: a header with 0 faces gives its vertices and int64[0, 3]
      faces (a point cloud saved as OFF) instead of an error.

  Returns:
    vertices: float64[V, 3].
    faces: int64[T, 3] triangles (an n-gon gives n - 2).

  Raises:
    UserError: naming `path`, for a missing header, truncated or corrupt
      content, out-of-range indices, no faces, or NaN/inf coordinates.
  """
  lines = _content_lines(path)
  if not lines or not lines[0].upper().startswith("OFF"):
    first = repr(lines[0][:40]) if lines else "nothing"
    raise UserError(f"{path}: not an OFF mesh: it starts with {first}, "
                    "expected 'OFF'.")
  tail = lines[0][3:].split()
  counts, body = (tail, lines[1:]) if tail else (
      (lines[1].split() if len(lines) > 1 else []), lines[2:])
  try:
    num_vertices, num_faces = int(counts[0]), int(counts[1])
  except (IndexError, ValueError) as e:
    raise UserError(f"{path}: the OFF header needs 'vertices faces edges' "
                    f"counts, got {' '.join(counts)!r}.") from e
  if num_vertices < 0 or num_faces < 0:
    raise UserError(f"{path}: negative counts in the OFF header.")
  if num_faces == 0 and not allow_no_faces:
    raise UserError(f"{path}: the mesh has no faces (header says 0).")
  if len(body) < num_vertices + num_faces:
    raise UserError(
        f"{path}: truncated: the header promises {num_vertices} vertices and "
        f"{num_faces} faces, but only {len(body)} lines follow.")
  vertices = _parse_vertices(body[:num_vertices], path)
  checks.require_finite(vertices, path, "vertex coordinates")
  if num_faces == 0:
    return vertices, np.zeros((0, 3), np.int64)
  faces = _parse_faces(body[num_vertices:num_vertices + num_faces],
                       num_vertices, path)
  if not len(faces):
    raise UserError(f"{path}: the mesh has no faces with 3 or more vertices.")
  return vertices, faces


def sample_off(path: str, num_points: int,
               rng: np.random.Generator) -> np.ndarray:
  """Area-weighted uniform surface samples of an .off mesh: float32[N, 3]."""
  vertices, faces = read_off(path)
  return mesh.sample_surface(vertices, faces, num_points, rng, path)
