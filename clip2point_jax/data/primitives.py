"""A built-in procedural dataset: point clouds sampled from simple solids.

It needs no download, so the demo and the tests run anywhere. Every shape is
made from a seed alone: the same seed gives the same clouds on every machine.
"""

import colorsys

import numpy as np
import trimesh

from clip2point_jax.data import mesh as mesh_lib

CLASS_NAMES = (
    "sphere", "box", "cylinder", "cone", "torus", "capsule", "pyramid",
    "tetrahedron",
)


def _pyramid() -> trimesh.Trimesh:
  square = [[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]
  return trimesh.convex.convex_hull(np.array(square + [[0, 0, 1.5]], float))


def _tetrahedron() -> trimesh.Trimesh:
  corners = [[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]]
  return trimesh.convex.convex_hull(np.array(corners, float))


def _unit_mesh(name: str, rng: np.random.Generator) -> trimesh.Trimesh:
  """The shape `name` about the origin, with its own random proportions."""
  c = trimesh.creation
  if name == "sphere":
    return c.icosphere(subdivisions=3)
  if name == "box":
    return c.box(extents=rng.uniform(0.6, 1.6, size=3))
  if name == "cylinder":
    return c.cylinder(radius=rng.uniform(0.3, 0.6), height=rng.uniform(1.0, 2.0), sections=48)
  if name == "cone":
    return c.cone(radius=rng.uniform(0.4, 0.8), height=rng.uniform(1.0, 2.0), sections=48)
  if name == "torus":
    return c.torus(major_radius=1.0, minor_radius=rng.uniform(0.15, 0.4),
                   major_sections=48, minor_sections=24)
  if name == "capsule":
    return c.capsule(height=rng.uniform(0.8, 1.6), radius=rng.uniform(0.25, 0.5), count=[24, 24])
  if name == "pyramid":
    return _pyramid()
  if name == "tetrahedron":
    return _tetrahedron()
  raise ValueError(f"unknown primitive {name!r}; known: {', '.join(CLASS_NAMES)}")


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
  q, r = np.linalg.qr(rng.normal(size=(3, 3)))
  q = q * np.sign(np.diag(r))
  if np.linalg.det(q) < 0:
    q[:, 0] = -q[:, 0]
  return q


def make_shape(name: str, num_points: int, rng: np.random.Generator, noise: float = 0.01):
  """One random instance of shape `name`, as a cloud and the mesh it came from.

  Returns:
    points float32[num_points, 3], and the mesh in the same frame (the cloud's
    scale, rotation and shift, without its noise): vertices float32[V, 3] and
    faces int64[F, 3].
  """
  mesh = _unit_mesh(name, rng)
  scale = rng.uniform(0.7, 1.3) * rng.uniform(0.85, 1.15, size=3)
  vertices = (np.asarray(mesh.vertices) * scale) @ _random_rotation(rng).T
  faces = np.asarray(mesh.faces)
  points = mesh_lib.sample_surface(vertices, faces, num_points, rng, name)
  points += rng.normal(scale=noise, size=points.shape).astype(np.float32)
  shift = rng.uniform(-0.2, 0.2, size=3).astype(np.float32)
  return points + shift, (vertices + shift).astype(np.float32), faces


def make_cloud(name: str, num_points: int, rng: np.random.Generator,
               noise: float = 0.01) -> np.ndarray:
  """One random instance of shape `name`: float32[num_points, 3]."""
  return make_shape(name, num_points, rng, noise)[0]


def shape_color(rng: np.random.Generator) -> np.ndarray:
  """A saturated, fairly bright RGB colour in [0, 1], drawn from `rng`."""
  hue, saturation, value = rng.uniform(0, 1), rng.uniform(0.45, 0.9), rng.uniform(0.6, 0.95)
  return np.asarray(colorsys.hsv_to_rgb(hue, saturation, value), np.float32)


def generate(num_per_class: int, num_points: int, seed: int, with_meshes: bool = False):
  """`num_per_class` clouds of every class in `CLASS_NAMES`, class-major.

  Returns:
    points: float32[M, num_points, 3] with M = num_per_class * len(CLASS_NAMES).
    labels: int32[M], indices into `CLASS_NAMES`.
    meshes (only if `with_meshes`): M tuples (vertices float32[V, 3], faces
      int64[F, 3], color float32[3]): the mesh each cloud was sampled from, in
      the cloud's frame, and a colour drawn for it. Asking for them leaves the
      clouds unchanged.
  """
  clouds, labels, meshes = [], [], []
  for label, name in enumerate(CLASS_NAMES):
    for i in range(num_per_class):
      # One generator per shape, so a shape doesn't change when counts do.
      rng = np.random.default_rng([seed, label, i])
      points, vertices, faces = make_shape(name, num_points, rng)
      clouds.append(points)
      labels.append(label)
      if with_meshes:
        # Drawn after the cloud's numbers, so the clouds stay as they were.
        meshes.append((vertices, faces, shape_color(rng)))
  clouds, labels = np.stack(clouds), np.asarray(labels, np.int32)
  return (clouds, labels, meshes) if with_meshes else (clouds, labels)
