"""The mesh renderer against trimesh ray casting, closed-form lighting and the point projector."""

import jax
import numpy as np
import pytest
from scipy import ndimage

from renderers import cameras
from renderers import mesh as mesh_renderer
from renderers import mesh_batch
from renderers import points as projector
from tests.renderers import mesh_fixtures

SIZE = 48
VIEWS = cameras.VIEWS_PRETRAIN
# A view along an axis and a corner view per shape keep the ray casting quick.
CHECKED_VIEWS = (0, 4)
PERSPECTIVE = cameras.PerspectiveCamera(fov=50.0)
PERSPECTIVE_DISTANCE = 3.0


@pytest.fixture(scope="module")
def shapes():
  return mesh_fixtures.make_shapes()


@pytest.fixture(scope="module")
def ortho(shapes):
  return jax.device_get(mesh_renderer.render(mesh_batch.pack(shapes), VIEWS, image_size=SIZE))


@pytest.fixture(scope="module")
def perspective(shapes):
  return jax.device_get(mesh_renderer.render(
      mesh_batch.pack(shapes), VIEWS, image_size=SIZE, camera=PERSPECTIVE,
      distance=PERSPECTIVE_DISTANCE))


@pytest.mark.parametrize("camera_name", ["orthographic", "perspective"])
def test_depth_and_silhouette_match_ray_casting(request, shapes, camera_name):
  out = request.getfixturevalue("ortho" if camera_name == "orthographic" else "perspective")
  camera, distance = ((cameras.ORTHOGRAPHIC, 1.0) if camera_name == "orthographic"
                      else (PERSPECTIVE, PERSPECTIVE_DISTANCE))
  for b, mesh in enumerate(shapes):
    size_of_object = np.ptp(mesh.vertices, axis=0).max()
    for k in CHECKED_VIEWS:
      reference = mesh_fixtures.raycast_depth(mesh, VIEWS[k], SIZE, camera, distance)
      ours, hit = out.depth[b, k], np.isfinite(reference)
      sil = out.silhouette[b, k]
      assert hit.sum() > 100, (mesh.name, k)
      iou = (sil & hit).sum() / (sil | hit).sum()
      assert iou >= 0.99, (mesh.name, camera_name, k, iou)
      error = np.median(np.abs(ours[sil & hit] - reference[sil & hit]))
      assert error < 0.005 * size_of_object, (mesh.name, camera_name, k, error)


def test_background_is_exactly_white_and_marked(ortho):
  background = ~ortho.silhouette
  assert background.any() and ortho.silhouette.any()
  assert np.all(ortho.rgb[background] == 1.0) and np.all(ortho.rgb8[background] == 255)
  assert np.all(np.isinf(ortho.depth[background])) and np.all(ortho.face[background] == -1)
  assert np.all(np.isfinite(ortho.depth[ortho.silhouette]))
  np.testing.assert_array_equal(ortho.rgb8, np.round(ortho.rgb * 255).astype(np.uint8))


def test_face_index_names_the_face_under_the_pixel(shapes, ortho):
  # Front view (0, 0) of the box: the pixel's ray through the named face hits it.
  b, k = 1, 0
  mesh = shapes[b]
  face = ortho.face[b, k]
  assert face.max() < mesh.num_faces and face[ortho.silhouette[b, k]].min() >= 0
  reference = mesh_fixtures.raycast_depth(mesh, VIEWS[k], SIZE, cameras.ORTHOGRAPHIC, 1.0)
  # Depth of the named face's plane at every covered pixel equals the ray hit.
  rows, cols = np.nonzero(ortho.silhouette[b, k] & np.isfinite(reference))
  tri = mesh.vertices[mesh.faces[face[rows, cols]]].astype(np.float64)  # world
  axes = np.asarray(cameras.camera_axes(*VIEWS[k]), np.float64)
  tri = tri @ axes.T + [0, 0, 1.0]
  normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
  x = 1 - (2 * cols + 1) / SIZE
  y = 1 - (2 * rows + 1) / SIZE
  z = tri[:, 0, 2] - (normal[:, 0] * (x - tri[:, 0, 0]) + normal[:, 1] * (y - tri[:, 0, 1])) / normal[:, 2]
  np.testing.assert_allclose(z, reference[rows, cols], atol=1e-5)


