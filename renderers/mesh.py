"""Triangle meshes to RGB, depth, silhouette and face-index images, in pure JAX.

It reproduces PyTorch3D's hard pipeline (`MeshRasterizer` with blur_radius 0
and faces_per_pixel 1, then `HardPhongShader`), with the same float32
formulas, batched over meshes and views and jitted as a whole:

Rasterisation (`rasterize_meshes.py` and its CUDA kernel):
* Vertices go through `cameras.project`, so view k of a mesh shows exactly the
  pose of view k of the point projector: NDC x, y and view-space depth z.
* Barycentric coordinates of the pixel centre p:
    w0 = E(p; v1, v2) / A,  w1 = E(p; v2, v0) / A,  w2 = E(p; v0, v1) / A,
    A = E(v2; v0, v1) + 1e-8,  E(p; a, b) = (p.x - a.x)(b.y - a.y) - (p.y - a.y)(b.x - a.x).
  PyTorch3D's face covers p when all three are > 0 (`edge_rule="pytorch3d"`),
  so a centre exactly on an edge shared by two faces belongs to neither (a
  background line across, say, a cylinder's cap); see `edge_rule` below.
  With the perspective camera they are made perspective-correct,
    w_i <- w_i z_j z_k / max(w0 z1 z2 + z0 w1 z2 + z0 z1 w2, 1e-8),
  as PyTorch3D does for perspective cameras (not for orthographic ones).
* Depth is pz = w0 z0 + w1 z1 + w2 z2; pixels with pz < 0 are skipped, the
  nearest face wins and equal depths go to the lower face index. Faces whose
  |E(v0; v1, v2)| <= 1e-8 (zero area on screen) are skipped; back faces are
  not culled.
* Faces with a vertex behind the camera: see `strict_near_cull` below.

Shading (`shading.py`, `lighting.py`, `materials.py`, `blending.py`):
* Positions and normals are interpolated from the face's vertices with the
  pixel's barycentrics; normals are renormalised (eps 1e-6), never flipped.
* One light, Phong per pixel (the default `Headlight` is a directional light
  from each view's camera):
    colour = (ka * la + kd * ld * relu(n.l)) * texel
             + ks * ls * (relu(v.r) * [n.l > 0]) ** shininess,
  l the unit direction to the light (towards a point light, or a
  directional light's direction), v the unit direction to the camera,
  r = -l + 2 (n.l) n; materials default to white with shininess 64 and lights
  to PyTorch3D's white (ambient 0.5, diffuse 0.3, specular 0.2).
* `hard_rgb_blend`: the background colour (white by default) where no face
  covers the pixel.

Texels (`textures.py`): each face corner has an RGB colour, interpolated over
the face (TexturesVertex; a material's diffuse colour is the same colour on
all three corners). A textured face instead samples its rectangle of the
mesh's texture atlas bilinearly at its interpolated UV, as TexturesUV samples
with align_corners=True and padding_mode="border": u = 0 and u = 1 are the
centres of the first and last texel columns, v = 1 is the top row, and
samples never read outside the face's own texture.

Differences from PyTorch3D, all deliberate:
* Colours are clipped to [0, 1] (PyTorch3D leaves them unclipped; with the
  default white lights and materials they never exceed 1 anyway).
* By default a face is skipped only when all its vertices are behind the
  camera (z < 0), pixels with pz < 0 being skipped as above. Current PyTorch3D
  also drops every face with a vertex at z < 1e-8, which at CLIP2Point's
  distance 1 punches holes wherever a unit-normalised mesh touches the
  camera's plane (the point projector keeps such points). `strict_near_cull`
  restores PyTorch3D's rule. With the perspective camera a vertex at z <= 0
  has no NDC position, so such faces are always skipped.
* Coverage is watertight by default (`edge_rule="top_left"`, the rule of
  Direct3D and OpenGL rasterisers): p is covered when it is strictly inside
  all three edges, or exactly on an edge line (or vertex) whose face lies
  image-right of it (a left edge) or, for a horizontal edge, image-below it
  (a top edge). Each edge is evaluated from its lexicographically smaller
  end, so two faces sharing it see exactly opposite values and a centre on
  it is covered exactly once, whatever the windings (back faces are drawn
  too). Depth and barycentrics keep PyTorch3D's formulas; only centres
  within float rounding of an edge can change face. `edge_rule="pytorch3d"`
  restores PyTorch3D's strict rule.
* UVs outside [0, 1] repeat per pixel by default (`uv_wrap="repeat"`, the
  GL_REPEAT that ShapeNet's UVs assume; PyTorch3D's OBJ loader wraps per
  vertex instead); `uv_wrap="clamp"` is TexturesUV's "border".
* One light per render (PyTorch3D batches one light per image as well).

How it runs: each face's box of pixel centres is measured; a face whose box
fits in a `tiers` side (1, 4 or 16 pixels by default) is one block of that
side, larger faces are tiled by blocks of the largest side. Faces are sorted
by tier, and every tier's blocks go through a `lax.while_loop` in chunks of
`budget` candidate pixels per image (a tiled face's blocks are found by
binary search in the prefix sum of block counts). Each step evaluates every
block's pixel centres against its face and updates the z-buffer with a
window scatter-min; a scatter-max and a second scatter-min keep the lowest
face index among equal depths. Memory per step does not grow with the mesh,
and the work is about the faces' box areas plus one block per face. No
Python loop runs over faces, pixels, views or meshes.

Gradients: none useful. The outputs are piecewise constant in the vertex
positions (hard coverage and z-test, like PyTorch3D's hard rasteriser without
its barycentric backward pass); colours are differentiable in the texels and
light/material constants only through `shade`.
"""

