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
import os
from typing import Any, Iterator, Optional

import jax
import numpy as np
from PIL import Image
from tqdm import tqdm

from clip2point_jax.core import feature_cache, parallel, paths
from clip2point_jax.data import pipeline, registry, splits
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
        "the RGB renderings: shapenet55 prepared with CLIP2Point's Rendering archive (see "
        "docs/datasets.md), or primitives from a version with the mesh renderer")


def dataset_identity(name: str, data_dir: str, split: str, options=None) -> dict[str, Any]:
  """The prepared data a cache was made from: its preparation options and record files (name, size).

  `options`: the preparation options of a dataset prepared on first use
  (`registry.options_of`), which name its folder.
  """
  folder = paths.path(registry.dataset_dir(name, data_dir, options))
  records = sorted((f.name, f.stat().length) for f in folder.iterdir() if f"-{split}." in f.name)
  return {"options": registry.metadata(name, data_dir, options).get("options"),
          "records": [list(r) for r in records]}


def training_points(data, workdir: str, source) -> tuple[np.ndarray, np.ndarray]:
  """The clouds pre-training reads, from `stored_points`' array beside the dataset.

  Args:
    data: the config's `data` block (name, split, data_dir).
    workdir: where an empty `data.data_dir` points (`splits.data_dir`).
    source: the split's examples.

  Returns:
    rows int64[M'] (the examples with renderings) and the stored points
    float32[M, S, 3] (memory-mapped) of every example.
  """
  data_dir = splits.data_dir(data, workdir)
  options = registry.options_of(data)
  ident = {"dataset": data.name, "split": data.split, "num_examples": len(source),
           "dataset_options": dataset_identity(data.name, data_dir, data.split, options)}
  directory = os.path.join(registry.dataset_dir(data.name, data_dir, options), "stored_points",
                           data.split)
  points, has_images = stored_points(source, directory, ident)
  return np.flatnonzero(has_images), points


def _read_points(source, batch_size: int = 256, desc: str = "stored points"):
  """Every example's points and has_images, in order, in one pass over the records."""
  count = len(source)
  chunks = (list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size))
  points, has_images = None, np.zeros(count, bool)
  for rows, examples in tqdm(pipeline.prefetch((rows, pipeline.read_examples(source, rows))
                                               for rows in chunks),
                             total=-(-count // batch_size), desc=desc, unit="batch",
                             disable=not parallel.is_host0()):
    for row, example in zip(rows, examples):
      cloud = np.asarray(example["points"], np.float32)
      if points is None:
        points = np.empty((count,) + cloud.shape, np.float32)
      points[row] = cloud
      has_images[row] = bool(example["has_images"])
  return {"points": points, "has_images": has_images}


def stored_points(source, directory: str, ident: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
  """All stored clouds as one array, so training reads no records.

  Reading a record decodes its ten PNGs' bytes with it, which would make the
  input pipeline, not the device, set the pace. The array is built once in a
  pass over the split and kept in `directory` (`feature_cache` format, so a
  copy made from other data is refused); it is memory-mapped.

  Returns:
    points float32[M, S, 3] (memory-mapped) and has_images bool[M].
  """
  cached = feature_cache.load(directory, ident)
  if parallel.any_process(cached is None):
    arrays = None
    if parallel.is_host0() and cached is None:
      arrays = _read_points(source)
      feature_cache.save(directory, arrays, ident)
    parallel.wait_for_hosts("stored points written")
    cached = feature_cache.load(directory, ident)
    if cached is None:  # Not a shared file system: this host keeps its own copy.
      cached = feature_cache.save(directory, arrays or _read_points(source), ident)
  return cached["points"], np.asarray(cached["has_images"])


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
            start_step: int = 0, num_steps: Optional[int] = None, points: Optional[np.ndarray] = None,
            live_images: bool = False, image_size: int = 224, workers: int = 8,
            process_index: Optional[int] = None,
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
    points: `stored_points`' array float32[M, S, 3]; clouds are read from it
      instead of the records (which are then read only for live images).
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
  stored = np.shape(points if points is not None else source[0]["points"])[-2]
  if num_points > stored:
    raise UserError(f"num_points={num_points}, but the dataset stores {stored} points per cloud")
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
      views, subsets = sample_draws(seed, step, positions, stored, num_points)
      examples = None
      if points is None or live_images:
        examples = pipeline.read_examples(source, picked)
      clouds = ([points[r] for r in picked] if points is not None
                else [np.asarray(e["points"], np.float32) for e in examples])
      batch = {
          "points": np.stack([c[s] for c, s in zip(clouds, subsets)]).astype(np.float32),
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
