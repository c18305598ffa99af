"""Mesh files to `mesh_batch.Mesh`: OBJ+MTL with textures (ShapeNetCore v2), PLY, OFF, ...

trimesh parses the geometry; the MTL's diffuse colours and texture files are
read here, so a missing texture is noticed and named (trimesh drops it
silently) and `../images/` paths resolve as ShapeNetCore v2 writes them:

  <synset>/<model>/models/model_normalized.obj   (mtllib model_normalized.mtl)
  <synset>/<model>/models/model_normalized.mtl   (map_Kd ../images/texture0.jpg)
  <synset>/<model>/images/texture0.jpg

Colours, per face, as PyTorch3D's OBJ loader builds them: a face whose
material has a readable texture and UVs samples the texture (its Kd is not
multiplied in, as in PyTorch3D); a face whose material has only a diffuse
colour Kd gets Kd; vertex or face colours of PLY/OFF/OBJ files are used as
given; anything else gets `mesh_batch.DEFAULT_COLOR`, a neutral grey (PyTorch3D
uses white).

Vertices with bit-identical positions are merged (trimesh splits them at UV
seams and between materials), so normals are smooth across seams, as
PyTorch3D computes them on the OBJ's own vertex list.

Errors: an unreadable file, no faces, NaN/inf vertices, out-of-range indices
or only degenerate faces raise `InputError` naming the file. A missing or
unreadable texture, a missing MTL or an undefined material fall back to the
material colour (or grey) and are listed in `Mesh.warnings`.
"""

import os
import re
from typing import Optional

import numpy as np
from PIL import Image
import trimesh

from renderers import mesh_batch
from renderers.errors import InputError

SHAPENET_MODEL = os.path.join("models", "model_normalized.obj")


def shapenet_path(root: str, synset: str, model: str) -> str:
  """ShapeNetCore v2's OBJ of a model: <root>/<synset>/<model>/models/model_normalized.obj."""
  return os.path.join(root, synset, model, SHAPENET_MODEL)


def _parse_mtl(path: str) -> dict:
  """{material: {"Kd": (r, g, b) or None, "map_Kd": file or None}} of an MTL file."""
  materials, current = {}, None
  with open(path, "r", errors="replace") as f:
    for line in f:
      parts = line.strip().split(None, 1)
      if not parts or parts[0].startswith("#"):
        continue
      key, rest = parts[0].lower(), parts[1].strip() if len(parts) > 1 else ""
      if key == "newmtl":
        current = materials.setdefault(rest, {"Kd": None, "map_Kd": None})
      elif current is None:
        continue
      elif key == "kd":
        try:
          values = [float(v) for v in rest.split()[:3]]
        except ValueError:
          continue
        if len(values) == 1:
          values = values * 3
        if len(values) == 3 and all(np.isfinite(values)):
          current["Kd"] = tuple(float(np.clip(v, 0.0, 1.0)) for v in values)
      elif key == "map_kd" and rest:
        # Options (-s 1 1 1, -clamp on, ...) come first; the file name is last.
        current["map_Kd"] = rest.split()[-1].replace("\\", "/")
  return materials


def _mtl_files(obj_path: str) -> list[str]:
  folder = os.path.dirname(obj_path)
  names = []
  with open(obj_path, "r", errors="replace") as f:
    for line in f:
      if line.startswith("mtllib"):
        names += line[6:].split()
  return [os.path.join(folder, n.replace("\\", "/")) for n in names]


def _texture_file(mtl_path: str, name: str) -> Optional[str]:
  folder = os.path.dirname(mtl_path)
  for candidate in (os.path.join(folder, name), os.path.join(folder, os.path.basename(name)),
                    os.path.join(folder, "..", "images", os.path.basename(name))):
    if os.path.isfile(candidate):
      return os.path.normpath(candidate)
  return None


def _read_image(path: str) -> np.ndarray:
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"), np.uint8)