import dataclasses
import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from renderers import cameras
from renderers.errors import InputError

IMAGE_SIZE = 224
BACKGROUND = (1.0, 1.0, 1.0)
# PyTorch3D's epsilon for face areas and perspective correction.
K_EPSILON = 1e-8
# Block sides (pixels) of the face tiers: a face goes to the first that holds
# its box of pixel centres; larger faces are tiled by blocks of the last.
TIERS = (1, 4, 16)
# Candidate pixels evaluated per image per loop step.
BUDGET = 1 << 14
_NO_FACE = np.iinfo(np.int32).max
_INT_MIN = np.iinfo(np.int32).min
UV_WRAPS = ("repeat", "clamp")
# Who covers a pixel centre exactly on an edge; see the module doc.
EDGE_RULES = ("top_left", "pytorch3d")


@dataclasses.dataclass(frozen=True)
class Materials:
  """PyTorch3D's `Materials`: reflectivities (RGB) and the specular exponent."""
  ambient: tuple[float, float, float] = (1.0, 1.0, 1.0)
  diffuse: tuple[float, float, float] = (1.0, 1.0, 1.0)
  specular: tuple[float, float, float] = (1.0, 1.0, 1.0)
  shininess: float = 64.0


@dataclasses.dataclass(frozen=True)
class PointLight:
  """PyTorch3D's `PointLights` at a world `location` (one light)."""
  location: tuple[float, float, float] = (0.0, 1.0, 0.0)
  ambient: tuple[float, float, float] = (0.5, 0.5, 0.5)
  diffuse: tuple[float, float, float] = (0.3, 0.3, 0.3)
  specular: tuple[float, float, float] = (0.2, 0.2, 0.2)


@dataclasses.dataclass(frozen=True)
class DirectionalLight:
  """PyTorch3D's `DirectionalLights`: light arriving from world `direction`.

  `direction` points from the surface towards the light, as in PyTorch3D
  (the default (0, 1, 0) lights surfaces that face +y).
  """
  direction: tuple[float, float, float] = (0.0, 1.0, 0.0)
  ambient: tuple[float, float, float] = (0.5, 0.5, 0.5)
  diffuse: tuple[float, float, float] = (0.3, 0.3, 0.3)
  specular: tuple[float, float, float] = (0.2, 0.2, 0.2)


@dataclasses.dataclass(frozen=True)
class Headlight:
  """Each view's own light, shining from its camera: the default.

  A `DirectionalLight` whose direction is the view's camera position (from
  the object towards the camera), as MVTN's "relative" light, which
  CLIP2Point's renderer follows. A point light at the camera would sit on the
  surface of a unit-normalised mesh seen from distance 1.
  """
  ambient: tuple[float, float, float] = (0.5, 0.5, 0.5)
  diffuse: tuple[float, float, float] = (0.3, 0.3, 0.3)
  specular: tuple[float, float, float] = (0.2, 0.2, 0.2)


Light = PointLight | DirectionalLight | Headlight
HEADLIGHT = Headlight()


class MeshBatch(NamedTuple):
  """A padded batch of B meshes of up to F faces, in face-corner layout.

  Build one with `renderers.mesh_batch.pack`. Every face lists its three
  corners, as PyTorch3D's `face_verts` does, so meshes need no vertex padding.
  """
  corners: jax.Array  # float32[B, F, 3, 3]: corner positions (world)
  normals: jax.Array  # float32[B, F, 3, 3]: unit vertex normal at each corner
  colors: jax.Array  # float32[B, F, 3, 3]: RGB in [0, 1] at each corner
  uvs: jax.Array  # float32[B, F, 3, 2]: texture coordinates at each corner
  rects: jax.Array  # int32[B, F, 4]: (row, col, height, width) in the atlas; height 0: untextured
  mask: jax.Array  # bool[B, F]: False on padding
  atlas: jax.Array  # uint8[B, A, A, 3]: each mesh's textures, packed


class Fragments(NamedTuple):
  """The rasteriser's output per image (PyTorch3D's Fragments, K = 1)."""
  face: jax.Array  # int32[B, V, H, W]: covering face, -1 on background
  depth: jax.Array  # float32[B, V, H, W]: view-space z, +inf on background
  bary: jax.Array  # float32[B, V, H, W, 3]: barycentrics of the pixel centre


