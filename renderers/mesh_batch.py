"""Host-side meshes for the renderer: checks, normalisation, normals, packing.

`Mesh` holds one mesh in numpy: vertices, triangles, an RGB colour at every
face corner, and optionally UVs with textures. `pack` turns a list of them
into the padded `mesh.MeshBatch` that `mesh.render` takes, packing each mesh's
textures into one atlas. Batches are padded to a face count from
`face_bucket` (powers of two), so a render job compiles a few shapes only.
"""

import dataclasses
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from renderers.errors import InputError
from renderers.mesh import MeshBatch

# A mesh that brings no colour of its own is drawn in this neutral grey.
DEFAULT_COLOR = (0.7, 0.7, 0.7)
ATLAS_SIZE = 1024
MIN_FACE_BUCKET = 256


@dataclasses.dataclass
class Mesh:
  """One triangle mesh with colours, as the renderer consumes it.

  vertices: float32[V, 3].
  faces: int32[F, 3] indices into vertices.
  face_colors: float32[F, 3, 3] RGB in [0, 1] at each face corner (vertex
    colours, a material's diffuse colour, or `DEFAULT_COLOR`).
  face_uvs: float32[F, 3, 2] texture coordinates, or None.
  face_textures: int32[F] index into `textures` (-1: untextured), or None.
  textures: uint8[h, w, 3] images.
  name: where it came from, for messages.
  warnings: problems that were worked around (e.g. a missing texture).
  """
  vertices: np.ndarray
  faces: np.ndarray
  face_colors: np.ndarray
  face_uvs: Optional[np.ndarray] = None
  face_textures: Optional[np.ndarray] = None
  textures: tuple = ()
  name: str = "<mesh>"
  warnings: tuple = ()

  @property
  def num_faces(self) -> int:
    return len(self.faces)


def from_arrays(vertices, faces, *, vertex_colors=None, face_colors=None,
                color: Optional[Sequence[float]] = None, name: str = "<mesh>") -> Mesh:
  """A `Mesh` from plain arrays, checked.

  Args:
    vertices: float[V, 3].
    faces: int[F, 3].
    vertex_colors: optional float[V, 3] in [0, 1] (uint8 is divided by 255).
    face_colors: optional float[F, 3] in [0, 1].
    color: optional one RGB for the whole mesh; `DEFAULT_COLOR` if nothing
      is given.
    name: named in errors.
  """
  vertices = np.asarray(vertices, np.float32).reshape(-1, 3)
  faces = np.asarray(faces).reshape(-1, 3)
  check(vertices, faces, name)
  faces = faces.astype(np.int32)
  if vertex_colors is not None:
    colors = _unit_colors(vertex_colors, name)
    if len(colors) != len(vertices):
      raise InputError(f"{name}: {len(colors)} vertex colours for {len(vertices)} vertices")
    corner = colors[faces]
  elif face_colors is not None:
    colors = _unit_colors(face_colors, name)
    if len(colors) != len(faces):
      raise InputError(f"{name}: {len(colors)} face colours for {len(faces)} faces")
    corner = np.repeat(colors[:, None], 3, axis=1)
  else:
    rgb = np.asarray(DEFAULT_COLOR if color is None else color, np.float32)
    corner = np.broadcast_to(rgb, (len(faces), 3, 3)).copy()
  return Mesh(vertices=vertices, faces=faces, face_colors=corner, name=name)