class _Materials:
  """The MTL files of an OBJ, with textures read once and problems noted."""

  def __init__(self, obj_path: str, default_color):
    self.obj_path = obj_path
    self.default_color = tuple(float(c) for c in default_color)
    self.props, self.mtl_of = {}, {}
    self.warnings = []
    self.textures, self._texture_index = [], {}
    for mtl in _mtl_files(obj_path):
      if not os.path.isfile(mtl):
        self.warnings.append(f"{obj_path}: material library {mtl} is missing; "
                             "using the default colour")
        continue
      for name, props in _parse_mtl(mtl).items():
        self.props[name] = props
        self.mtl_of[name] = mtl

  def color(self, material: Optional[str]):
    props = self.props.get(material) if material is not None else None
    return props["Kd"] if props and props["Kd"] is not None else self.default_color

  def texture(self, material: Optional[str]) -> int:
    """Index of the material's texture in `textures`, or -1 (with a warning)."""
    props = self.props.get(material)
    if not props or not props["map_Kd"]:
      return -1
    if material in self._texture_index:
      return self._texture_index[material]
    index = -1
    path = _texture_file(self.mtl_of[material], props["map_Kd"])
    if path is None:
      self.warnings.append(f"{self.obj_path}: texture {props['map_Kd']} of material "
                           f"{material!r} is missing; using its diffuse colour")
    else:
      try:
        self.textures.append(_read_image(path))
        index = len(self.textures) - 1
      except Exception as e:  # PIL signals bad images with many types.  pylint: disable=broad-except
        self.warnings.append(f"{path}: unreadable texture of material {material!r} ({e}); "
                             "using its diffuse colour")
    self._texture_index[material] = index
    return index


def _geometries(loaded):
  """(vertices float64[V, 3], faces int[F, 3], visual) of every mesh in a load result."""
  if isinstance(loaded, trimesh.Trimesh):
    return [(np.asarray(loaded.vertices, np.float64), np.asarray(loaded.faces), loaded.visual)]
  if isinstance(loaded, trimesh.Scene):
    out = []
    for node in loaded.graph.nodes_geometry:
      transform, name = loaded.graph[node]
      geometry = loaded.geometry[name]
      if not isinstance(geometry, trimesh.Trimesh):
        continue
      vertices = trimesh.transformations.transform_points(
          np.asarray(geometry.vertices, np.float64), transform)
      out.append((vertices, np.asarray(geometry.faces), geometry.visual))
    return out
  return []


def _material_name(visual) -> Optional[str]:
  material = getattr(visual, "material", None)
  name = getattr(material, "name", None)
  return str(name) if name is not None else None


