"""`read_points` on every supported extension, and on broken files."""

import re

import data_fixtures as fx
import numpy as np
import pytest
import trimesh

from clip2point_jax.data import point_files
from clip2point_jax.errors import UserError

N = 300


@pytest.fixture(name="box")
def _box():
  vertices, quads, lo, hi = fx.random_box(np.random.default_rng(0))
  tris = [(q[0], q[j], q[j + 1]) for q in quads for j in (1, 2)]
  return trimesh.Trimesh(vertices, tris, process=False), quads, lo, hi


@pytest.mark.parametrize("ext", [".ply", ".obj", ".stl", ".off"])
def test_meshes_are_surface_sampled(tmp_path, box, ext):
  tm, quads, lo, hi = box
  path = str(tmp_path / f"box{ext}")
  if ext == ".off":
    fx.write_off(path, tm.vertices, quads, malformed_header=True)
  else:
    tm.export(path)
  points = point_files.read_points(path, N, seed=3)
  assert points.shape == (N, 3) and points.dtype == np.float32
  assert fx.on_box_surface(points, lo, hi).all()
  # Surface samples, not just the 8 corners.
  assert len(np.unique(points.round(4), axis=0)) == N
  np.testing.assert_array_equal(points,
                                point_files.read_points(path, N, seed=3))
  assert not np.array_equal(points, point_files.read_points(path, N, seed=4))


def _cloud(m=500):
  return fx.random_clouds(np.random.default_rng(5), 1, m)[0].astype(np.float64)


def _assert_rows_of(points, cloud):
  assert points.shape == (N, 3) and points.dtype == np.float32
  dist = np.abs(points[:, None, :] - cloud[None].astype(np.float32)).max(-1)
  assert dist.min(axis=1).max() < 1e-4  # Every point is a row of the cloud.


@pytest.mark.parametrize("ext", [".ply", ".npy", ".npz", ".txt", ".xyz",
                                 ".pts", ".csv.txt"])
def test_point_clouds(tmp_path, ext):
  cloud = _cloud()
  path = str(tmp_path / f"cloud{ext}")
  normals = np.random.default_rng(6).normal(size=cloud.shape)
  if ext == ".ply":
    trimesh.PointCloud(cloud).export(path)
  elif ext == ".npy":
    np.save(path, np.concatenate([cloud, normals], 1).astype(np.float32))
  elif ext == ".npz":
    np.savez(path, normals=normals, xyz=cloud)
  elif ext == ".csv.txt":  # ModelNet's resampled files: x,y,z,nx,ny,nz
    np.savetxt(path, np.concatenate([cloud, normals], 1), delimiter=",",
               fmt="%.6f")
  elif ext == ".pts":  # A count line, then rows.
    np.savetxt(path, cloud, fmt="%.6f", header=str(len(cloud)), comments="")
  else:
    np.savetxt(path, cloud, fmt="%.6f")
  points = point_files.read_points(path, N, seed=0)
  _assert_rows_of(points, cloud)
  assert len(np.unique(points, axis=0)) == N  # A subset, no repeats.


def test_npz_prefers_points_key_and_small_clouds_repeat(tmp_path):
  cloud = _cloud(40)
  path = str(tmp_path / "c.npz")
  np.savez(path, a=np.zeros((5, 3)), points=cloud)
  points = point_files.read_points(path, N, seed=0)
  _assert_rows_of(points, cloud)
  assert len(np.unique(points, axis=0)) == 40  # All rows, then repeats.


def _raises_naming(path, word):
  return pytest.raises(UserError, match=re.escape(str(path)) + "(.|\n)*" + word)