def _unit_colors(colors, name: str) -> np.ndarray:
  colors = np.asarray(colors)
  if colors.dtype == np.uint8:
    colors = colors.astype(np.float32) / 255.0
  colors = np.asarray(colors, np.float32)
  if colors.ndim != 2 or colors.shape[1] < 3:
    raise InputError(f"{name}: colours must have shape [N, 3] or [N, 4], got {colors.shape}")
  colors = colors[:, :3]
  if not np.all(np.isfinite(colors)):
    raise InputError(f"{name}: colours contain NaN or inf")
  return np.clip(colors, 0.0, 1.0)


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """float64[F] areas of the triangles."""
  tri = np.asarray(vertices, np.float64)[faces]
  return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def check(vertices: np.ndarray, faces: np.ndarray, name: str) -> None:
  """Raises InputError naming `name` if the mesh cannot be rendered.

  Rejected: no faces, indices out of range, NaN or inf in a used vertex, and
  meshes whose every face has zero area. Single degenerate faces are fine:
  the rasteriser skips them, as PyTorch3D does.
  """
  if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
    raise InputError(f"{name}: the mesh has no triangle faces")
  if not np.issubdtype(faces.dtype, np.integer):
    raise InputError(f"{name}: face indices must be integers, got {faces.dtype}")
  if faces.min() < 0 or faces.max() >= len(vertices):
    raise InputError(f"{name}: face indices out of range [0, {len(vertices)}) "
                     f"(min {faces.min()}, max {faces.max()})")
  used = vertices[np.unique(faces)]
  if not np.all(np.isfinite(used)):
    bad = int(np.sum(~np.all(np.isfinite(used), axis=1)))
    raise InputError(f"{name}: {bad} vertices have NaN or inf coordinates")
  if not np.any(triangle_areas(vertices, faces) > 0):
    raise InputError(f"{name}: all {len(faces)} faces are degenerate (zero area)")


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
  """PyTorch3D's vertex normals: area-weighted face normals summed, normalised.

  Returns float32[V, 3]; a vertex of only degenerate faces gets zeros.
  """
  v = np.asarray(vertices, np.float64)
  tri = v[faces]
  face_normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # 2 * area * n
  sums = np.zeros_like(v)
  index = faces.reshape(-1)
  weights = np.repeat(face_normal, 3, axis=0)
  for c in range(3):
    sums[:, c] = np.bincount(index, weights=weights[:, c], minlength=len(v))
  norm = np.linalg.norm(sums, axis=1, keepdims=True)
  return (sums / np.maximum(norm, 1e-6)).astype(np.float32)


def normalize(mesh: Mesh, center=None, scale=None) -> Mesh:
  """Centres and scales a mesh as CLIP2Point does before rendering.

  By default the centre is the mean of the vertices and the scale puts the
  farthest vertex at distance 1 from it. Pass `center` and `scale` to use
  another frame (e.g. that of the point cloud sampled from the mesh): the
  vertices become (v - center) / scale.
  """
  vertices = np.asarray(mesh.vertices, np.float64)
  if center is None:
    center = vertices.mean(0)
  centred = vertices - np.asarray(center, np.float64)
  if scale is None:
    scale = np.sqrt((centred**2).sum(1).max())
  if not (np.isfinite(scale) and scale > 0):
    raise InputError(f"{mesh.name}: the mesh has no extent to scale by (all vertices coincide)")
  return dataclasses.replace(mesh, vertices=(centred / scale).astype(np.float32))


def face_bucket(num_faces: int, minimum: int = MIN_FACE_BUCKET) -> int:
  """The padded face count for a mesh of `num_faces` faces: a power of two."""
  return max(minimum, 1 << max(0, int(num_faces) - 1).bit_length())


def _shelf_positions(sizes, side: int):
  """Top-left corners that pack rectangles (h, w) into a side x side square."""
  order = sorted(range(len(sizes)), key=lambda i: (-sizes[i][0], -sizes[i][1]))
  x = y = shelf = 0
  positions = [None] * len(sizes)
  for i in order:
    h, w = sizes[i]
    if h > side or w > side:
      return None
    if x + w > side:
      x, y, shelf = 0, y + shelf, 0
    if y + h > side:
      return None
    positions[i] = (y, x)
    x += w
    shelf = max(shelf, h)
  return positions


def pack_atlas(textures: Sequence[np.ndarray], side: int):
  """Packs images into one side x side atlas, shrinking them all if needed.

  Images that fit are copied texel for texel; otherwise all are scaled by one
  factor (antialiased) until they fit.

  Returns:
    atlas uint8[side, side, 3] and rects int32[T, 4] (row, col, height, width).
  """
  sizes = [tuple(int(s) for s in t.shape[:2]) for t in textures]
  scale = min([1.0] + [side / max(s) for s in sizes])
  while True:
    scaled = [(max(1, int(h * scale)), max(1, int(w * scale))) for h, w in sizes]
    positions = _shelf_positions(scaled, side)
    if positions is not None:
      break
    scale *= 0.85
  atlas = np.zeros((side, side, 3), np.uint8)
  rects = np.zeros((len(textures), 4), np.int32)
  for i, (texture, (h, w), (r, c)) in enumerate(zip(textures, scaled, positions)):
    if (h, w) != texture.shape[:2]:
      texture = np.asarray(Image.fromarray(texture).resize((w, h), Image.Resampling.BILINEAR,
                                                           reducing_gap=2.0))
    atlas[r:r + h, c:c + w] = texture
    rects[i] = (r, c, h, w)
  return atlas, rects