class Rendering(NamedTuple):
  """Everything `render` returns, per mesh and view."""
  rgb: jax.Array  # float32[B, V, H, W, 3] in [0, 1]; background colour off the mesh
  rgb8: jax.Array  # uint8[B, V, H, W, 3]: round(255 rgb)
  depth: jax.Array  # float32[B, V, H, W]: view-space z, +inf on background
  silhouette: jax.Array  # bool[B, V, H, W]
  face: jax.Array  # int32[B, V, H, W]: face index in the mesh, -1 on background


def _edge(px, py, ax, ay, bx, by):
  """PyTorch3D's EdgeFunctionForward(p, a, b)."""
  return (px - ax) * (by - ay) - (py - ay) * (bx - ax)


def check_edge_rule(edge_rule: str) -> str:
  """`edge_rule` itself if it is one of EDGE_RULES, else an InputError naming it."""
  if edge_rule not in EDGE_RULES:
    raise InputError(f"edge_rule must be one of {EDGE_RULES}, got {edge_rule!r}")
  return edge_rule


def _edge_test(px, py, ax, ay, bx, by, positive_area):
  """Whether pixel centres lie inside the face along its edge a -> b.

  Strictly inside the edge's half-plane, or exactly on the edge line where the
  top-left rule gives the edge to this face: a top edge (horizontal in the
  image, the face below it) or a left edge (the face to its right).
  positive_area (bool, E(v2; v0, v1) > 0) tells which side of a -> b is inside.
  """
  # Both faces sharing an edge evaluate it from its lexicographically smaller
  # end, so they round identically and see exactly opposite signs; comparing
  # the two products (instead of subtracting them) leaves no room for a fused
  # multiply-add to round one kernel differently from another.
  swap = (bx < ax) | ((bx == ax) & (by < ay))
  ux, uy = jnp.where(swap, bx, ax), jnp.where(swap, by, ay)
  dx, dy = jnp.abs(bx - ax), jnp.where(swap, ay - by, by - ay)  # v - u; dx >= 0
  along, across = (px - ux) * dy, (py - uy) * dx  # E(p; u, v) = along - across
  positive = positive_area != swap  # E(p; u, v) > 0 inside the face
  strict = jnp.where(positive, along > across, along < across)
  # Inside points at +E, so the face lies image-right of the edge (NDC -x)
  # when E falls with x: sign(dy) opposite to `positive`'s; for a horizontal
  # edge (dy == 0, then dx > 0) image-below (NDC -y) when E falls with y.
  owned = jnp.where(dy != 0, (dy < 0) == positive, positive)
  return strict | ((along == across) & owned)


def _top_left_inside(px, py, tri):
  """Coverage under the top-left rule: bool[...] for px, py float32[...] and
  tri float32[..., 3, 3] (NDC x, y, view z), broadcastable."""
  x, y = tri[..., 0], tri[..., 1]
  positive_area = _edge(x[..., 2], y[..., 2], x[..., 0], y[..., 0], x[..., 1], y[..., 1]) > 0
  inside = True
  for a, b in ((1, 2), (2, 0), (0, 1)):  # the edges of w0, w1 and w2
    inside = inside & _edge_test(px, py, x[..., a], y[..., a], x[..., b], y[..., b],
                                 positive_area)
  return inside


def barycentrics(px, py, tri, perspective_correct: bool, edge_rule: str = "top_left"):
  """Barycentric coordinates and depth of pixel centres in faces.

  Args:
    px, py: float32[...] NDC coordinates of the pixel centres.
    tri: float32[..., 3, 3] the faces' corners (NDC x, NDC y, view z),
      broadcastable against px.
    perspective_correct: apply PyTorch3D's perspective correction.
    edge_rule: which faces cover centres exactly on an edge: "top_left"
      (exactly one of two faces sharing the edge) or "pytorch3d" (neither:
      all barycentrics must be > 0); see the module doc.

  Returns:
    (w float32[..., 3], pz float32[...], inside bool[...]).
  """
  x0, y0, z0 = tri[..., 0, 0], tri[..., 0, 1], tri[..., 0, 2]
  x1, y1, z1 = tri[..., 1, 0], tri[..., 1, 1], tri[..., 1, 2]
  x2, y2, z2 = tri[..., 2, 0], tri[..., 2, 1], tri[..., 2, 2]
  area = _edge(x2, y2, x0, y0, x1, y1) + K_EPSILON
  w0 = _edge(px, py, x1, y1, x2, y2) / area
  w1 = _edge(px, py, x2, y2, x0, y0) / area
  w2 = _edge(px, py, x0, y0, x1, y1) / area
  if perspective_correct:
    t0, t1, t2 = w0 * z1 * z2, z0 * w1 * z2, z0 * z1 * w2
    denom = jnp.maximum(t0 + t1 + t2, K_EPSILON)
    w0, w1, w2 = t0 / denom, t1 / denom, t2 / denom
  pz = w0 * z0 + w1 * z1 + w2 * z2
  if edge_rule == "pytorch3d":
    inside = (w0 > 0) & (w1 > 0) & (w2 > 0)
  else:
    inside = _top_left_inside(px, py, tri)
  return jnp.stack([w0, w1, w2], -1), pz, inside


