"""Pixel centres exactly on edges: the top-left rule covers them once, PyTorch3D's rule never.

Vertices sit on the grid of multiples of 1/S in NDC, where pixel centres are
the odd multiples: every edge function is then exact in float32, so centres
lie exactly on edges. The reference is integer arithmetic on coordinates
scaled by S (pixel centres at odd integers), worked independently of the
renderer: orientation tests for the triangles and a crossing-number test
with boundary detection for the fan's outline.
"""

import jax
import numpy as np
import pytest
import trimesh

from renderers import cameras
from renderers import mesh as mesh_renderer
from renderers import mesh_batch
from renderers.errors import InputError
from tests.renderers import mesh_fixtures

S = 16
FRONT = [(0, 0)]  # view axes exactly (-1, 0, 0), (0, 1, 0), (0, 0, -1)
# fov 90: cot(45 deg) rounds to exactly 1 in float32, so NDC = view xy / z.
PERSPECTIVE = cameras.PerspectiveCamera(fov=90.0)
PERSPECTIVE_DISTANCE = 4.0
CAMERAS = {"orthographic": (cameras.ORTHOGRAPHIC, 1.0),
           "perspective": (PERSPECTIVE, PERSPECTIVE_DISTANCE)}
RULES = ("top_left", "pytorch3d")
NUM_FANS = 4
FAN_RIM = 7  # rim vertices per fan: 7 triangles (fans are padded to 8 meshes' worth of faces)


def _centres():
  """int64[S, S] x and y of each pixel centre, in units of 1/S (odd integers)."""
  c = S - 1 - 2 * np.arange(S)  # NDC 1 - (2i + 1) / S, times S
  y, x = np.meshgrid(c, c, indexing="ij")
  return x, y


def _cross(ax, ay, bx, by, px, py):
  """Exact integer E(p; a, b) for int64 inputs."""
  return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def _on_segment(a, b, px, py):
  """bool[S, S]: the centre lies on the closed segment a-b (integer grid units)."""
  on_line = _cross(a[0], a[1], b[0], b[1], px, py) == 0
  within = ((px - a[0]) * (px - b[0]) <= 0) & ((py - a[1]) * (py - b[1]) <= 0)
  return on_line & within


def _polygon_inside(polygon, px, py):
  """(strictly inside, on the boundary) bool[S, S] of a simple polygon, by crossing number."""
  boundary = np.zeros(px.shape, bool)
  crossings = np.zeros(px.shape, int)
  for a, b in zip(polygon, np.roll(polygon, -1, axis=0)):
    boundary |= _on_segment(a, b, px, py)
    # Half-open in y so a ray through a vertex counts it once; the ray runs to +x.
    straddles = (a[1] > py) != (b[1] > py)
    side = _cross(a[0], a[1], b[0], b[1], px, py) * np.sign(b[1] - a[1])
    crossings += straddles & (side < 0)
  return (crossings % 2 == 1) & ~boundary, boundary


def _random_fan(rng):
  """(vertices int64[R + 1, 2] in units of 1/S, faces int[R, 3]): a closed fan of
  random size around a pixel centre, as a cylinder's cap seen end-on: every
  vertex on a pixel centre (so the centre vertex lies on all R inner edges),
  the rim in strictly increasing angle, every triangle of positive area."""
  while True:
    centre = 2 * rng.integers(-3, 3, 2) + 1
    angles = np.sort(rng.uniform(0, 2 * np.pi, FAN_RIM))
    radius = rng.uniform(2, 7, FAN_RIM)
    steps = np.round(radius[:, None] * np.stack([np.cos(angles), np.sin(angles)], -1))
    rim = np.clip(centre + 2 * steps.astype(np.int64), -S + 1, S - 1)
    turns = np.unwrap(np.arctan2(rim[:, 1] - centre[1], rim[:, 0] - centre[0]))
    nxt = np.roll(rim, -1, axis=0)
    # Twice the counter-clockwise area of (centre, rim i, rim i + 1): E is a
    # cross product with the opposite sign.
    areas = -_cross(centre[0], centre[1], rim[:, 0], rim[:, 1], nxt[:, 0], nxt[:, 1])
    gaps = np.diff(np.append(turns, turns[0] + 2 * np.pi))
    if np.all(areas > 0) and np.all(gaps > 0) and np.all(gaps < np.pi):
      faces = [[0, 1 + i, 1 + (i + 1) % FAN_RIM] for i in range(FAN_RIM)]
      return np.concatenate([centre[None], rim]), np.array(faces)