def test_sphere_under_headlight_follows_the_cosine_law(ortho):
  # The unit sphere at distance 1, lit from the camera: at pixel (x, y) the
  # surface point is p = (x, y, 1 - c) in view space with c = sqrt(1 - x^2 - y^2)
  # = cos(angle to the light), its normal n = (x, y, -c), the light l = (0, 0, -1).
  rgb = ortho.rgb[0, 0]
  centres = 1 - (2 * np.arange(SIZE) + 1) / SIZE
  y, x = np.meshgrid(centres, centres, indexing="ij")
  rho2 = x**2 + y**2
  inner = rho2 < 0.85**2
  c = np.sqrt(np.clip(1 - rho2, 0, 1))
  p = np.stack([x, y, 1 - c], -1)
  n = np.stack([x, y, -c], -1)
  reflect = np.array([0, 0, 1.0]) + 2 * c[..., None] * n
  to_camera = -p / np.linalg.norm(p, axis=-1, keepdims=True)
  specular = np.maximum((to_camera * reflect).sum(-1), 0) ** 64
  grey = mesh_batch.DEFAULT_COLOR[0]
  expected = (0.5 + 0.3 * c) * grey + 0.2 * specular
  np.testing.assert_allclose(rgb[inner][:, 0], expected[inner], atol=0.01)
  np.testing.assert_allclose(rgb[..., 0], rgb[..., 2])  # grey stays grey
  # Brightest at the centre, darker outwards.
  lit = rgb[..., 0][inner]
  assert lit.max() == pytest.approx(rgb[SIZE // 2 - 1:SIZE // 2 + 1, SIZE // 2 - 1:SIZE // 2 + 1, 0].max())
  rings = [lit[(rho2[inner] >= a) & (rho2[inner] < a + 0.1)].mean() for a in (0.0, 0.2, 0.4, 0.6)]
  assert rings == sorted(rings, reverse=True)


def test_rgb_view_matches_point_projector_silhouette(shapes, ortho):
  rng = np.random.default_rng(1)
  radius = 0.05
  reach = int(np.ceil(radius * SIZE / 2)) + 1
  for b, mesh in enumerate(shapes):
    points = mesh_batch_points(mesh, 20000, rng)
    depth = np.asarray(projector.render_depth(points[None], VIEWS, image_size=SIZE,
                                              radius=radius))[0]
    for k in range(len(VIEWS)):
      from_points = depth[k] < 1.0
      from_mesh = ortho.silhouette[b, k]
      grow = lambda m: ndimage.binary_dilation(m, iterations=reach)
      assert not np.any(from_points & ~grow(from_mesh)), (mesh.name, k)
      assert not np.any(from_mesh & ~from_points), (mesh.name, k)


def mesh_batch_points(mesh, count, rng):
  areas = mesh_batch.triangle_areas(mesh.vertices, mesh.faces)
  face = rng.choice(len(areas), count, p=areas / areas.sum())
  r1, r2 = np.sqrt(rng.random((2, count, 1)))[0], rng.random((count, 1))
  tri = mesh.vertices[mesh.faces[face]]
  return ((1 - r1) * tri[:, 0] + r1 * (1 - r2) * tri[:, 1] + r1 * r2 * tri[:, 2]).astype(np.float32)


def test_work_split_never_changes_the_images(shapes, ortho):
  # Odd block sides, a tiny budget (many loop steps) and all images at once.
  split = jax.device_get(mesh_renderer.render(mesh_batch.pack(shapes), VIEWS, image_size=SIZE,
                                              tiers=(3, 7), budget=100, image_group=0))
  for field in ("rgb", "depth", "face"):
    np.testing.assert_array_equal(getattr(split, field), getattr(ortho, field))


def test_padding_and_batch_neighbours_change_nothing(shapes, ortho):
  # Same padded shape as the fixture's batch, so no new compilation.
  padded = mesh_batch.pack([shapes[2], shapes[0], shapes[3]], num_faces=2048, batch_size=4)
  out = jax.device_get(mesh_renderer.render(padded, VIEWS, image_size=SIZE))
  for field in ("rgb", "depth", "face"):
    np.testing.assert_array_equal(getattr(out, field)[1], getattr(ortho, field)[0])
    np.testing.assert_array_equal(getattr(out, field)[0], getattr(ortho, field)[2])
  assert not out.silhouette[3].any()
