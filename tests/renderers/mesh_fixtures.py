"""Test meshes and an independent reference: trimesh's ray-triangle test."""

import numpy as np
import trimesh
from trimesh.ray import ray_triangle

from renderers import cameras
from renderers import mesh_batch
from tests.renderers.hand_geometry import HAND_AXES


def _rotation(rng):
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  return q if np.linalg.det(q) > 0 else -q


def make_shapes(seed: int = 0) -> list:
  """A sphere, a box, a torus (concave, with a hole) and a thin plate, each
  turned at random and normalised as CLIP2Point does."""
  rng = np.random.default_rng(seed)
  c = trimesh.creation
  shapes = [("sphere", c.icosphere(subdivisions=3)),
            ("box", c.box(extents=(1.2, 0.8, 0.6))),
            ("torus", c.torus(1.0, 0.35, major_sections=32, minor_sections=12)),
            ("plate", c.box(extents=(1.6, 1.1, 0.02)))]
  meshes = []
  for name, m in shapes:
    vertices = np.asarray(m.vertices) @ _rotation(rng).T
    meshes.append(mesh_batch.normalize(mesh_batch.from_arrays(vertices, m.faces, name=name)))
  return meshes


class _BoxTree:
  """The two methods of an rtree index that trimesh's ray test calls, by brute force."""

  def __init__(self, triangles):
    self.lo, self.hi = triangles.min(1), triangles.max(1)
    self.bounds = np.concatenate([self.lo.min(0), self.hi.max(0)])

  def intersection(self, box):
    return np.nonzero(np.all(self.lo <= box[3:], 1) & np.all(self.hi >= box[:3], 1))[0]


def raycast_depth(mesh, view, size, camera, distance):
  """float64[size, size] view depth of the first hit through each pixel centre
  (+inf on a miss), by trimesh's ray-triangle intersection.

  The mesh is moved into view space with the hand-worked camera axes, so the
  rays run along +z (orthographic, CLIP2Point's 1/distance zoom) or fan out
  from the origin (perspective).
  """
  axes = np.array(HAND_AXES[tuple(view)], np.float64)
  centres = 1 - (2 * np.arange(size) + 1) / size
  x, y = np.meshgrid(centres, centres)  # x along columns, y along rows
  ortho = isinstance(camera, cameras.OrthographicCamera)
  vertices = np.asarray(mesh.vertices, np.float64)
  vertices = (vertices / distance if ortho else vertices) @ axes.T + [0.0, 0.0, distance]
  if ortho:
    origins = np.stack([x.ravel(), y.ravel(), np.full(x.size, -10.0)], -1)
    directions = np.broadcast_to([0.0, 0.0, 1.0], origins.shape)
  else:
    focal = 1 / np.tan(np.radians(camera.fov) / 2)
    directions = np.stack([x.ravel() / focal, y.ravel() / focal, np.ones(x.size)], -1)
    origins = np.zeros_like(directions)
  triangles = vertices[mesh.faces]
  _, ray, location = ray_triangle.ray_triangle_id(
      triangles, origins, directions, tree=_BoxTree(triangles), multiple_hits=False)
  depth = np.full(size * size, np.inf)
  depth[ray] = location[:, 2]
  return depth.reshape(size, size)


# A unit cube as ShapeNetCore v2 writes models: positions, then texture
# coordinates, then faces grouped by `usemtl`. The top (+y) and front (+z)
# sides are textured (the front as one quad), the rest use a plain material.
_CUBE_OBJ = """# written by the tests in ShapeNetCore v2's layout
mtllib model_normalized.mtl
v -0.5 -0.5 -0.5
v 0.5 -0.5 -0.5
v 0.5 0.5 -0.5
v -0.5 0.5 -0.5
v -0.5 -0.5 0.5
v 0.5 -0.5 0.5
v 0.5 0.5 0.5
v -0.5 0.5 0.5
vt 0 0
vt 1 0
vt 1 1
vt 0 1
g body
usemtl textured
f 5/1 6/2 7/3 8/4
f 8/1 7/2 3/3
f 8/1 3/3 4/4
usemtl plain
f 1 3 2
f 1 4 3
f 1 2 6
f 1 6 5
f 2 3 7
f 2 7 6
f 1 5 8
f 1 8 4
"""
CUBE_PLAIN_FACES = 8
CUBE_TEXTURED_FACES = 4  # the front quad splits in two


def write_shapenet_model(root, synset, model, rng, *, texture_size=(6, 5),
                         plain_kd=(0.8, 0.1, 0.1), texture_format="PNG"):
  """<root>/<synset>/<model>/models/model_normalized.{obj,mtl} and
  <root>/<synset>/<model>/images/texture0.png, as ShapeNetCore v2 lays them out.

  Returns (obj path, the texture uint8[h, w, 3]).
  """
  import os

  from PIL import Image

  folder = os.path.join(root, synset, model)
  os.makedirs(os.path.join(folder, "models"), exist_ok=True)
  os.makedirs(os.path.join(folder, "images"), exist_ok=True)
  texture = rng.integers(0, 256, texture_size + (3,), dtype=np.uint8)
  extension = "png" if texture_format == "PNG" else "jpg"
  Image.fromarray(texture).save(os.path.join(folder, "images", f"texture0.{extension}"),
                                format=texture_format)
  with open(os.path.join(folder, "models", "model_normalized.mtl"), "w") as f:
    f.write(f"newmtl textured\nKa 0 0 0\nKd 1 1 1\nmap_Kd ../images/texture0.{extension}\n\n"
            f"newmtl plain\nKa 0 0 0\nKd {plain_kd[0]} {plain_kd[1]} {plain_kd[2]}\n")
  path = os.path.join(folder, "models", "model_normalized.obj")
  with open(path, "w") as f:
    f.write(_CUBE_OBJ)
  return path, texture