def _split_quad(half, anti, windings):
  """A square of side 2 * half (grid units, even) split along a diagonal through
  pixel centres; windings: +1 counter-clockwise, -1 clockwise per triangle."""
  corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half]], np.int64)
  faces = [[0, 1, 3], [1, 2, 3]] if anti else [[0, 1, 2], [0, 2, 3]]
  faces = [f if w > 0 else f[::-1] for f, w in zip(faces, windings)]
  return corners, np.array(faces)


def _world(grid_xy, camera_name, rng):
  """World positions float32[N, 3] whose front view puts each vertex at NDC grid_xy / S."""
  ndc = grid_xy / S
  if camera_name == "orthographic":
    depth = np.zeros(len(ndc))  # view z = 1 - world z
    view_z = 1.0 - depth
  else:  # NDC = view xy / view z, exact for power-of-two depths
    view_z = rng.choice([1.0, 2.0, 4.0, 8.0], len(ndc))
    depth = PERSPECTIVE_DISTANCE - view_z
  view_xy = ndc * view_z[:, None]
  return np.stack([-view_xy[:, 0], view_xy[:, 1], depth], -1).astype(np.float32)


def _cover_counts(grid_xy, faces, camera_name, edge_rule, rng):
  """int[S, S] how many faces cover each centre (each face rendered alone), and
  the whole mesh's face image int[S, S]."""
  vertices = _world(grid_xy, camera_name, rng)
  alone = [mesh_batch.from_arrays(vertices, [f]) for f in faces]
  whole = mesh_batch.from_arrays(vertices, faces)
  camera, distance = CAMERAS[camera_name]
  batch = mesh_batch.pack(alone + [whole], num_faces=8, batch_size=16)
  out = jax.device_get(mesh_renderer.render(batch, FRONT, image_size=S, camera=camera,
                                            distance=distance, edge_rule=edge_rule))
  return out.silhouette[:len(faces), 0].sum(0), out.face[len(faces), 0], out.silhouette[:len(faces), 0]


def _shared_edge_centres(grid_xy, faces, px, py):
  """bool[S, S]: centres on an edge that two of the faces share."""
  edges = {}
  for f in faces:
    for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
      edges[tuple(sorted((a, b)))] = edges.get(tuple(sorted((a, b))), 0) + 1
  on = np.zeros(px.shape, bool)
  for (a, b), count in edges.items():
    if count == 2:
      on |= _on_segment(grid_xy[a], grid_xy[b], px, py)
  return on


def _meshes(rng):
  """(name, grid vertices, faces): split squares in every diagonal and winding, random fans."""
  quads = [(f"quad half={h} anti={a} windings={w}", *_split_quad(h, a, w))
           for h, a, w in ((6, False, (1, 1)), (10, True, (-1, -1)), (14, False, (1, -1)),
                           (8, True, (-1, 1)))]
  fans = []
  for k in range(NUM_FANS):
    grid_xy, faces = _random_fan(rng)
    flip = rng.random(len(faces)) < 0.5  # windings at random: back faces are drawn too
    faces = np.where(flip[:, None], faces[:, ::-1], faces)
    fans.append((f"fan {k}", grid_xy, faces))
  return quads + fans


def _outline(name, grid_xy):
  if name.startswith("quad"):
    return grid_xy
  return grid_xy[1:]  # a fan's rim, in angular order


@pytest.mark.parametrize("camera_name", list(CAMERAS))
def test_top_left_covers_every_centre_of_the_union_exactly_once(camera_name):
  rng = np.random.default_rng(7)
  px, py = _centres()
  for name, grid_xy, faces in _meshes(rng):
    inside, boundary = _polygon_inside(_outline(name, grid_xy), px, py)
    shared = _shared_edge_centres(grid_xy, faces, px, py)
    assert (shared & inside).any(), name  # the mesh does put centres on its inner edges
    counts, face, alone = _cover_counts(grid_xy, faces, camera_name, "top_left", rng)
    np.testing.assert_array_equal(counts[inside], 1, err_msg=f"{name} {camera_name}")
    assert np.all(counts[~inside & ~boundary] == 0), (name, camera_name)
    assert np.all(counts[boundary] <= 1), (name, camera_name)
    # The whole mesh names the one face that covers each centre.
    expected = np.where(counts == 1, np.argmax(alone, axis=0), -1)
    np.testing.assert_array_equal(face, expected, err_msg=f"{name} {camera_name}")


@pytest.mark.parametrize("camera_name", list(CAMERAS))
def test_pytorch3d_rule_leaves_centres_on_shared_edges_uncovered(camera_name):
  rng = np.random.default_rng(7)
  px, py = _centres()
  for name, grid_xy, faces in _meshes(rng):
    inside, _ = _polygon_inside(_outline(name, grid_xy), px, py)
    shared = _shared_edge_centres(grid_xy, faces, px, py) & inside
    counts, face, _ = _cover_counts(grid_xy, faces, camera_name, "pytorch3d", rng)
    # PyTorch3D's quirk: a background line along the inner edges, nothing else missing.
    assert shared.any(), name
    np.testing.assert_array_equal(counts[shared], 0, err_msg=f"{name} {camera_name}")
    np.testing.assert_array_equal(counts[inside & ~shared], 1, err_msg=f"{name} {camera_name}")
    assert np.all(face[shared] == -1), name