def pack_mesh(mesh: Mesh, *, num_faces: Optional[int] = None,
              atlas_size: int = ATLAS_SIZE) -> MeshBatch:
  """One mesh as a `MeshBatch` of size 1 (numpy), padded to `num_faces`.

  This is the costly part of `pack` (normals, corners, the atlas); loader
  threads can run it per mesh, and `stack` then joins the results.
  """
  f = mesh.num_faces
  num_faces = face_bucket(f) if num_faces is None else int(num_faces)
  if f > num_faces:
    raise InputError(f"{mesh.name}: {f} faces do not fit a batch of {num_faces}")
  textured = bool(mesh.textures) and mesh.face_uvs is not None and mesh.face_textures is not None
  side = int(atlas_size) if textured else 1
  out = MeshBatch(
      corners=np.zeros((1, num_faces, 3, 3), np.float32),
      normals=np.zeros((1, num_faces, 3, 3), np.float32),
      colors=np.zeros((1, num_faces, 3, 3), np.float32),
      uvs=np.zeros((1, num_faces, 3, 2), np.float32),
      rects=np.zeros((1, num_faces, 4), np.int32),
      mask=np.zeros((1, num_faces), bool),
      atlas=np.zeros((1, side, side, 3), np.uint8))
  out.corners[0, :f] = mesh.vertices[mesh.faces]
  out.normals[0, :f] = vertex_normals(mesh.vertices, mesh.faces)[mesh.faces]
  out.colors[0, :f] = mesh.face_colors
  out.mask[0, :f] = True
  if textured:
    atlas, rects = pack_atlas(mesh.textures, side)
    out.atlas[0] = atlas
    out.uvs[0, :f] = mesh.face_uvs
    has = mesh.face_textures >= 0
    out.rects[0, :f][has] = rects[mesh.face_textures[has]]
  return out


def stack(packed: Sequence[MeshBatch], batch_size: Optional[int] = None) -> MeshBatch:
  """Joins `pack_mesh` results of one face count into a batch of `batch_size`
  meshes (padding with empty ones); atlases grow to the largest side."""
  if not packed:
    raise InputError("stack needs at least one mesh")
  batch_size = len(packed) if batch_size is None else int(batch_size)
  if len(packed) > batch_size:
    raise InputError(f"stack: {len(packed)} meshes do not fit a batch of {batch_size}")
  num_faces = {p.mask.shape[1] for p in packed}
  if len(num_faces) != 1:
    raise InputError(f"stack: meshes padded to different face counts {sorted(num_faces)}")
  side = max(p.atlas.shape[1] for p in packed)
  fields = {}
  for name in MeshBatch._fields:
    parts = [getattr(p, name) for p in packed]
    if name == "atlas":
      parts = [a if a.shape[1] == side else np.zeros((1, side, side, 3), np.uint8) for a in parts]
    empty = np.zeros((batch_size - len(parts),) + parts[0].shape[1:], parts[0].dtype)
    fields[name] = np.concatenate(parts + [empty])
  return MeshBatch(**fields)


def pack(meshes: Sequence[Mesh], *, num_faces: Optional[int] = None,
         batch_size: Optional[int] = None, atlas_size: int = ATLAS_SIZE) -> MeshBatch:
  """A padded `MeshBatch` (numpy arrays) of `meshes`, as `mesh.render` takes it.

  Args:
    meshes: the meshes, already normalised as they should be rendered.
    num_faces: faces per mesh after padding (default: `face_bucket` of the
      largest); every mesh must fit.
    batch_size: meshes after padding with empty ones (default: len(meshes)).
    atlas_size: side of each mesh's texture atlas; 1 when no mesh of the batch
      has textures.

  Returns:
    `MeshBatch` of numpy arrays; padding faces and meshes have mask False.
  """
  if not meshes:
    raise InputError("pack needs at least one mesh")
  largest = max(m.num_faces for m in meshes)
  num_faces = face_bucket(largest) if num_faces is None else int(num_faces)
  return stack([pack_mesh(m, num_faces=num_faces, atlas_size=atlas_size) for m in meshes],
               batch_size)
