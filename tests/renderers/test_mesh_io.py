"""Mesh files -> meshes: ShapeNetCore v2 OBJ+MTL+textures, colours, and bad files."""

import os

import numpy as np
import pytest
import trimesh

from renderers import mesh_batch
from renderers import mesh_io
from renderers.errors import InputError
from tests.renderers import mesh_fixtures


def test_shapenet_obj_with_texture_and_material_colour(tmp_path):
  path, texture = mesh_fixtures.write_shapenet_model(str(tmp_path), "02691156", "abc123",
                                                     np.random.default_rng(0))
  assert path == mesh_io.shapenet_path(str(tmp_path), "02691156", "abc123")
  mesh = mesh_io.load_mesh(path)
  assert mesh.warnings == ()
  assert len(mesh.textures) == 1
  np.testing.assert_array_equal(mesh.textures[0], texture)
  # Seams and materials split vertices in trimesh; the cube's 8 corners come back.
  assert len(mesh.vertices) == 8
  textured = mesh.face_textures >= 0
  assert textured.sum() == mesh_fixtures.CUBE_TEXTURED_FACES
  assert (~textured).sum() == mesh_fixtures.CUBE_PLAIN_FACES
  np.testing.assert_allclose(mesh.face_colors[~textured],
                             np.broadcast_to([0.8, 0.1, 0.1], (8, 3, 3)), rtol=1e-6)
  # Every textured corner carries the UV its OBJ line gave that position.
  corners = mesh.vertices[mesh.faces[textured]]
  uvs = mesh.face_uvs[textured]
  front = np.isclose(corners[..., 2], 0.5).all(-1)
  np.testing.assert_allclose(uvs[front], corners[front][..., :2] + 0.5)
  top = np.isclose(corners[..., 1], 0.5).all(-1)
  np.testing.assert_allclose(uvs[top][..., 0], corners[top][..., 0] + 0.5)
  np.testing.assert_allclose(uvs[top][..., 1], 0.5 - corners[top][..., 2])
  assert mesh_io.mesh_id(path) == "02691156_abc123"


def test_normalize_centres_at_vertex_mean_and_scales_to_unit_radius(tmp_path):
  path, _ = mesh_fixtures.write_shapenet_model(str(tmp_path), "02691156", "m", np.random.default_rng(1))
  mesh = mesh_io.load_mesh(path)
  moved = mesh_batch.from_arrays(mesh.vertices * 3.0 + [1.0, -2.0, 0.5], mesh.faces)
  unit = mesh_batch.normalize(moved)
  np.testing.assert_allclose(unit.vertices.mean(0), 0.0, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(unit.vertices, axis=1).max(), 1.0, rtol=1e-6)
  np.testing.assert_allclose(unit.vertices, (mesh.vertices - mesh.vertices.mean(0)) / np.sqrt(0.75),
                             atol=1e-6)


def test_missing_texture_falls_back_to_material_colour(tmp_path):
  path, _ = mesh_fixtures.write_shapenet_model(str(tmp_path), "03001627", "m", np.random.default_rng(2))
  os.remove(os.path.join(tmp_path, "03001627", "m", "images", "texture0.png"))
  mesh = mesh_io.load_mesh(path)
  assert mesh.textures == () and mesh.face_textures is None
  assert len(mesh.warnings) == 1 and "texture0.png" in mesh.warnings[0] and path in mesh.warnings[0]
  # The textured material's Kd (white) now colours its faces.
  white = np.all(np.isclose(mesh.face_colors, 1.0), axis=(1, 2))
  assert white.sum() == mesh_fixtures.CUBE_TEXTURED_FACES


def test_unreadable_texture_and_missing_mtl_are_warnings(tmp_path):
  path, _ = mesh_fixtures.write_shapenet_model(str(tmp_path), "03001627", "m", np.random.default_rng(3))
  with open(os.path.join(tmp_path, "03001627", "m", "images", "texture0.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\nnot really")
  mesh = mesh_io.load_mesh(path)
  assert mesh.textures == () and "unreadable texture" in mesh.warnings[0]
  os.remove(os.path.join(tmp_path, "03001627", "m", "models", "model_normalized.mtl"))
  mesh = mesh_io.load_mesh(path)
  assert "model_normalized.mtl is missing" in mesh.warnings[0]
  np.testing.assert_allclose(mesh.face_colors, np.broadcast_to(mesh_batch.DEFAULT_COLOR, mesh.face_colors.shape))


def test_vertex_colours_of_a_ply(tmp_path):
  box = trimesh.creation.box()
  colors = np.random.default_rng(4).integers(0, 256, (len(box.vertices), 4), dtype=np.uint8)
  colors[:, 3] = 255
  box.visual.vertex_colors = colors
  path = str(tmp_path / "box.ply")
  box.export(path)
  mesh = mesh_io.load_mesh(path)
  corner_colors = (colors[:, :3] / 255.0)[np.asarray(box.faces)]
  # Vertices may be renumbered: match corners by position.
  lookup = {tuple(v): c for v, c in zip(np.asarray(box.vertices, np.float32).tolist(), colors[:, :3] / 255.0)}
  expected = np.array([[lookup[tuple(v)] for v in tri] for tri in mesh.vertices[mesh.faces].tolist()])
  np.testing.assert_allclose(mesh.face_colors, expected, atol=1e-6)
  assert corner_colors.shape == mesh.face_colors.shape


BAD_OBJS = {
    "no_faces": ("v 0 0 0\nv 1 0 0\nv 0 1 0\n", "no triangle faces"),
    "nan_vertex": ("v 0 0 0\nv nan 0 0\nv 0 1 0\nf 1 2 3\n", "NaN or inf"),
    "degenerate": ("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\nf 1 3 2\n", "degenerate"),
    "garbage": (bytes(np.random.default_rng(5).integers(0, 256, 300, dtype=np.uint8)), ""),
}


@pytest.mark.parametrize("case", sorted(BAD_OBJS))
def test_bad_meshes_raise_one_error_naming_the_file(tmp_path, case):
  content, message = BAD_OBJS[case]
  path = tmp_path / f"{case}.obj"
  path.write_bytes(content if isinstance(content, bytes) else content.encode())
  with pytest.raises(InputError) as error:
    mesh_io.load_mesh(str(path))
  assert str(path) in str(error.value) and message in str(error.value)


def test_missing_file_and_single_degenerate_face_is_fine(tmp_path):
  with pytest.raises(InputError, match="no such mesh file"):
    mesh_io.load_mesh(str(tmp_path / "nope.obj"))
  path = tmp_path / "one_bad_face.obj"
  path.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 2 0 0\nf 1 2 3\nf 1 2 4\n")
  mesh = mesh_io.load_mesh(str(path))
  assert mesh.num_faces == 2  # The rasteriser skips the zero-area one.


def test_from_arrays_checks_its_input():
  with pytest.raises(InputError, match="out of range"):
    mesh_batch.from_arrays(np.zeros((3, 3)), [[0, 1, 3]], name="m")
  with pytest.raises(InputError, match="no triangle faces"):
    mesh_batch.from_arrays(np.zeros((3, 3)), np.zeros((0, 3), int), name="m")
  with pytest.raises(InputError, match="no extent"):
    mesh_batch.normalize(mesh_batch.from_arrays([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 2, 2]],
                                                [[0, 1, 2]]), center=[3, 3, 3], scale=0.0)