def test_top_left_rule_takes_the_top_and_left_outline_edges():
  # A square whose outline runs through pixel centres: image rows r0..r1 and
  # columns c0..c1 of centres lie on or inside it; the left column and the top
  # row are drawn, the right column and the bottom row are not.
  rng = np.random.default_rng(3)
  for _ in range(4):
    c0, r0 = rng.integers(0, S // 2, 2)
    c1, r1 = rng.integers(S // 2 + 1, S, 2)
    # Column j's centre is NDC x = (S - 1 - 2j) / S, row i's y = (S - 1 - 2i) / S.
    x0, x1 = S - 1 - 2 * c0, S - 1 - 2 * c1  # left, right edge (x falls to the right)
    y0, y1 = S - 1 - 2 * r0, S - 1 - 2 * r1  # top, bottom edge
    grid_xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.int64)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    for camera_name in CAMERAS:
      counts, _, _ = _cover_counts(grid_xy, faces, camera_name, "top_left", rng)
      expected = np.zeros((S, S), int)
      expected[r0:r1, c0:c1] = 1
      np.testing.assert_array_equal(counts, expected, err_msg=f"{camera_name} {(r0, r1, c0, c1)}")
      strict, _, _ = _cover_counts(grid_xy, faces, camera_name, "pytorch3d", rng)
      expected[r0, :] = expected[:, c0] = 0  # the outline itself
      px, py = _centres()
      expected[_on_segment(grid_xy[0], grid_xy[2], px, py)] = 0  # and the diagonal
      np.testing.assert_array_equal(strict, expected, err_msg=camera_name)


def test_rules_differ_only_at_centres_on_an_edge():
  """The fixture shapes, turned at random, and an axis-aligned unit cube whose
  front face's diagonal runs through pixel centres in the front view: the two
  rules name the same face wherever no pixel centre lies within rounding of
  an edge of either face."""
  box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
  shapes = mesh_fixtures.make_shapes(seed=4) + [
      mesh_batch.from_arrays(box.vertices, box.faces, name="cube")]
  views = cameras.VIEWS_PRETRAIN[:5]
  size = 64  # a power of two: pixel centres exact in float32
  out = {rule: jax.device_get(mesh_renderer.render(mesh_batch.pack(shapes), views, image_size=size,
                                                   edge_rule=rule)) for rule in RULES}
  a, b = out["top_left"], out["pytorch3d"]
  differ = a.face != b.face
  # The 32 centres on the cube's front diagonal (the back face shows through
  # there under PyTorch3D's rule); elsewhere nothing lies exactly on an edge.
  assert differ[-1, 0].sum() == 32
  # In exact arithmetic the strict rule covers a subset of what the top-left
  # rule covers; here no centre is within rounding of an edge without being on it.
  assert not np.any(b.silhouette & ~a.silhouette)
  same = ~differ
  np.testing.assert_array_equal(a.depth[same], b.depth[same])
  np.testing.assert_array_equal(a.rgb[same], b.rgb[same])
  centres = cameras.pixel_ndc(np.arange(size), size)
  for bi, vi, row, col in zip(*np.nonzero(differ)):
    tri = np.asarray(cameras.project(shapes[bi].vertices[None].astype(np.float32),
                                     np.asarray([views[vi]], np.float32)))[0, 0]
    p = np.array([centres[col], centres[row]], np.float64)
    gaps = []
    for f in (a.face[bi, vi, row, col], b.face[bi, vi, row, col]):
      if f >= 0:
        corners = tri[shapes[bi].faces[f], :2].astype(np.float64)
        gaps.append(min(_distance_to_segment(p, corners[i], corners[(i + 1) % 3]) for i in range(3)))
    # The face that gained or lost the centre has an edge through it.
    assert gaps and min(gaps) < 1e-5, (shapes[bi].name, vi, row, col, gaps)


def _distance_to_segment(p, a, b):
  t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0.0, 1.0)
  return float(np.linalg.norm(p - (a + t * (b - a))))


def test_unknown_edge_rule_is_named():
  batch = mesh_batch.pack([mesh_batch.from_arrays([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])])
  for call in (mesh_renderer.render, mesh_renderer.rasterize):
    with pytest.raises(InputError, match=r"edge_rule must be one of \('top_left', 'pytorch3d'\), got 'topleft'"):
      call(batch, FRONT, image_size=8, edge_rule="topleft")
