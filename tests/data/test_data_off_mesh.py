"""The .off reader and surface sampling, on real-format files."""

import re

import data_fixtures as fx
import numpy as np
import pytest

from clip2point_jax.data import checks
from clip2point_jax.data import mesh
from clip2point_jax.data import off
from clip2point_jax.errors import UserError


def _raises_naming(path):
  return pytest.raises(UserError, match=re.escape(str(path)))


@pytest.mark.parametrize("malformed", [False, True])
def test_reads_box_with_quads_and_both_header_forms(tmp_path, malformed):
  rng = np.random.default_rng(0)
  vertices, quads, lo, hi = fx.random_box(rng)
  path = fx.write_off(str(tmp_path / "box.off"), vertices, quads, malformed)
  got_vertices, faces = off.read_off(path)
  np.testing.assert_allclose(got_vertices, vertices, atol=1e-6)
  assert faces.shape == (12, 3)  # Six quads, two triangles each.
  assert mesh.triangle_areas(got_vertices, faces).sum() == pytest.approx(
      2 * np.sum((hi - lo)[[0, 0, 1]] * (hi - lo)[[1, 2, 2]]), rel=1e-5)


def test_fan_triangulates_a_pentagon_and_drops_edges():
  tris = mesh.fan_triangulate([[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]])
  np.testing.assert_array_equal(
      tris, [[0, 1, 2], [0, 2, 3], [0, 3, 4], [7, 8, 9]])


def test_comments_colours_and_blank_lines(tmp_path):
  path = tmp_path / "c.off"
  path.write_text("# made by hand\nOFF\n\n4 2 0\n0 0 0 255 0 0\n1 0 0 1 2 3\n"
                  "0 1 0 1 2 3\n1 1 0 0 0 0 # last\n3 0 1 2 10 10 10\n"
                  "3 1 3 2\n")
  vertices, faces = off.read_off(str(path))
  assert vertices.shape == (4, 3) and faces.tolist() == [[0, 1, 2], [1, 3, 2]]


def test_samples_lie_on_the_surface_and_are_seeded(tmp_path):
  rng = np.random.default_rng(1)
  vertices, quads, lo, hi = fx.random_box(rng)
  path = fx.write_off(str(tmp_path / "box.off"), vertices, quads, True)
  a = off.sample_off(path, 4096, checks.shape_rng(0, "box"))
  b = off.sample_off(path, 4096, checks.shape_rng(0, "box"))
  c = off.sample_off(path, 4096, checks.shape_rng(1, "box"))
  assert a.shape == (4096, 3) and a.dtype == np.float32
  assert fx.on_box_surface(a, lo, hi).all()
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


def test_sampling_is_area_weighted():
  # Two triangles, areas 1 and 3, far apart along x.
  vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0],
                       [10, 0, 0], [13, 0, 0], [10, 2, 0]], float)
  points = mesh.sample_surface(vertices, np.array([[0, 1, 2], [3, 4, 5]]),
                               20000, np.random.default_rng(0))
  assert np.mean(points[:, 0] > 5) == pytest.approx(0.75, abs=0.015)
  # Uniform inside the triangle: half the points of the first lie below
  # y = 2 - sqrt(2) (where the triangle's area splits in half).
  first = points[points[:, 0] < 5]
  assert np.mean(first[:, 1] < 2 - np.sqrt(2)) == pytest.approx(0.5, abs=0.03)


BAD_FILES = {  # name: (content, a word the message must hold)
    "empty": ("", "not an OFF"),
    "not_off": ("PLY\n3 1 0\n", "not an OFF"),
    "bad_counts": ("OFF\nthree 1 0\n", "counts"),
    "truncated": ("OFF\n4 2 0\n0 0 0\n1 0 0\n0 1 0\n1 1 0\n3 0 1 2\n",
                  "truncated"),
    "corrupt_vertex": ("OFF\n3 1 0\n0 0 0\n1 zero 0\n0 1 0\n3 0 1 2\n",
                       "not numbers"),
    "short_face": ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n4 0 1 2\n",
                   "fewer than"),
    "index_out_of_range": ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n",
                           "vertex 7"),
    "zero_faces": ("OFF\n3 0 0\n0 0 0\n1 0 0\n0 1 0\n", "no faces"),
    "only_edges": ("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n2 0 1\n", "no faces"),
    "nan": ("OFF\n3 1 0\n0 0 0\nnan 0 0\n0 1 0\n3 0 1 2\n", "NaN"),
    "inf": ("OFF3 1 0\n0 0 0\n1 inf 0\n0 1 0\n3 0 1 2\n", "NaN or inf"),
    "zero_area": ("OFF\n3 1 0\n0 0 0\n1 1 1\n2 2 2\n3 0 1 2\n", "zero total area"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_one_user_error_naming_the_file(tmp_path, case):
  content, word = BAD_FILES[case]
  path = tmp_path / f"{case}.off"
  path.write_text(content)
  with _raises_naming(path) as e:
    off.sample_off(str(path), 16, np.random.default_rng(0))
  assert word in str(e.value)


def test_binary_junk_and_missing_file(tmp_path):
  junk = tmp_path / "junk.off"
  junk.write_bytes(np.random.default_rng(0).bytes(300))
  with _raises_naming(junk):
    off.read_off(str(junk))
  with _raises_naming(tmp_path / "missing.off"):
    off.read_off(str(tmp_path / "missing.off"))
