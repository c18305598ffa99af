"""Detection's crops made on the device: `boxes.crop_boxes` as one jitted program.

    crops = device_crops.crop_boxes(points, boxes, num_points=1024, margin=0.1, min_points=5, rng=rng)
    crops.points, crops.mask  # jax.Arrays [Kb, N, 3], [Kb, N]; rows >= crops.num_boxes are padding
    crops.to_host()           # boxes.Crops, what boxes.crop_boxes returns for the same arguments

The host cropper (`boxes.crop_boxes`) tests each box against a window of
the x-sorted cloud; this one is dense: every box against every point, boxes
a few rows at a time (`lax.map`) so that the [rows, points] temporaries stay
near `STEP_ELEMENTS` (4M). More arithmetic than the host's windows, but no
shape depends on the data: work an accelerator does well. The host needs
about half a second for 256 boxes in a scene of 300k points, a GPU's
classifier about a thirtieth of that for their crops (issue #26;
bench/bench_detect_crops.py times both croppers).

Same result as the host's, by construction:
- the inside test and the box frame take their float32 numbers from
  `boxes.box_frames` and repeat `boxes._inside`'s operations in its order;
- points are ranked by x, then file order (a stable sort, as the host's
  argsort), and the r-th inside point of a box is found the host's way (a
  running count and a binary search);
- the stratified sample uses the host's uniforms (`boxes.sampling_draws`,
  drawn here on the host from the same generator, row k for box k) and its
  float32 offset rule (`boxes.run_offsets`).
XLA contracts a multiply and an add into one FMA (one rounding instead of
numpy's two; its CPU backend does, its GPU backends may), which moves a
point within float32 rounding of a box's face to the other side of it. So
each product of the inside test and the box frame goes through an integer
XOR with a zero the compiler cannot see (`_rounded`): a float32 value
that XLA and LLVM cannot fuse into the add (nor, it should follow, ptxas). On the CPU the masks,
counts and indices then equal the host's and the crops match to float32
rounding (the normalisation's sums run in another order;
tests/detection/test_device_crops.py, with points constructed on faces). On
a GPU the same should hold, but it is not tested there: a backend that saw
through the XOR could still put a point within rounding of a face on the
other side.

Static shapes: the scene's points are padded to a bucket of four sizes per
octave (4096, 5120, 6144, 7168, 8192, 10240, ...: under 25% padding) with a
count of valid ones, and the boxes likewise (at least 16), so scenes of
different sizes reuse a few compiled programs: one per (points bucket, boxes
bucket) and crop size.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.detection import boxes as box_lib

# config.crop.where: the croppers the detect task chooses from.
WHERE = ("device", "host")
MIN_POINTS_BUCKET = 4096
MIN_BOXES_BUCKET = 16
# Elements of one step's [box rows, points] temporaries (as the host's chunks).
STEP_ELEMENTS = 1 << 22


def bucket(n: int, minimum: int) -> int:
  """The smallest m * 2**e >= max(n, minimum) with m in 4..8: four sizes per octave."""
  n = max(int(n), int(minimum))
  e = max(n.bit_length() - 3, 0)
  return -(-n // (1 << e)) << e


def _rows_per_step(num_boxes: int, num_points: int, step_elements: int) -> int:
  """Box rows per `lax.map` step: a power of two dividing `num_boxes`, rows x points <= step_elements."""
  rows = 1 << max((step_elements // num_points).bit_length() - 1, 0)
  return min(rows, num_boxes & -num_boxes)  # num_boxes & -num_boxes: its largest power-of-two divisor


class DeviceCrops(NamedTuple):
  """`boxes.Crops` on the device, its box axis padded to a bucket Kb.

  Rows from `num_boxes` on are padding: no points, mask False, not kept.
  """
  points: jax.Array  # float32[Kb, N, 3]: box frame, centred and scaled into the unit ball
  mask: jax.Array  # bool[Kb, N]: False on padding
  counts: jax.Array  # int32[Kb]: points inside each box (before sampling)
  kept: jax.Array  # bool[Kb]: counts >= min_points
  indices: jax.Array  # int32[Kb, N]: the scene point behind each crop point (0 on padding)
  num_boxes: int  # K, the boxes asked for

  def to_host(self) -> box_lib.Crops:
    """`boxes.Crops` of the K boxes, as numpy (int64 counts and indices, as the host's)."""
    k = self.num_boxes
    points, mask, counts, kept, indices = jax.device_get(
        (self.points[:k], self.mask[:k], self.counts[:k], self.kept[:k], self.indices[:k]))
    return box_lib.Crops(np.asarray(points), np.asarray(mask), np.asarray(counts, np.int64),
                         np.asarray(kept), np.asarray(indices, np.int64))


def crop_boxes(points: np.ndarray, boxes, *, num_points: int, margin: float = 0.0, min_points: int = 1,
               rng: np.random.Generator, step_elements: int = STEP_ELEMENTS) -> DeviceCrops:
  """`boxes.crop_boxes` on the device: the same crops for the same arguments (module doc).

  Dispatches and returns at once (the arrays are computed asynchronously).
  The host only pads the points, draws K x N uniforms and computes a few
  numbers per box.

  Args:
    points: float[P, 3] scene points (on the host).
    boxes: float[K, 6 or 7].
    num_points: N, points per crop.
    margin: see `boxes.points_in_boxes`.
    min_points: boxes with fewer points inside are marked not kept.
    rng: sampling generator; `boxes.sampling_draws` takes K x N uniforms from it.
    step_elements: box rows x padded points per step (the memory of its
      temporaries; fewer, longer steps may suit a GPU better).

  Returns:
    `DeviceCrops` with Kb = `bucket(K, MIN_BOXES_BUCKET)` rows.
  """
  boxes = box_lib.as_boxes(boxes)
  points = np.asarray(points, np.float32).reshape(-1, 3)
  k, p, n = len(boxes), len(points), int(num_points)
  u = box_lib.sampling_draws(rng, k, n)
  kb, pb = bucket(k, MIN_BOXES_BUCKET), bucket(p, MIN_POINTS_BUCKET)
  padded = np.zeros((pb, 3), np.float32)
  padded[:p] = points
  centre, cos, sin, half = box_lib.box_frames(boxes, margin)
  frames = np.zeros((kb, 8), np.float32)
  frames[:, 5:8] = -1.0  # Padding boxes have negative extents: nothing is inside them.
  frames[:k] = np.concatenate([centre, cos[:, None], sin[:, None], half], 1)
  draws = np.zeros((kb, n), np.float32)
  draws[:k] = u
  out = _crop(padded, np.int32(p), frames, draws, np.int32(max(int(min_points), 1)), np.int32(0),
              rows_per_step=_rows_per_step(kb, pb, step_elements))
  return DeviceCrops(*out, num_boxes=k)


def normalize_crops(points: jax.Array, mask: jax.Array) -> jax.Array:
  """`boxes.normalize_crops` in JAX (float32; the host's runs its means in float64).

  Args:
    points: float32[K, N, 3]. mask: bool[K, N].

  Returns:
    float32[K, N, 3]; padded entries are 0.
  """
  w = mask[..., None]
  count = jnp.maximum(mask.sum(-1), 1)[:, None, None].astype(jnp.float32)
  kept = jnp.where(w, points, 0.0)
  centred = jnp.where(w, points - kept.sum(1, keepdims=True) / count, 0.0)
  scale = jnp.linalg.norm(centred, axis=-1).max(-1)[:, None, None]
  magnitude = jnp.abs(kept).max(axis=(1, 2))[:, None, None]
  degenerate = scale <= 1e-6 * (1.0 + magnitude)
  return jnp.where(degenerate, 0.0, centred / jnp.where(degenerate, 1.0, scale))


def _rounded(x: jax.Array, zero: jax.Array) -> jax.Array:
  """x (float32), but opaque to the compiler: it cannot fuse the product x into an FMA.

  `zero` is int32 0 passed in at run time, so no pass can fold the XOR away.
  """
  return jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(x, jnp.int32) ^ zero, jnp.float32)