def _tier_sides(image_size: int, tiers: Sequence[int]) -> tuple[int, ...]:
  sides = sorted({min(int(k), image_size) for k in tiers if int(k) > 0})
  if not sides:
    raise InputError(f"tiers must hold positive footprint sides, got {tiers!r}")
  return tuple(sides)


def _face_boxes(tri, valid, image_size: int):
  """Each face's box of candidate pixel centres (rows r0..r1, cols c0..c1)."""
  size = image_size
  safe = lambda a: jnp.where(valid[..., None], a, 0.0)
  x, y = safe(tri[..., 0]), safe(tri[..., 1])
  # Inverse of the pixel-centre map, with a hundredth of a pixel of slack so
  # rounding never drops a centre the coverage test would accept.
  to_index = lambda ndc: ((1.0 - ndc) * size - 1.0) / 2.0
  slack = 0.01
  index = lambda a: jnp.clip(a, -1, size).astype(jnp.int32)
  c0 = index(jnp.maximum(jnp.ceil(to_index(x.max(-1)) - slack), 0))
  c1 = index(jnp.minimum(jnp.floor(to_index(x.min(-1)) + slack), size - 1))
  r0 = index(jnp.maximum(jnp.ceil(to_index(y.max(-1)) - slack), 0))
  r1 = index(jnp.minimum(jnp.floor(to_index(y.min(-1)) + slack), size - 1))
  return r0, r1, c0, c1


