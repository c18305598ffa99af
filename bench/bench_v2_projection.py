"""PointCLIP V2's realistic projection: ways to run the same maps, checked against the shipped ones, then timed.

  PYTHONPATH=. python bench/bench_v2_projection.py                 # batch 1024, 1024 points
  PYTHONPATH=. python bench/bench_v2_projection.py --batch 16 --repeats 2   # a CPU check

Each variant computes `pointclip_v2.depth_maps` (the ten 110 x 110 maps) and
prints its largest difference from the shipped maps on this device (0: the
same floats) before it is timed. The official grid of [views, 8 slices,
112, 112] cells is 4 GiB at batch 1024; the passes over it cost most.

  shipped      `pointclip_v2.depth_maps` as it is in the tree; on GPUs the
               7 x 7 max-pool done by the scatter (each point written into
               the 49 pooled cells it reaches) into a grid with the blur's
               zero border, so the blur pads nothing; the maximum over
               slices unrolled (elementwise)
  shipped_reduce  the GPUs' path with the maximum over slices as a reduction
  rowpool_border  other backends' path (the GPUs' at 3b7065b): the scatter
               pools rows only (7 writes per point) into a bordered grid,
               the columns by shifted maxima
  previous     shipped until 2026-12-07: rows pooled by the scatter, no
               borders (the column pool and the blur pad their input), the
               maximum over slices a reduction
  shipped_f32  shipped with the scatter-max on float32 values (shipped
               before 2026-12-07; now it scatters their int32 bits)
  grid         the official grid, then `grid_to_image` (shipped before 2026-12-06)
  scatter49    both pool passes done by the scatter (49 writes per point), no
               border (the blur pads a copy), the maximum a reduction
  folded       the grid with one zero border of 3 for the pool and the blur
               (the pool's -inf padding may be 0: every cell is >= 0)
  no_slice0    the grid without slice 0, which no point reaches
  chunk<k>     `grid` over chunks of k clouds (`lax.map`), so each chunk's
               grid can stay in the GPU's L2 cache
  reduce_window  the pool as `lax.reduce_window`
"""

import argparse
import functools
from unittest import mock

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
import numpy as np  # pylint: disable=g-import-not-at-top

from bench.lib import device as device_lib  # pylint: disable=g-import-not-at-top
from bench.lib import inputs as inputs_lib
from renderers import pointclip
from renderers import pointclip_v2 as v2
from renderers import scatter

RES = v2.RESOLUTION
SLICES = v2.DEPTH_SLICES