@pytest.mark.parametrize("case,name,word", [
    ("unknown_ext", "c.vtk", "unsupported extension"),
    ("missing", "gone.npy", "no such file"),
    ("nan_npy", "c.npy", "NaN"),
    ("inf_txt", "c.xyz", "NaN"),
    ("wrong_shape_npy", "c.npy", "shape"),
    ("truncated_npy", "c.npy", "truncated"),
    ("empty_npz", "c.npz", "no arrays"),
    ("text_not_numbers", "c.txt", "line 2 is not numbers"),
    ("text_two_columns", "c.txt", "2 columns"),
    ("empty_text", "c.pts", "no points"),
    ("corrupt_ply", "c.ply", "corrupt"),
    ("corrupt_obj", "c.obj", "corrupt"),
    ("empty_stl", "c.stl", "no faces and no points"),
    ("flat_stl", "c.stl", "zero total area"),
    ("zero_face_off", "c.off", "no faces"),
])
def test_bad_files(tmp_path, box, case, name, word):
  path = str(tmp_path / name)
  cloud = _cloud(20)
  if case == "nan_npy":
    cloud[3, 2] = np.nan
    np.save(path, cloud)
  elif case == "inf_txt":
    cloud[0, 0] = np.inf
    np.savetxt(path, cloud)
  elif case == "wrong_shape_npy":
    np.save(path, cloud[:, :2])
  elif case == "truncated_npy":
    np.save(path, cloud)
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:100])
  elif case == "empty_npz":
    np.savez(path)
  elif case == "text_not_numbers":
    open(path, "w").write("1 2 3\n4 five 6\n")
  elif case == "text_two_columns":
    open(path, "w").write("1 2 3\n4 5\n")
  elif case == "empty_text":
    open(path, "w").write("# nothing here\n\n")
  elif case == "corrupt_ply":
    box[0].export(path)
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[:len(raw) // 2])
  elif case == "corrupt_obj":
    open(path, "w").write("v 0 0 x\nf 1 2 3\n")
  elif case == "empty_stl":
    open(path, "w").write("solid x\nendsolid x\n")
  elif case == "flat_stl":
    trimesh.Trimesh([[0, 0, 0], [1, 1, 1], [2, 2, 2]], [[0, 1, 2]],
                    process=False).export(path)
  elif case == "zero_face_off":
    open(path, "w").write("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n")
  elif case == "unknown_ext":
    open(path, "w").write("x")
  with _raises_naming(path, word):
    point_files.read_points(path, N, seed=0)


@pytest.mark.parametrize("ext", [".obj", ".off"])
def test_a_mesh_file_without_faces_is_a_cloud_only_with_enough_vertices(tmp_path, ext):
  path = str(tmp_path / f"points{ext}")

  def write(cloud):
    if ext == ".obj":
      open(path, "w").write("".join(f"v {x} {y} {z}\n" for x, y, z in cloud))
    else:
      open(path, "w").write(f"OFF\n{len(cloud)} 0 0\n" + "".join(f"{x} {y} {z}\n" for x, y, z in cloud))

  write(_cloud(3))  # A triangle's corners without the triangle: not 300 points.
  with _raises_naming(path, "no faces and only 3 vertices"):
    point_files.read_points(path, N, seed=0)
  cloud = _cloud(N + 20)
  write(cloud)
  points = point_files.read_points(path, N, seed=0)
  _assert_rows_of(points, cloud)
  assert len(np.unique(points, axis=0)) == N


@pytest.mark.parametrize("ext", [".npy", ".ply", ".xyz"])
def test_fewer_than_three_distinct_points_are_refused(tmp_path, ext):
  path = str(tmp_path / f"c{ext}")
  cloud = np.repeat(_cloud(2), 50, axis=0)  # 100 rows, 2 distinct points
  if ext == ".npy":
    np.save(path, cloud)
  elif ext == ".ply":
    trimesh.PointCloud(cloud).export(path)
  else:
    np.savetxt(path, cloud)
  with _raises_naming(path, "only 2 distinct point"):
    point_files.read_points(path, N, seed=0)
  cloud[-1] = [9.0, 9.0, 9.0]  # A third point: a (tiny) cloud, repeated up to N.
  np.save(path, cloud) if ext == ".npy" else (
      trimesh.PointCloud(cloud).export(path) if ext == ".ply" else np.savetxt(path, cloud))
  assert point_files.read_points(path, N, seed=0).shape == (N, 3)
