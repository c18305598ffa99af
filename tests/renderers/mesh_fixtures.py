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
