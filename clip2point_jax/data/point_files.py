"""Point clouds from a user's own files, whatever the common format.

Meshes (.off .obj .stl, .ply with faces) are sampled uniformly over their
surface; point clouds (.ply without faces, .npy .npz .txt .xyz .pts) are
subsampled, or repeated where they hold fewer points than asked. An .off,
.obj or .stl file without faces is read as the cloud of its vertices only if
it has at least as many as asked; every cloud needs 3 distinct points.
"""

import os

import numpy as np

from clip2point_jax.data import checks
from clip2point_jax.data import mesh
from clip2point_jax.data import off
from clip2point_jax.errors import UserError

MESH_EXTENSIONS = (".ply", ".off", ".obj", ".stl")
ARRAY_EXTENSIONS = (".npy", ".npz")
TEXT_EXTENSIONS = (".txt", ".xyz", ".pts")
EXTENSIONS = MESH_EXTENSIONS + ARRAY_EXTENSIONS + TEXT_EXTENSIONS
_NPZ_KEYS = ("points", "xyz")
# Mesh formats: a file of them without faces is more often a mesh whose faces
# were lost than a point cloud (.ply without faces is a common point format).
FACE_FORMATS = (".off", ".obj", ".stl")


def _with_trimesh(path: str):
  """-> ("mesh", (vertices, faces)) or ("points", float[M, 3])."""
  import trimesh  # pylint: disable=g-import-not-at-top

  try:
    geometry = trimesh.load(path, process=False)
    if isinstance(geometry, trimesh.Scene) and geometry.geometry:
      geometry = geometry.to_mesh()
  # Parsers of untrusted files fail in many ways (IndexError, struct.error..).
  except Exception as e:  # pylint: disable=broad-except
    raise UserError(f"{path}: cannot read it as a mesh or point cloud "
                    f"({type(e).__name__}: {e}); the file is truncated or "
                    "corrupt.") from e
  if isinstance(geometry, trimesh.Scene):
    raise UserError(f"{path}: the file holds no faces and no points.")
  vertices = np.asarray(geometry.vertices, np.float64).reshape(-1, 3)
  faces = np.asarray(getattr(geometry, "faces", np.zeros((0, 3))), np.int64)
  if faces.size:
    return "mesh", (vertices, faces.reshape(-1, 3))
  if not len(vertices):
    raise UserError(f"{path}: the file holds no faces and no points.")
  return "points", vertices


def _require_enough_vertices(vertices: np.ndarray, ext: str, num_points: int, path: str):
  """A face-less mesh file is read as the cloud of its vertices only if they are as many as asked."""
  if len(vertices) < num_points:
    raise UserError(f"{path}: the {ext} file has no faces and only {len(vertices)} vertices, too few to "
                    f"read as a cloud of {num_points} points (config.data.num_points); save the mesh "
                    "with its faces, or the points as .ply, .npy or .xyz")


def read_array_file(path: str) -> np.ndarray:
  """The array of a .npy, or of a .npz (key points, else xyz, else the first)."""
  try:
    loaded = np.load(path, allow_pickle=False)
    if isinstance(loaded, np.lib.npyio.NpzFile):
      with loaded:
        if not loaded.files:
          raise UserError(f"{path}: the .npz archive holds no arrays.")
        key = next((k for k in _NPZ_KEYS if k in loaded.files),
                   loaded.files[0])
        return loaded[key]
    return loaded
  except UserError:
    raise
  except (OSError, ValueError, EOFError) as e:
    raise UserError(f"{path}: cannot read the array ({e}); the file is "
                    "truncated or corrupt.") from e


def _from_text_file(path: str) -> np.ndarray:
  """Rows of x y z [extra columns], split on whitespace or commas."""
  lines = checks.read_text_lines(path)
  rows = []
  for number, line in enumerate(lines, start=1):
    fields = line.split("#", 1)[0].replace(",", " ").split()
    if not fields:
      continue
    try:
      values = [float(x) for x in fields]
    except ValueError as e:
      raise UserError(f"{path}: line {number} is not numbers: {line!r}") from e
    if len(values) < 3:
      if not rows and len(values) == 1:
        continue  # A point-count header, as some .pts files have.
      raise UserError(f"{path}: line {number} has {len(values)} columns; "
                      "expected at least x y z.")
    rows.append(values[:3])
  if not rows:
    raise UserError(f"{path}: the file holds no points.")
  return np.asarray(rows, np.float64)


def as_cloud(array: np.ndarray, path: str) -> np.ndarray:
  """Checks an array is float[M, >=3] and keeps x y z: -> float[M, 3]."""
  if (array.ndim != 2 or array.shape[1] < 3 or not len(array)
      or not np.issubdtype(array.dtype, np.number)):
    raise UserError(f"{path}: holds an array of shape {array.shape} and dtype "
                    f"{array.dtype}; expected numbers of shape [M, 3] (extra "
                    "columns are ignored).")
  return array[:, :3]


def fit_count(points: np.ndarray, num_points: int,
              rng: np.random.Generator) -> np.ndarray:
  """A random subset of `num_points` rows, or all rows plus random repeats.

  Args:
    points: float[M, 3]. num_points: N. rng: the generator.

  Returns:
    float32[N, 3].
  """
  m = len(points)
  if m >= num_points:
    keep = rng.permutation(m)[:num_points]
  else:
    keep = np.concatenate([rng.permutation(m),
                           rng.integers(0, m, num_points - m)])
  return np.asarray(points, np.float32)[keep]


def read_points(path: str, num_points: int, seed: int = 0) -> np.ndarray:
  """Reads a point cloud or mesh file as exactly `num_points` points.

  Args:
    path: a .ply .off .obj .stl .npy .npz .txt .xyz or .pts file. .npz takes
      the array `points`, else `xyz`, else the first; text files take the
      first 3 columns.
    num_points: N.
    seed: the sampling seed; the same seed and file give the same points.

  Returns:
    float32[N, 3], in the file's coordinates (not normalised).

  Raises:
    UserError: naming `path`, for an unknown extension, unreadable or corrupt
      content, a mesh with no area, a mesh file with no faces and fewer than
      `num_points` vertices, fewer than 3 distinct points, or NaN/inf
      coordinates.
  """
  if num_points <= 0:
    raise UserError(f"num_points must be positive, got {num_points}.")
  ext = os.path.splitext(path)[1].lower()
  if ext not in EXTENSIONS:
    raise UserError(f"{path}: unsupported extension {ext!r}; use one of "
                    f"{' '.join(EXTENSIONS)}.")
  if not os.path.isfile(path):
    raise UserError(f"{path}: no such file.")
  rng = checks.shape_rng(seed, os.path.basename(path))
  if ext == ".off":
    vertices, faces = off.read_off(path, allow_no_faces=True)
    kind, content = ("mesh", (vertices, faces)) if len(faces) else ("points", vertices)
  elif ext in MESH_EXTENSIONS:
    kind, content = _with_trimesh(path)
  elif ext in ARRAY_EXTENSIONS:
    kind, content = "points", as_cloud(read_array_file(path), path)
  else:
    kind, content = "points", _from_text_file(path)
  if kind == "mesh":
    return mesh.sample_surface(*content, num_points, rng, path)
  if ext in FACE_FORMATS:
    _require_enough_vertices(content, ext, num_points, path)
  checks.require_finite(content, path)
  checks.require_distinct(content, path)
  return fit_count(content, num_points, rng)
