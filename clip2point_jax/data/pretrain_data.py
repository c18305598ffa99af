"""The pre-training input: clouds with their rendered RGB views, host-sharded.

Datasets with renderings (`shapenet55` prepared with CLIP2Point's images, or
the built-in `primitives` with the mesh renderer's) store, per shape, the
views as PNG bytes in `images`, in `cameras.VIEWS_PRETRAIN` order, and
`has_images`. Pre-training uses the shapes that have them.

Every random choice of a sample comes from (seed, step, position in the global
batch) alone, so a resumed run draws exactly what an uninterrupted one did:
the view k and the subset of N of the S stored points here, the two camera
distances inside the train step (from the same seed and step).
"""

import concurrent.futures
from typing import Any, Iterator, Optional

import jax
import numpy as np
from PIL import Image

from clip2point_jax.data import pipeline
from clip2point_jax.data.builders import shapenet55
from clip2point_jax.errors import UserError
from renderers import cameras

VIEWS = cameras.VIEWS_PRETRAIN
NUM_VIEWS = len(VIEWS)


def check_has_renderings(source, dataset: str) -> None:
  """UserError unless the examples carry `images` and `has_images`."""
  example = source[0]
  if "images" not in example or "has_images" not in example:
    raise UserError(
        f"dataset {dataset!r} stores no rendered views (no 'images' feature); pre-training needs "
        "the RGB renderings: shapenet55 prepared with CLIP2Point's Rendering archive (see the "
        "README), or primitives from a version with the mesh renderer")


def rendered_rows(source, batch_size: int = 256) -> np.ndarray:
  """Indices of the examples with all views rendered: int64[M'] (reads every record)."""
  keep = []
  for start in range(0, len(source), batch_size):
    rows = list(range(start, min(start + batch_size, len(source))))
    keep += [r for r, e in zip(rows, pipeline.read_examples(source, rows)) if bool(e["has_images"])]
  return np.asarray(keep, np.int64)


def decode_view(pngs, view: int, image_size: int) -> np.ndarray:
  """uint8[S, S, 3] RGB of view `view`, resized (bicubic) if it is not S x S."""
  image = shapenet55.decode_renderings([pngs[view]])[0]
  if image.shape[:2] != (image_size, image_size):
    image = np.asarray(Image.fromarray(image).resize((image_size, image_size), Image.BICUBIC))
  return image


def decode_views(pngs, image_size: int) -> np.ndarray:
  """uint8[V, S, S, 3]: every stored view of one shape."""
  return np.stack([decode_view(pngs, v, image_size) for v in range(len(pngs))])


def sample_draws(seed: int, step: int, positions: np.ndarray, num_stored: int,
                 num_points: int) -> tuple[np.ndarray, np.ndarray]:
  """The host's random choices for samples at `positions` of global batch `step`.

  Returns:
    views int32[b] (uniform over the 10 views) and point indices int64[b, N]
    (N of the S stored points, without replacement).
  """
  views = np.empty(len(positions), np.int32)
  subsets = np.empty((len(positions), num_points), np.int64)
  for i, position in enumerate(positions):
    rng = np.random.default_rng([seed, step, int(position)])
    views[i] = rng.integers(NUM_VIEWS)
    subsets[i] = rng.choice(num_stored, num_points, replace=False)
  return views, subsets


def data_state(step: int, num_examples: int, global_batch_size: int, seed: int) -> dict[str, Any]:
  """Where the stream stands after `step` steps (stored in checkpoints)."""
  per_epoch = pipeline.num_batches(num_examples, global_batch_size, True)
  return {"step": int(step), "epoch": step // per_epoch, "batch_in_epoch": step % per_epoch,
          "num_examples": int(num_examples), "global_batch_size": int(global_batch_size),
          "seed": int(seed)}


def batches(source, rows: np.ndarray, *, global_batch_size: int, num_points: int, seed: int,
            start_step: int = 0, num_steps: Optional[int] = None, live_images: bool = False,
            image_size: int = 224, workers: int = 8, process_index: Optional[int] = None,
            process_count: Optional[int] = None) -> Iterator[dict[str, np.ndarray]]:
  """This host's pre-training batches, epoch after epoch.

  Args:
    source: a data source whose examples have points, images, has_images.
    rows: the examples to train on (those with renderings), int[M'].
    global_batch_size: samples per step over all hosts.
    num_points: N points drawn per cloud from the S stored.
    seed: shuffling and sampling seed.
    start_step: steps already taken (to resume).
    num_steps: how many batches to yield (default: forever).
    live_images: also decode the RGB view of each sample.
    image_size: the side the RGB views are resized to.
    workers: threads decoding PNGs.
    process_index, process_count: this host and the host count (default: JAX's).

  Yields:
    {"points": float32[b, N, 3] (not normalised), "view": int32[b],
     "row": int32[b] (the example's index in `source`), and with live_images
     "image": uint8[b, S, S, 3]}, b = global_batch_size / process_count.
  """
  process_index = jax.process_index() if process_index is None else process_index
  process_count = jax.process_count() if process_count is None else process_count
  if global_batch_size % process_count:
    raise UserError(f"batch size {global_batch_size} must be a multiple of the {process_count} hosts")
  if len(rows) < global_batch_size:
    raise UserError(f"{len(rows)} shapes with renderings, fewer than the batch size "
                    f"{global_batch_size}; lower the batch size")
  local = global_batch_size // process_count
  positions = np.arange(process_index * local, (process_index + 1) * local)
  stream = pipeline.global_indices(len(rows), global_batch_size, training=True, seed=seed,
                                   start_step=start_step)
  pool = concurrent.futures.ThreadPoolExecutor(workers) if live_images else None
  try:
    for step, order in enumerate(stream, start=start_step):
      if num_steps is not None and step >= start_step + num_steps:
        return
      picked = rows[pipeline.host_slice(order, process_index, process_count)]
      examples = pipeline.read_examples(source, picked)
      stored = np.shape(examples[0]["points"])[0]
      if num_points > stored:
        raise UserError(f"num_points={num_points}, but the dataset stores {stored} points per cloud")
      views, subsets = sample_draws(seed, step, positions, stored, num_points)
      batch = {
          "points": np.stack([np.asarray(e["points"], np.float32)[s] for e, s in zip(examples, subsets)]),
          "view": views,
          "row": picked.astype(np.int32),
      }
      if live_images:
        batch["image"] = np.stack(list(pool.map(
            lambda ev: decode_view(ev[0]["images"], int(ev[1]), image_size), zip(examples, views))))
      yield batch
  finally:
    if pool is not None:
      pool.shutdown(wait=False)