def _rasterize_images(tri, valid, *, image_size: int, sides: tuple[int, ...], budget: int,
                      perspective_correct: bool, edge_rule: str):
  """N images: tri float32[N, F, 3, 3] (NDC x, y, view z), valid bool[N, F].

  Each face's box of pixel centres is covered by square blocks: a face whose
  box fits in sides[t] (and not sides[t-1]) is one block of that side, larger
  faces are tiled by blocks of the largest side. Faces are sorted by tier;
  a tier's blocks are processed `budget // side**2` per image per step, and
  a block of the tiled tier finds its face by binary search in the prefix
  sum of block counts.

  Returns the nearest face per pixel, int32[N, H*W], _NO_FACE where nothing
  covers the pixel.
  """
  size = image_size
  pixels = size * size
  images, num_faces = valid.shape
  r0, r1, c0, c1 = _face_boxes(tri, valid, size)
  height, width = r1 - r0 + 1, c1 - c0 + 1
  valid = valid & (height > 0) & (width > 0)
  extent = jnp.maximum(height, width)
  last = len(sides) - 1
  tier = jnp.sum(extent[..., None] > jnp.asarray(sides[:-1], jnp.int32), axis=-1)
  key = jnp.where(valid, tier, last + 1).astype(jnp.int32)
  order = jnp.argsort(key, axis=1, stable=True).astype(jnp.int32)  # [N, F]
  counts = jnp.sum(key[..., None] == jnp.arange(last + 1), axis=1, dtype=jnp.int32)  # [N, T]
  starts = jnp.cumsum(counts, axis=1) - counts
  # One gather per block fetches all a face needs: its box's corner and its
  # vertices (pixel indices are exact in float32).
  as_float = lambda a: a.astype(jnp.float32)[..., None]
  records = jnp.concatenate([as_float(r0), as_float(c0), tri.reshape(images, num_faces, 9)], -1)
  records = jnp.take_along_axis(records, order[..., None], axis=1)  # sorted by tier
  # Blocks per face of the tiled tier (one for faces smaller than its side).
  side = sides[-1]
  tiles_across = (width + side - 1) // side
  tiles = tiles_across * ((height + side - 1) // side)
  sorted_key = jnp.take_along_axis(key, order, axis=1)
  tiles = jnp.where(sorted_key == last, jnp.take_along_axis(tiles, order, axis=1), 0)
  tiles_across = jnp.take_along_axis(tiles_across, order, axis=1)
  tile_ends = jnp.cumsum(tiles, axis=1, dtype=jnp.int32)
  take = lambda a, i: jnp.take_along_axis(a, i, axis=1)
  image_index = jnp.arange(images, dtype=jnp.int32)[:, None]
  zbuf = jnp.full((images, size, size), jnp.inf, jnp.float32)
  fbuf = jnp.full((images, size, size), _NO_FACE, jnp.int32)
  for t, side in enumerate(sides):
    chunk = max(1, budget // (side * side))
    tiled = t == last
    blocks = tile_ends[:, -1] if tiled else counts[:, t]
    steps = jnp.max((blocks + chunk - 1) // chunk)
    offsets = jnp.arange(side, dtype=jnp.int32)

    def body(i, state, t=t, side=side, chunk=chunk, tiled=tiled, blocks=blocks,
             offsets=offsets):
      zbuf, fbuf = state
      item = i * chunk + jnp.arange(chunk, dtype=jnp.int32)
      live = item[None, :] < blocks[:, None]  # [N, C]
      if tiled:
        pos = jax.vmap(lambda e: jnp.searchsorted(e, item, side="right"))(tile_ends)
        pos = jnp.minimum(pos, num_faces - 1).astype(jnp.int32)
        q = item[None, :] - (take(tile_ends, pos) - take(tiles, pos))
        per_row = jnp.maximum(take(tiles_across, pos), 1)
        block_row, block_col = (q // per_row) * side, (q % per_row) * side
      else:
        pos = jnp.minimum(starts[:, t:t + 1] + item[None, :], num_faces - 1)
        block_row = block_col = 0
      rec = take(records, pos[..., None])  # [N, C, 11]
      f = take(order, pos)
      # The block's window of pixels, kept inside the image; the coverage test
      # alone decides which of them the face covers.
      row0 = jnp.minimum(rec[..., 0].astype(jnp.int32) + block_row, size - side)
      col0 = jnp.minimum(rec[..., 1].astype(jnp.int32) + block_col, size - side)
      px = cameras.pixel_ndc(col0[..., None] + offsets, size)[:, :, None, :]  # [N, C, 1, K]
      py = cameras.pixel_ndc(row0[..., None] + offsets, size)[:, :, :, None]  # [N, C, K, 1]
      corners = rec[..., 2:].reshape(rec.shape[:2] + (1, 1, 3, 3))
      _, pz, inside = barycentrics(px, py, corners, perspective_correct, edge_rule)
      hit = live[..., None, None] & inside & (pz >= 0)
      depth = jnp.where(hit, pz, jnp.inf).reshape(-1, side, side)
      index = jnp.stack(jnp.broadcast_arrays(image_index, row0, col0), -1).reshape(-1, 3)
      window = functools.partial(_window_op, index=index, side=side)
      old_z = window(zbuf)
      zbuf = window(zbuf, depth, jax.lax.scatter_min)
      new_z = window(zbuf)
      # A pixel whose depth dropped forgets its face; ties keep the lower index.
      fbuf = window(fbuf, jnp.where(new_z < old_z, _NO_FACE, _INT_MIN), jax.lax.scatter_max)
      face_ids = jnp.broadcast_to(f[..., None, None], hit.shape).reshape(-1, side, side)
      won = hit.reshape(depth.shape) & (depth == new_z)
      fbuf = window(fbuf, jnp.where(won, face_ids, _NO_FACE), jax.lax.scatter_min)
      return zbuf, fbuf

    zbuf, fbuf = jax.lax.fori_loop(0, steps, body, (zbuf, fbuf))
  return fbuf.reshape(images, pixels)


_WINDOW_SCATTER = jax.lax.ScatterDimensionNumbers(
    update_window_dims=(1, 2), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0, 1, 2))
_WINDOW_GATHER = jax.lax.GatherDimensionNumbers(
    offset_dims=(1, 2), collapsed_slice_dims=(0,), start_index_map=(0, 1, 2))


def _window_op(buffer, values=None, scatter=None, *, index, side):
  """Gathers (values None) or scatter-combines side x side windows of buffer [N, H, W]
  at index int32[M, 3] (image, row, column), windows inside the image."""
  mode = jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS
  if values is None:
    return jax.lax.gather(buffer, index, _WINDOW_GATHER, slice_sizes=(1, side, side), mode=mode)
  return scatter(buffer, index, values.astype(buffer.dtype), _WINDOW_SCATTER, mode=mode)


def _view_frames(views, distance, batch: int):
  """Camera axes float32[B, V, 3, 3] and distance float32[B, V] of every view."""
  views = jnp.asarray(views, jnp.float32)
  views = jnp.broadcast_to(views, (batch,) + views.shape[-2:])
  dist = jnp.broadcast_to(jnp.asarray(distance, jnp.float32), views.shape[:2])
  return cameras.camera_axes(views[..., 0], views[..., 1], dist), dist


def _check_camera(camera):
  if not isinstance(camera, (cameras.OrthographicCamera, cameras.PerspectiveCamera)):
    raise InputError(f"unknown camera {camera!r}; use OrthographicCamera or PerspectiveCamera")


def rasterize(meshes: MeshBatch, views, *, distance=1.0,
              camera: cameras.Camera = cameras.ORTHOGRAPHIC, image_size: int = IMAGE_SIZE,
              strict_near_cull: bool = False, edge_rule: str = "top_left",
              tiers: Sequence[int] = TIERS, budget: int = BUDGET,
              image_group: int = 0) -> Fragments:
  """Nearest face, depth and barycentrics per pixel of every mesh and view.

  Args:
    meshes: a `MeshBatch` of B meshes.
    views: float32[V, 2] or [B, V, 2], (elevation, azimuth) in degrees.
    distance: camera distance: scalar, float32[V] or float32[B, V].
    camera: `cameras.OrthographicCamera` (CLIP2Point's zoom by 1/distance) or
      `cameras.PerspectiveCamera`; static.
    image_size: H = W; static.
    strict_near_cull: PyTorch3D's rule of skipping faces with any vertex at
      z < 1e-8 (see the module doc); static.
    edge_rule: "top_left" (watertight) or "pytorch3d" (centres on an edge
      belong to neither face), see the module doc; static.
    tiers: block sides of the face tiers, in pixels; static.
    budget: candidate pixels per image per loop step (memory); static.
    image_group: rasterise this many images at a time, one group after the
      other (0: all at once, best on accelerators; a few on CPUs, where the
      group's z-buffers then stay in cache); static.

  Returns:
    `Fragments` with leading dimensions [B, V].
  """
  _check_camera(camera)
  check_edge_rule(edge_rule)
  batch, num_faces = meshes.mask.shape
  views = jnp.asarray(views, jnp.float32)
  num_views = views.shape[-2]
  flat = meshes.corners.reshape(batch, num_faces * 3, 3)
  tri = cameras.project(flat, views, distance, camera)  # [B, V, 3F, 3]
  tri = tri.reshape(batch, num_views, num_faces, 3, 3)
  perspective = isinstance(camera, cameras.PerspectiveCamera)
  x, y, z = tri[..., 0], tri[..., 1], tri[..., 2]
  area = _edge(x[..., 0], y[..., 0], x[..., 1], y[..., 1], x[..., 2], y[..., 2])
  valid = (meshes.mask[:, None] & jnp.all(jnp.isfinite(tri), axis=(-2, -1))
           & (jnp.abs(area) > K_EPSILON) & (z.max(-1) >= 0))
  if strict_near_cull:
    valid = valid & (z.min(-1) >= K_EPSILON)
  images = batch * num_views
  group = images if not image_group else min(int(image_group), images)
  groups = -(-images // group)
  pad = groups * group - images
  grouped = lambda a: jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1)).reshape(
      (groups, group) + a.shape[1:])
  raster = functools.partial(_rasterize_images, image_size=image_size,
                             sides=_tier_sides(image_size, tiers), budget=int(budget),
                             perspective_correct=perspective, edge_rule=edge_rule)
  # Groups of images one after the other: on a CPU a group's z-buffers stay in cache.
  face = jax.lax.map(lambda a: raster(*a), (
      grouped(tri.reshape(images, num_faces, 3, 3)), grouped(valid.reshape(images, num_faces))))
  shape = (batch, num_views, image_size, image_size)
  face = face.reshape(-1, face.shape[-1])[:images].reshape(shape)
  covered = face != _NO_FACE
  face = jnp.where(covered, face, -1)
  # Barycentrics of the winners, by the same formula the z-test used.
  winner = jnp.take_along_axis(tri.reshape(batch, num_views, num_faces, 9),
                               jnp.maximum(face, 0).reshape(batch, num_views, -1, 1), axis=2)
  winner = winner.reshape(shape + (3, 3))
  centres = cameras.pixel_ndc(jnp.arange(image_size), image_size)
  bary, pz, _ = barycentrics(centres[None, :], centres[:, None], winner, perspective)
  bary = jnp.where(covered[..., None], bary, 0.0)
  # The winner's depth is recomputed here, so it never depends on how the
  # z-test's work was split (fused arithmetic may differ in the last bit).
  return Fragments(face=face, depth=jnp.where(covered, pz, jnp.inf), bary=bary)


def _gather_faces(attribute, face):
  """attribute [B, F, 3, C] at face [B, V, H, W] -> [B, V, H, W, 3, C]."""
  batch, num_views, height, width = face.shape
  flat = jnp.maximum(face, 0).reshape(batch, -1)
  out = jax.vmap(lambda a, f: a[f])(attribute, flat)
  return out.reshape((batch, num_views, height, width) + attribute.shape[2:])


def _interpolate(corner_values, bary):
  """corner_values [..., 3, C] weighted by bary [..., 3] -> [..., C]."""
  # Written out: a per-pixel dot of 3 terms is slow as a batched matmul on CPUs.
  return (corner_values[..., 0, :] * bary[..., 0:1] + corner_values[..., 1, :] * bary[..., 1:2]
          + corner_values[..., 2, :] * bary[..., 2:3])


def _rotate(vectors, axes):
  """vectors float32[B, V, H, W, 3] into view axes float32[B, V, 3, 3]."""
  a = axes[:, :, None, None]  # [B, V, 1, 1, 3, 3]
  return (vectors[..., None, 0] * a[..., 0] + vectors[..., None, 1] * a[..., 1]
          + vectors[..., None, 2] * a[..., 2])


def _normalize(v, eps=1e-6):
  """torch.nn.functional.normalize: v / max(|v|, eps)."""
  squared = v[..., 0:1] * v[..., 0:1] + v[..., 1:2] * v[..., 1:2] + v[..., 2:3] * v[..., 2:3]
  return v / jnp.sqrt(jnp.maximum(squared, eps * eps))


def _dot(a, b):
  """Dot products over the last axis (of size 3), written out: reductions over
  a minor axis of 3 are slow on CPUs."""
  return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _power(x, exponent: float):
  """x ** exponent; an integral exponent multiplies (exact and much faster on CPUs)."""
  if float(exponent).is_integer() and 0 <= exponent <= 1024:
    return jax.lax.integer_pow(x, int(exponent))
  return jnp.power(x, jnp.float32(exponent))


def sample_atlas(atlas, rects, uv, wrap: str = "repeat"):
  """Bilinear texels from each face's rectangle of its mesh's atlas.

  Args:
    atlas: uint8[B, A, A, 3].
    rects: int32[B, ..., 4] (row, col, height, width) of the texture in the atlas.
    uv: float32[B, ..., 2] texture coordinates.
    wrap: "repeat" (u - floor(u)) or "clamp" (TexturesUV's border padding).

  Returns:
    float32[B, ..., 3] in [0, 1]. align_corners=True: u = 0 and 1 are the
    centres of the first and last columns, v = 1 the top row.
  """
  if wrap not in UV_WRAPS:
    raise InputError(f"uv_wrap must be one of {UV_WRAPS}, got {wrap!r}")
  u, v = uv[..., 0], uv[..., 1]
  if wrap == "repeat":
    u, v = u - jnp.floor(u), v - jnp.floor(v)
  u, v = jnp.clip(u, 0.0, 1.0), jnp.clip(v, 0.0, 1.0)
  row0, col0 = rects[..., 0], rects[..., 1]
  height = jnp.maximum(rects[..., 2], 1)
  width = jnp.maximum(rects[..., 3], 1)
  x = u * (width - 1).astype(jnp.float32)
  y = (1.0 - v) * (height - 1).astype(jnp.float32)
  x0 = jnp.clip(jnp.floor(x), 0, width - 1).astype(jnp.int32)
  y0 = jnp.clip(jnp.floor(y), 0, height - 1).astype(jnp.int32)
  x1, y1 = jnp.minimum(x0 + 1, width - 1), jnp.minimum(y0 + 1, height - 1)
  fx, fy = (x - x0)[..., None], (y - y0)[..., None]
  batch = atlas.shape[0]
  lead = uv.shape[1:-1]

  def fetch(r, c):
    flat = lambda a: a.reshape(batch, -1)
    texel = jax.vmap(lambda img, rr, cc: img[rr, cc])(atlas, flat(row0 + r), flat(col0 + c))
    return texel.reshape((batch,) + lead + (3,)).astype(jnp.float32) / 255.0

  top = fetch(y0, x0) * (1.0 - fx) + fetch(y0, x1) * fx
  bottom = fetch(y1, x0) * (1.0 - fx) + fetch(y1, x1) * fx
  return top * (1.0 - fy) + bottom * fy


def _light_vectors(light: Light, points, axes, dist):
  """Unit direction to the light at each shaded point (view space)."""
  if isinstance(light, Headlight):
    # The camera's direction seen from the origin is -z in view space.
    return jnp.broadcast_to(jnp.asarray([0.0, 0.0, -1.0], jnp.float32), points.shape)
  if isinstance(light, PointLight):
    location = jnp.einsum("bvkc,c->bvk", axes, jnp.asarray(light.location, jnp.float32))
    location = location.at[..., 2].add(dist)
    return _normalize(location[:, :, None, None, :] - points)
  if isinstance(light, DirectionalLight):
    direction = jnp.einsum("bvkc,c->bvk", axes, jnp.asarray(light.direction, jnp.float32))
    return jnp.broadcast_to(_normalize(direction)[:, :, None, None, :], points.shape)
  raise InputError(f"unknown light {light!r}; use Headlight, PointLight or DirectionalLight")


def shade(meshes: MeshBatch, fragments: Fragments, views, *, distance=1.0,
          camera: cameras.Camera = cameras.ORTHOGRAPHIC, light: Light = HEADLIGHT,
          materials: Materials = Materials(), background=BACKGROUND,
          uv_wrap: str = "repeat") -> jax.Array:
  """HardPhongShader + hard_rgb_blend: float32[B, V, H, W, 3] in [0, 1].

  Shading happens in view space (the camera at the origin), which is
  PyTorch3D's world-space Phong moved by a rigid motion: the same colours.
  A `PointLight` location and a `DirectionalLight` direction are given in
  world coordinates; the orthographic camera's 1/distance zoom scales the mesh,
  not the light, as scaling the mesh in PyTorch3D would.
  """
  _check_camera(camera)
  batch = meshes.mask.shape[0]
  axes, dist = _view_frames(views, distance, batch)
  face = fragments.face
  bary = fragments.bary
  scale = 1.0 / dist if isinstance(camera, cameras.OrthographicCamera) else jnp.ones_like(dist)
  # One gather per pixel brings all the corner attributes of its face.
  attributes = jnp.concatenate([meshes.corners, meshes.normals, meshes.colors, meshes.uvs], -1)
  pixel = _interpolate(_gather_faces(attributes, face), bary)  # [B, V, H, W, 11]
  points = pixel[..., 0:3] * scale[:, :, None, None, None]
  points = _rotate(points, axes) + jnp.stack(
      [jnp.zeros_like(dist), jnp.zeros_like(dist), dist], -1)[:, :, None, None]
  normals = _normalize(_rotate(pixel[..., 3:6], axes))
  texels = pixel[..., 6:9]
  if meshes.atlas.shape[1] > 1:  # Static: a batch without textures skips sampling.
    rects = _gather_faces(meshes.rects[..., None, :], face)[..., 0, :]
    sampled = sample_atlas(meshes.atlas, rects, pixel[..., 9:11], uv_wrap)
    texels = jnp.where((rects[..., 2] > 0)[..., None], sampled, texels)

  to_light = _light_vectors(light, points, axes, dist)
  to_camera = _normalize(-points)
  cos = _dot(normals, to_light)
  reflect = -to_light + 2.0 * cos[..., None] * normals
  alpha = jnp.maximum(_dot(to_camera, reflect), 0.0) * (cos > 0)
  rgb = lambda c: jnp.asarray(c, jnp.float32)
  ambient = rgb(materials.ambient) * rgb(light.ambient)
  diffuse = rgb(materials.diffuse) * rgb(light.diffuse) * jnp.maximum(cos, 0.0)[..., None]
  specular = (rgb(materials.specular) * rgb(light.specular)
              * _power(alpha, materials.shininess)[..., None])
  color = (ambient + diffuse) * texels + specular
  color = jnp.where((face >= 0)[..., None], color, rgb(background))
  return jnp.clip(color, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames=(
    "camera", "image_size", "light", "materials", "background", "uv_wrap",
    "strict_near_cull", "edge_rule", "tiers", "budget", "image_group"))
def _render(meshes, views, distance, *, camera, image_size, light, materials, background,
            uv_wrap, strict_near_cull, edge_rule, tiers, budget, image_group):
  fragments = rasterize(meshes, views, distance=distance, camera=camera, image_size=image_size,
                        strict_near_cull=strict_near_cull, edge_rule=edge_rule, tiers=tiers,
                        budget=budget, image_group=image_group)
  rgb = shade(meshes, fragments, views, distance=distance, camera=camera, light=light,
              materials=materials, background=background, uv_wrap=uv_wrap)
  rgb8 = jnp.round(rgb * 255.0).astype(jnp.uint8)
  return Rendering(rgb=rgb, rgb8=rgb8, depth=fragments.depth,
                   silhouette=fragments.face >= 0, face=fragments.face)


def render(meshes: MeshBatch, views, *, distance=1.0,
           camera: cameras.Camera = cameras.ORTHOGRAPHIC, image_size: int = IMAGE_SIZE,
           light: Light = HEADLIGHT, materials: Materials = Materials(),
           background: Sequence[float] = BACKGROUND, uv_wrap: str = "repeat",
           strict_near_cull: bool = False, edge_rule: str = "top_left",
           tiers: Sequence[int] = TIERS, budget: int = BUDGET,
           image_group: Optional[int] = None) -> Rendering:
  """Renders every mesh of the batch from every view; jitted as a whole.

  Args:
    meshes: a `MeshBatch` (see `renderers.mesh_batch.pack`); place it on the
      device, or pass numpy arrays.
    views: (elevation, azimuth) pairs in degrees: float32[V, 2] or [B, V, 2],
      e.g. `cameras.VIEWS_PRETRAIN`.
    distance: camera distance: scalar, float32[V] or float32[B, V].
    camera: `cameras.OrthographicCamera()` (the default, CLIP2Point's
      1/distance zoom, the point projector's camera) or
      `cameras.PerspectiveCamera(fov)`.
    image_size: H = W.
    light: `Headlight()` (a point light at each view's camera, the default),
      `PointLight(location)` or `DirectionalLight(direction)`.
    materials: `Materials()`.
    background: RGB of empty pixels, in [0, 1].
    uv_wrap: "repeat" or "clamp", for UVs outside [0, 1].
    strict_near_cull: PyTorch3D's near-plane face culling (module doc).
    edge_rule: "top_left" (the default: a pixel centre exactly on an edge
      shared by two faces is covered by exactly one) or "pytorch3d" (by
      neither, PyTorch3D's strictly positive barycentrics); module doc.
    tiers, budget, image_group: the rasteriser's work split (module doc and
      `rasterize`); they change speed and memory, never the images. The
      default image_group is 8 on CPUs and all images elsewhere.

  Returns:
    `Rendering`: rgb, rgb8, depth, silhouette and face, each [B, V, H, W, ...].
  """
  if uv_wrap not in UV_WRAPS:
    raise InputError(f"uv_wrap must be one of {UV_WRAPS}, got {uv_wrap!r}")
  if not isinstance(light, (Headlight, PointLight, DirectionalLight)):
    raise InputError(f"unknown light {light!r}; use Headlight, PointLight or DirectionalLight")
  _check_camera(camera)
  check_edge_rule(edge_rule)
  views = jnp.asarray(cameras.views_array(views) if not hasattr(views, "shape") else views,
                      jnp.float32)
  background = tuple(float(c) for c in background)
  if len(background) != 3:
    raise InputError(f"background must be an RGB triple, got {background!r}")
  return _render(MeshBatch(*meshes), views, jnp.asarray(distance, jnp.float32), camera=camera,
                 image_size=int(image_size), light=light, materials=materials,
                 background=background, uv_wrap=uv_wrap, strict_near_cull=bool(strict_near_cull),
                 edge_rule=edge_rule, tiers=tuple(int(t) for t in tiers), budget=int(budget),
                 image_group=default_image_group() if image_group is None else int(image_group))


def default_image_group() -> int:
  """Images rasterised at a time by default: 8 on CPUs, all (0) on accelerators."""
  return 8 if jax.default_backend() == "cpu" else 0