@functools.partial(jax.jit, static_argnames=("rows_per_step",))
def _crop(points, num_valid, frames, u, min_points, zero, *, rows_per_step):
  """The jitted cropper.

  Args:
    points: float32[Pb, 3], the first `num_valid` real.
    num_valid: int32[], P.
    frames: float32[Kb, 8]: centre (3), cos and sin of the heading, half
      extents (3), as `boxes.box_frames` gives them (padding: extents -1).
    u: float32[Kb, N], `boxes.sampling_draws`' rows.
    min_points: int32[], at least 1.
    zero: int32[] 0, for `_rounded`.
    rows_per_step: box rows per `lax.map` step (divides Kb).

  Returns:
    points float32[Kb, N, 3], mask bool[Kb, N], counts int32[Kb], kept
    bool[Kb], indices int32[Kb, N].
  """
  pb, (kb, n) = points.shape[0], u.shape
  index = jnp.arange(pb, dtype=jnp.int32)
  valid = index < num_valid
  # The host's order: by x, ties in file order (stable), padding after every real point.
  _, _, order = jax.lax.sort((jnp.where(valid, 0, 1), points[:, 0], index), num_keys=2, is_stable=True)
  by_x = points[order]  # [Pb, 3]
  j = jnp.arange(n, dtype=jnp.int32)[None, :]

  def step(rows):
    frame, draws = rows  # [R, 8], [R, N]
    centre, c, s, half = frame[:, 0:3], frame[:, 3:4], frame[:, 4:5], frame[:, 5:8]
    # boxes._inside's operations in its order, each product rounded on its
    # own as numpy rounds it (no FMA: `_rounded`).
    dz = by_x[None, :, 2] - centre[:, 2:3]
    inside = jnp.abs(dz) <= half[:, 2:3]
    dx = by_x[None, :, 0] - centre[:, 0:1]
    dy = by_x[None, :, 1] - centre[:, 1:2]
    inside &= jnp.abs(_rounded(c * dx, zero) + _rounded(s * dy, zero)) <= half[:, 0:1]
    inside &= jnp.abs(_rounded(-s * dx, zero) + _rounded(c * dy, zero)) <= half[:, 1:2]
    inside &= valid[None, :]  # `valid` is already in x order: padding sorts last.
    running = jnp.cumsum(inside.astype(jnp.int32), axis=1)  # [R, Pb]
    count = running[:, -1]
    many = count >= n
    # Rank of each sampled point among the box's inside points (boxes.crop_boxes'
    # runs); floor(j c / N) as j (c // N) + floor(j (c % N) / N) stays within int32.
    c_ = count[:, None]
    run_start = j * (c_ // n) + j * (c_ % n) // n
    run_end = (j + 1) * (c_ // n) + (j + 1) * (c_ % n) // n
    run_length = run_end - run_start
    offset = jnp.minimum(jnp.floor(draws * run_length.astype(jnp.float32)).astype(jnp.int32), run_length - 1)
    rank = jnp.where(many[:, None], run_start + offset, j)
    chosen_valid = (many[:, None] | (j < c_)) & (c_ > 0)
    rank = jnp.where(chosen_valid, rank, 0)
    # The r-th inside point is where the running count first reaches r + 1.
    at = jax.vmap(lambda run, r: jnp.searchsorted(run, r + 1, side="left"))(running, rank)
    at = jnp.clip(at, 0, pb - 1)
    chosen = jnp.where(chosen_valid, order[at], 0)
    p = by_x[at]  # [R, N, 3]
    # boxes.to_box_frame's operations.
    rx = p[..., 0] - centre[:, 0:1]
    ry = p[..., 1] - centre[:, 1:2]
    rz = p[..., 2] - centre[:, 2:3]
    local = jnp.stack([_rounded(c * rx, zero) + _rounded(s * ry, zero),
                       _rounded(-s * rx, zero) + _rounded(c * ry, zero), rz], -1)
    local = jnp.where(chosen_valid[..., None], local, 0.0)
    return local, chosen_valid, count, chosen

  steps = kb // rows_per_step
  split = lambda x: x.reshape(steps, rows_per_step, *x.shape[1:])
  local, mask, counts, chosen = jax.lax.map(step, (split(frames), split(u)))
  merge = lambda x: x.reshape(kb, *x.shape[2:])
  local, mask, counts, chosen = merge(local), merge(mask), merge(counts), merge(chosen)
  kept = counts >= min_points
  return normalize_crops(local, mask), mask, counts, kept, chosen
