"""Host-side meshes: PyTorch3D's vertex normals, packing and padding."""

import numpy as np
import pytest

from renderers import mesh_batch
from renderers.errors import InputError


def test_vertex_normals_weight_faces_by_area_like_pytorch3d():
  # Vertex 0 is shared by a triangle of area 2 in the z=0 plane (normal +z)
  # and one of area 0.5 in the x=0 plane (normal +x).
  vertices = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 1, 0], [0, 0, 1]], np.float32)
  faces = np.array([[0, 1, 2], [0, 3, 4]])
  normals = mesh_batch.vertex_normals(vertices, faces)
  expected = np.array([0.5, 0.0, 2.0]) / np.hypot(0.5, 2.0)
  np.testing.assert_allclose(normals[0], expected, rtol=1e-6)
  np.testing.assert_allclose(normals[1], [0, 0, 1], atol=1e-7)
  np.testing.assert_allclose(normals[4], [1, 0, 0], atol=1e-7)


def test_pack_pads_faces_and_meshes_and_keeps_corners():
  rng = np.random.default_rng(0)
  meshes = [mesh_batch.from_arrays(rng.normal(size=(5, 3)), [[0, 1, 2], [2, 3, 4]], color=c)
            for c in ([1, 0, 0], [0, 1, 0])]
  batch = mesh_batch.pack(meshes, batch_size=3)
  assert batch.corners.shape == (3, mesh_batch.MIN_FACE_BUCKET, 3, 3)
  assert batch.mask.sum(1).tolist() == [2, 2, 0]
  np.testing.assert_array_equal(batch.corners[1, 1], meshes[1].vertices[[2, 3, 4]])
  np.testing.assert_array_equal(batch.colors[0, :2], np.broadcast_to([1, 0, 0], (2, 3, 3)))
  assert batch.atlas.shape == (3, 1, 1, 3)  # no textures: a 1x1 atlas
  assert mesh_batch.face_bucket(257) == 512 and mesh_batch.face_bucket(3) == 256
  with pytest.raises(InputError, match="do not fit"):
    mesh_batch.pack(meshes, num_faces=1)