def load_mesh(path: str, *, default_color=None) -> mesh_batch.Mesh:
  """Reads a mesh file into a `mesh_batch.Mesh` (not normalised).

  Args:
    path: .obj (with .mtl and textures), .ply, .off, .stl, .glb, ... anything
      trimesh reads.
    default_color: RGB for faces without colour (default
      `mesh_batch.DEFAULT_COLOR`).

  Raises:
    InputError: naming the file, when it cannot be read or rendered.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise InputError(f"{path}: no such mesh file")
  try:
    loaded = trimesh.load(path, process=False)
  except Exception as e:  # trimesh raises many types on bad files.  pylint: disable=broad-except
    raise InputError(f"{path}: cannot read the mesh ({type(e).__name__}: {e})") from e
  geometries = [g for g in _geometries(loaded) if len(g[1])]
  if not geometries:
    raise InputError(f"{path}: the mesh has no triangle faces")
  default = np.asarray(mesh_batch.DEFAULT_COLOR if default_color is None else default_color,
                       np.float32)
  materials = _Materials(path, default) if path.lower().endswith(".obj") else None
  positions, faces, colors, uvs, textures = [], [], [], [], []
  offset = 0
  for vertices, geometry_faces, visual in geometries:
    geometry_faces = np.asarray(geometry_faces)
    if (geometry_faces.ndim != 2 or geometry_faces.shape[1] != 3
        or not np.issubdtype(geometry_faces.dtype, np.integer)):
      raise InputError(f"{path}: faces are not triangles of vertex indices")
    if len(geometry_faces) and (geometry_faces.min() < 0 or geometry_faces.max() >= len(vertices)):
      raise InputError(f"{path}: face indices out of range [0, {len(vertices)})")
    count = len(geometry_faces)
    corner_uv = np.zeros((count, 3, 2), np.float32)
    texture = np.full(count, -1, np.int32)
    color = np.broadcast_to(default, (count, 3, 3))
    kind = getattr(visual, "kind", None)
    if materials is not None and isinstance(visual, trimesh.visual.TextureVisuals):
      name = _material_name(visual)
      if name is not None and name not in materials.props and materials.props:
        materials.warnings.append(f"{path}: material {name!r} is not defined in the MTL; "
                                  "using the default colour")
      color = np.broadcast_to(np.asarray(materials.color(name), np.float32), (count, 3, 3))
      index = materials.texture(name)
      uv = getattr(visual, "uv", None)
      if index >= 0 and (uv is None or len(uv) != len(vertices)):
        materials.warnings.append(f"{path}: material {name!r} has a texture but its faces "
                                  "have no UVs; using its diffuse colour")
      elif index >= 0:
        corner_uv = np.asarray(uv, np.float32)[geometry_faces]
        texture[:] = index
    elif kind == "vertex":
      vc = np.asarray(visual.vertex_colors)[:, :3].astype(np.float32) / 255.0
      color = vc[geometry_faces]
    elif kind == "face":
      fc = np.asarray(visual.face_colors)[:, :3].astype(np.float32) / 255.0
      color = np.repeat(fc[:, None], 3, axis=1)
    positions.append(vertices)
    faces.append(geometry_faces + offset)
    offset += len(vertices)
    colors.append(color)
    uvs.append(corner_uv)
    textures.append(texture)
  all_vertices = np.concatenate(positions).astype(np.float32)
  all_faces = np.concatenate(faces)
  mesh_batch.check(all_vertices, all_faces, path)
  vertices, faces_merged = merge_positions(all_vertices, all_faces)
  texture_ids = np.concatenate(textures)
  loaded_textures = tuple(materials.textures) if materials is not None else ()
  return mesh_batch.Mesh(
      vertices=vertices, faces=faces_merged, face_colors=np.concatenate(colors).astype(np.float32),
      face_uvs=np.concatenate(uvs) if loaded_textures else None,
      face_textures=texture_ids if loaded_textures else None,
      textures=loaded_textures, name=path,
      warnings=tuple(materials.warnings) if materials is not None else ())


def merge_positions(vertices: np.ndarray, faces: np.ndarray):
  """Merges bit-identical vertices and drops unreferenced ones.

  Returns (vertices float32[V', 3], faces int32[F, 3]) in order of first use.
  """
  used = np.asarray(vertices, np.float32)[faces.reshape(-1)] + np.float32(0.0)  # -0 -> +0
  keys = np.ascontiguousarray(used).view(np.dtype((np.void, 12))).ravel()
  _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
  # Renumber by first use, so merging keeps the file's vertex order.
  rank = np.empty(len(first), np.int64)
  rank[np.argsort(first, kind="stable")] = np.arange(len(first))
  merged = np.empty((len(first), 3), np.float32)
  merged[rank] = used[first]
  return merged, rank[inverse.reshape(-1)].reshape(-1, 3).astype(np.int32)


def mesh_id(path: str) -> str:
  """`<synset>_<model>` for a ShapeNetCore v2 model path, else the file's stem."""
  parts = os.path.normpath(path).split(os.sep)
  if len(parts) >= 4 and parts[-2] == "models" and re.fullmatch(r"\d{8}", parts[-4] or ""):
    return f"{parts[-4]}_{parts[-3]}"
  return os.path.splitext(os.path.basename(path))[0]