def _grid(points, mask, first_slice=0):
  """float32[B, V, SLICES - first_slice, RES, RES]: the scattered grid, slices from `first_slice`."""
  b = points.shape[0]
  flat, value = v2._grid_coordinates(points, mask)  # pylint: disable=protected-access
  cells = SLICES * RES * RES
  if first_slice:
    # The shipped flat index is view * cells + slice * RES^2 + cell; drop the
    # first slices from it (and any point landing there, which none does).
    view, rest = flat // cells, flat % cells
    kept = SLICES - first_slice
    inside = (rest >= first_slice * RES * RES) & (flat < v2.NUM_VIEWS * cells)
    flat = jnp.where(inside, view * kept * RES * RES + rest - first_slice * RES * RES,
                     v2.NUM_VIEWS * kept * RES * RES)
    cells = kept * RES * RES
  size = v2.NUM_VIEWS * cells
  grid = v2._scatter_max_per_cloud(flat.reshape(b, -1), value.reshape(b, -1), size)  # pylint: disable=protected-access
  return grid.reshape(b, v2.NUM_VIEWS, size // (v2.NUM_VIEWS * RES * RES), RES, RES)


# The shipped path's pieces, shared by the variants (same operations, same order).
_finish = v2._normalise  # pylint: disable=protected-access
_blur_valid = v2._blurred  # pylint: disable=protected-access
_window_max = v2._window_max  # pylint: disable=protected-access


def folded_image(grid):
  """grid float32[..., D, 112, 112] -> float32[..., 110, 110], one zero border for pool and blur."""
  lead = grid.ndim - 2
  padded = jnp.pad(grid, ((0, 0),) * lead + ((3, 3),) * 2)  # 118
  pooled = _window_max(_window_max(padded, -2), -1)  # 112: official rows -1 .. 110
  ring = np.zeros((RES, RES), bool)
  ring[1:-1, 1:-1] = True
  pooled = jnp.where(ring, pooled, 0.0)  # the blur's zero padding
  return _finish(jnp.max(_blur_valid(pooled), axis=-3))


def reduce_window_image(grid):
  lead = grid.ndim - 2
  pooled = jax.lax.reduce_window(grid, -jnp.inf, jax.lax.max, (1,) * lead + (7, 7), (1,) * grid.ndim,
                                 ((0, 0),) * lead + ((2, 2),) * 2)
  padded = jnp.pad(pooled, ((0, 0),) * lead + ((1, 1),) * 2)
  return _finish(jnp.max(_blur_valid(padded), axis=-3))


@jax.jit
def shipped(points, mask):
  return v2._depth_maps(points, mask)  # pylint: disable=protected-access


@jax.jit
def grid(points, mask):
  return v2.grid_to_image(_grid(points, mask))


@jax.jit
def folded(points, mask):
  return folded_image(_grid(points, mask))


@jax.jit
def no_slice0(points, mask):
  return v2.grid_to_image(_grid(points, mask, first_slice=1))


@jax.jit
def folded_no_slice0(points, mask):
  return folded_image(_grid(points, mask, first_slice=1))


@jax.jit
def reduce_window(points, mask):
  return reduce_window_image(_grid(points, mask))


MAP = v2.MAP_SIZE  # 110
KEPT = SLICES - 1  # slices 1..7: no point reaches slice 0


def _scatter_windows(points, mask, rows: bool, cols: bool):
  """The max-pool done by the scatter: each point written over its pooled window.

  Pooled row r (0..109) is the max of grid rows r - 2 .. r + 4, so a point in
  row x reaches pooled rows x - 4 .. x + 2 (likewise columns). rows/cols: pool
  that axis by the scatter (7 updates each), else leave the grid's 112 cells.
  Returns float32[B, V, 7, R, C] (R, C = 110 where pooled, else 112).
  """
  cells = v2._cells(points, mask)  # pylint: disable=protected-access
  n_r, n_c = (MAP if rows else RES), (MAP if cols else RES)
  dr = v2._pool_reach() if rows else jnp.zeros((1,), jnp.int32)  # pylint: disable=protected-access
  dc = v2._pool_reach() if cols else jnp.zeros((1,), jnp.int32)  # pylint: disable=protected-access
  r = cells.row[..., None, None] + dr[:, None]
  c = cells.col[..., None, None] + dc[None, :]
  ok = cells.valid[..., None, None] & (r >= 0) & (r < n_r) & (c >= 0) & (c < n_c)
  return v2._scatter_planes(cells, r * n_c + c, ok, (n_r, n_c))  # pylint: disable=protected-access


def _blur_max(pooled):
  """pooled float32[..., 7, 110, 110] -> the maps: zero-padded blur, max over slices, normalised."""
  lead = pooled.ndim - 2
  padded = jnp.pad(pooled, ((0, 0),) * lead + ((1, 1),) * 2)
  return _finish(jnp.max(_blur_valid(padded), axis=-3))


@jax.jit
def scatter49(points, mask):
  return _blur_max(_scatter_windows(points, mask, rows=True, cols=True))


def chunked(inner, k):
  @jax.jit
  def run(points, mask):
    b = points.shape[0]
    maps = jax.lax.map(lambda pm: inner(*pm), (points.reshape(b // k, k, *points.shape[1:]),
                                                mask.reshape(b // k, k, *mask.shape[1:])))
    return maps.reshape(b, *maps.shape[2:])
  return run


@jax.jit
def shipped_f32(points, mask):
  """The shipped maps with the scatter-max on float32 values, as before 2026-12-07 (the shipped
  one scatters their int32 bits; XLA:GPU runs a float scatter-max as a compare-and-swap loop)."""
  def float_max(flat, values, size):
    return scatter.per_cloud("max", v2.BACKGROUND, size, flat, values)
  # Patched while the caller's trace runs; `_depth_maps`' own jit cache is bypassed.
  with mock.patch.object(v2, "_scatter_max_per_cloud", float_max):
    return v2._depth_maps.__wrapped__(points, mask)  # pylint: disable=protected-access


def _previous_row_pooled_grid(cells):
  """Shipped until 2026-12-07: float32[B, V, 7, 110, 112], rows pooled by the scatter, no borders."""
  rows = cells.row[..., None] + v2._pool_reach()  # pylint: disable=protected-access
  inside = cells.valid[..., None] & (rows >= 0) & (rows < MAP)
  return v2._scatter_planes(cells, rows * RES + cells.col[..., None], inside, (MAP, RES))  # pylint: disable=protected-access


@jax.jit
def previous(points, mask):
  pooled = v2._max_filter(_previous_row_pooled_grid(v2._cells(points, mask)), -1, padding=0.0)  # pylint: disable=protected-access
  return v2._blur_and_flatten(pooled)  # pylint: disable=protected-access


@jax.jit
def shipped_reduce(points, mask):
  """The shipped path with `jnp.max` over the slices instead of the unrolled maxima."""
  pooled = v2._pooled_grid(v2._cells(points, mask))  # pylint: disable=protected-access
  return _finish(jnp.max(_blur_valid(pooled), axis=-3))


@jax.jit
def rowpool_border(points, mask):
  """Other backends' path (and the GPUs' at 3b7065b): the scatter pools rows only."""
  return v2._maps_row_pooled(v2._cells(points, mask))  # pylint: disable=protected-access


def variants():
  table = {"shipped": shipped, "shipped_reduce": shipped_reduce, "rowpool_border": rowpool_border,
           "previous": previous,
           "shipped_f32": shipped_f32, "grid": grid, "scatter49": scatter49,
           "folded": folded, "no_slice0": no_slice0,
           "folded_no_slice0": folded_no_slice0, "reduce_window": reduce_window}
  for k in (4, 16, 64):
    table[f"chunk{k}"] = chunked(grid, k)
    table[f"chunk{k}_folded"] = chunked(folded, k)
  return table


def stages(points, mask):
  """The shipped pipeline's stages alone: {name: (fn, its input)} on the same clouds."""
  cells = jax.jit(_grid)(points, mask)
  maps = shipped(points, mask)
  return {"stage: scatter": (jax.jit(_grid), (points, mask)),
          "stage: grid->maps": (jax.jit(v2.grid_to_image), (cells,)),
          "stage: grid->maps folded": (jax.jit(folded_image), (cells,)),
          "stage: maps->224x3": (jax.jit(v2.clip_input), (maps,)),
          "stage: maps->224 grey": (jax.jit(lambda m: pointclip.resize_align_corners(m, 224)), (maps,)),
          "stage: maps->224 grey matmul": (jax.jit(resize_by_matmul), (maps,))}


def resize_by_matmul(maps, size=224):
  """`resize_align_corners` as two matmuls with its 2-tap interpolation matrices (float32)."""
  def matrix(n):
    i0, i1, l0, l1 = pointclip._resize_axis(n, size)  # pylint: disable=protected-access
    m = np.zeros((size, n), np.float32)
    np.add.at(m, (np.arange(size), i0), l0)
    np.add.at(m, (np.arange(size), i1), l1)
    return jnp.asarray(m)
  rows, cols = matrix(maps.shape[-2]), matrix(maps.shape[-1])
  hi = jax.lax.Precision.HIGHEST
  return jnp.einsum("ih,bvhw,jw->bvij", rows, maps, cols, precision=hi)


def with_clip_input(maps_fn):
  """The maps resized to CLIP's 224 x 224 x 3, as the zero-shot path feeds them."""
  return jax.jit(lambda p, m: v2.clip_input(maps_fn(p, m)))


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=1024)
  parser.add_argument("--points", type=int, default=1024)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--variants", nargs="+", default=None)
  args = parser.parse_args()
  print(device_lib.describe(), flush=True)
  table = variants()
  names = args.variants or [n for n in table if not n.startswith("chunk") or int(
      n[5:].split("_")[0]) <= args.batch]
  check = jnp.asarray(inputs_lib.clouds(64, args.points, seed=11))
  check_mask = jnp.asarray(np.random.default_rng(0).random(check.shape[:2]) > 0.1)
  expected = np.asarray(shipped(check, check_mask))
  clouds = [inputs_lib.clouds(args.batch, args.points, seed) for seed in range(2)]
  mask = jnp.ones(clouds[0].shape[:2], bool)
  for name, (fn, inputs) in stages(clouds[0], mask).items():
    seconds = device_lib.time_compiled(jax.jit(lambda *a, f=fn: f(*a)), inputs[:-1], [inputs[-1]],
                                       args.repeats)[0]
    print(f"{name:<26} {1e3 * seconds:>8.2f} ms", flush=True)
  print(f"{'variant':<20} {'max diff':>8} {'maps ms':>8} {'maps+224 ms':>11} {'clouds/s':>9} {'GiB':>5}",
        flush=True)
  for name in names:
    fn = table[name]
    diff = float(np.abs(np.asarray(fn(check, check_mask)) - expected).max())
    maps_s, _, _, gib, _ = _time(fn, clouds, mask, args.repeats)
    full_s, _, _, _, _ = _time(with_clip_input(fn), clouds, mask, args.repeats)
    print(f"{name:<20} {diff:>8.1e} {1e3 * maps_s:>8.2f} {1e3 * full_s:>11.2f} "
          f"{args.batch / full_s:>9.0f} {gib:>5.1f}", flush=True)


def _time(fn, clouds, mask, repeats):
  return device_lib.time_compiled(jax.jit(lambda m, p: fn(p, m)), (mask,), clouds, repeats)


if __name__ == "__main__":
  main()
