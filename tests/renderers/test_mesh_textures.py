"""Texels: UV textures through the atlas, material and vertex colours, atlas packing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

from renderers import mesh as mesh_renderer
from renderers import mesh_batch

SIZE = 64
# Ambient light only, at full strength: every pixel shows its texel unchanged.
FLAT = mesh_renderer.Materials(ambient=(2.0, 2.0, 2.0), diffuse=(0.0, 0.0, 0.0),
                               specular=(0.0, 0.0, 0.0))
QUADS = {"a": (-0.8, -0.05, -0.1, 0.7), "b": (0.1, 0.85, 0.05, 0.6)}  # x0, x1, y0, y1


def _quad(x0, x1, y0, y1):
  vertices = [[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]]
  return vertices, [[0, 1, 2], [0, 2, 3]], [[0, 0], [1, 0], [1, 1], [0, 1]]


def _scene(rng):
  """Two textured quads and a triangle with a material colour, facing +z."""
  vertices, faces, uvs, textures, colors = [], [], [], [], []
  for t, key in enumerate(QUADS):
    v, f, uv = _quad(*QUADS[key])
    faces += [[i + len(vertices) for i in tri] for tri in f]
    uvs += [[uv[i] for i in tri] for tri in f]
    textures += [t, t]
    vertices += v
  faces.append([len(vertices), len(vertices) + 1, len(vertices) + 2])
  vertices += [[-0.6, -0.8, 0], [0.6, -0.8, 0], [0.0, -0.3, 0]]
  uvs.append([[0, 0]] * 3)
  textures.append(-1)
  kd = np.array([0.2, 0.6, 0.9], np.float32)
  colors = np.concatenate([np.ones((4, 3, 3), np.float32), np.broadcast_to(kd, (1, 3, 3))])
  images = (rng.integers(0, 256, (5, 7, 3), dtype=np.uint8), rng.integers(0, 256, (3, 4, 3), dtype=np.uint8))
  mesh = mesh_batch.Mesh(vertices=np.array(vertices, np.float32), faces=np.array(faces, np.int32),
                         face_colors=colors, face_uvs=np.array(uvs, np.float32),
                         face_textures=np.array(textures, np.int32), textures=images)
  return mesh, images, kd


def _vertex_coloured_quad(rng):
  v, f, _ = _quad(-0.7, 0.7, -0.7, 0.7)
  return mesh_batch.from_arrays(v, f, vertex_colors=rng.random((4, 3)))


@pytest.fixture(scope="module")
def front():
  rng = np.random.default_rng(0)
  scene, images, kd = _scene(rng)
  quad = _vertex_coloured_quad(rng)
  # The scene is already inside the unit ball: render it as it is.
  out = jax.device_get(mesh_renderer.render(mesh_batch.pack([scene, quad], atlas_size=16),
                                            [(0, 0)], image_size=SIZE, materials=FLAT))
  return out, images, kd, quad


def _world_xy():
  """World x, y at each pixel centre of the front view (NDC x = -world x)."""
  centres = 1 - (2 * np.arange(SIZE) + 1) / SIZE
  ndc_y, ndc_x = np.meshgrid(centres, centres, indexing="ij")
  return -ndc_x, ndc_y


def test_textured_quads_show_their_textures_bilinearly(front):
  out, images, kd, _ = front
  rgb, face = out.rgb[0, 0], out.face[0, 0]
  x, y = _world_xy()
  for t, key in enumerate(QUADS):
    x0, x1, y0, y1 = QUADS[key]
    covered = (face == 2 * t) | (face == 2 * t + 1)
    assert covered.sum() > 50
    u, v = (x[covered] - x0) / (x1 - x0), (y[covered] - y0) / (y1 - y0)
    h, w = images[t].shape[:2]
    # TexturesUV with align_corners=True: u=0/1 are the first/last column centres, v=1 the top row.
    coords = [(1 - v) * (h - 1), u * (w - 1)]
    expected = np.stack([ndimage.map_coordinates(images[t][..., c] / 255.0, coords, order=1,
                                                 mode="nearest") for c in range(3)], -1)
    np.testing.assert_allclose(rgb[covered], expected, atol=2e-5)
  # Corner texels appear as they are near the quad's corners.
  covered = (face == 0) | (face == 1)
  rows, cols = np.nonzero(covered)
  top_left = (rows.min(), cols.min())
  np.testing.assert_allclose(rgb[top_left], images[0][0, 0] / 255.0, atol=0.25)


def test_material_colour_and_vertex_colours(front):
  out, _, kd, quad = front
  triangle = out.face[0, 0] == 4
  assert triangle.sum() > 20
  np.testing.assert_allclose(out.rgb[0, 0][triangle], np.broadcast_to(kd, (triangle.sum(), 3)),
                             atol=1e-6)
  # The vertex-coloured quad: colours interpolate barycentrically over each triangle.
  x, y = _world_xy()
  face, rgb = out.face[1, 0], out.rgb[1, 0]
  colors = quad.face_colors  # [2, 3, 3] per corner
  for f in range(2):
    tri = quad.vertices[quad.faces[f]][:, :2].astype(np.float64)
    sel = face == f
    p = np.stack([x[sel], y[sel]], -1)
    t = np.linalg.solve(np.stack([tri[0] - tri[2], tri[1] - tri[2]], -1), (p - tri[2]).T).T
    bary = np.concatenate([t, 1 - t.sum(1, keepdims=True)], 1)
    np.testing.assert_allclose(rgb[sel], bary @ colors[f], atol=1e-5)


def test_pack_atlas_copies_fitting_textures_and_shrinks_others():
  rng = np.random.default_rng(3)
  small = [rng.integers(0, 256, s + (3,), dtype=np.uint8) for s in [(5, 7), (3, 4), (8, 2)]]
  atlas, rects = mesh_batch.pack_atlas(small, 16)
  taken = np.zeros((16, 16), int)
  for image, (r, c, h, w) in zip(small, rects):
    assert (h, w) == image.shape[:2]
    np.testing.assert_array_equal(atlas[r:r + h, c:c + w], image)
    taken[r:r + h, c:c + w] += 1
  assert taken.max() == 1  # no overlaps
  big = [np.full((40, 30, 3), 200, np.uint8), np.full((10, 50, 3), 50, np.uint8)]
  atlas, rects = mesh_batch.pack_atlas(big, 16)
  for image, (r, c, h, w) in zip(big, rects):
    assert 0 < h <= 16 and 0 < w <= 16 and r + h <= 16 and c + w <= 16
    np.testing.assert_allclose(atlas[r:r + h, c:c + w].mean(), image.mean(), atol=1)


@pytest.mark.parametrize("wrap, uv, expected", [
    ("repeat", (1.25, -0.5), (0.25, 0.5)),
    ("clamp", (1.25, -0.5), (1.0, 0.0)),
    ("repeat", (0.5, 0.5), (0.5, 0.5)),
])
def test_uv_wrapping(wrap, uv, expected):
  texture = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
  atlas = np.zeros((1, 8, 8, 3), np.uint8)
  atlas[0, 4:6, 2:5] = texture
  rect = np.array([[[4, 2, 2, 3]]], np.int32)
  got = np.asarray(mesh_renderer.sample_atlas(jnp.asarray(atlas), jnp.asarray(rect),
                                              jnp.asarray([[uv]], jnp.float32), wrap))[0, 0]
  u, v = expected
  want = [ndimage.map_coordinates(texture[..., c] / 255.0, [[(1 - v) * 1], [u * 2]], order=1)[0]
          for c in range(3)]
  np.testing.assert_allclose(got, want, atol=1e-6)
