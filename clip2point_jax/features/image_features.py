"""CLIP's features of the rendered RGB views, computed once for pre-training.

The image encoder E_I is frozen and the renderings are fixed, so F_I of every
(shape, view) is computed once, stored beside the dataset with
`feature_cache`, and the train step only looks them up. The cache's identity
holds the CLIP checkpoint's fingerprint and the dataset's, so a cache made by
another CLIP or from another preparation of the data is refused, never used.

    cached, directory = image_features.for_split(config, workdir, source, loaded, mesh)
    # cached["features"]: float16[M, 10, D] (or the configured dtype);
    # cached["has_images"]: bool[M]
"""

import os
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

from clip2point_jax.core import feature_cache, parallel
from clip2point_jax.data import pipeline, pretrain_data, registry, splits
from clip2point_jax.errors import UserError
from clip2point_jax.loading import hf_clip
from clip2point_jax.models import clip as clip_lib

DTYPES = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}
FEATURES = "features"
HAS_IMAGES = "has_images"


def default_dir(dataset_dir: str, clip_name: str, split: str, dtype: str) -> str:
  """`<dataset_dir>/clip_image_features/<CLIP's name>-<dtype>/<split>`."""
  name = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.basename(os.path.normpath(clip_name)) or "clip")
  return os.path.join(dataset_dir, "clip_image_features", f"{name}-{dtype}", split)


def identity(*, clip_fingerprint: str, dataset: str, split: str, num_examples: int,
             dataset_options: dict, image_size: int, dtype: str) -> dict[str, Any]:
  """What makes a cache valid: the CLIP weights and the exact prepared data."""
  return {"clip": clip_fingerprint, "dataset": dataset, "split": split,
          "num_examples": int(num_examples), "dataset_options": dataset_options,
          "views": [list(v) for v in pretrain_data.VIEWS], "image_size": int(image_size),
          "dtype": dtype}


def _host_batches(source, indices_stream, image_size, workers):
  import concurrent.futures  # pylint: disable=g-import-not-at-top
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for local in indices_stream:
      valid = local >= 0
      examples = pipeline.read_examples(source, np.where(valid, local, 0))
      has = np.asarray([bool(v) and bool(e["has_images"]) for v, e in zip(valid, examples)])
      blank = np.zeros((pretrain_data.NUM_VIEWS, image_size, image_size, 3), np.uint8)
      images = list(pool.map(
          lambda eh: pretrain_data.decode_views(eh[0]["images"], image_size) if eh[1] else blank,
          zip(examples, has)))
      yield {"images": np.stack(images), "has_images": has}


def compute(source, encode_image: Callable, params, mesh, *, image_size: int, batch_size: int,
            dtype: str, workers: int = 8, desc: str = "CLIP image features") -> dict[str, np.ndarray]:
  """F_I of every view of every example of `source`, data-parallel over the mesh.

  Args:
    source: examples with `images` (V PNGs) and `has_images`.
    encode_image: `(params, images float32[M, S, S, 3] normalised) -> float32[M, D]`.
    params: the frozen CLIP's params (on the mesh).
    image_size: S, the side CLIP takes.
    batch_size: shapes per global batch (V images each).
    dtype: one of DTYPES, the stored precision.

  Returns:
    {"features": dtype[M, V, D] (zeros where there are no images),
     "has_images": bool[M]}, the same on every host.
  """
  batch_size = parallel.round_to_devices(batch_size, mesh)
  count = len(source)
  out_dtype = jnp.dtype(DTYPES[dtype])

  @jax.jit
  def encode(params, images):
    b, v = images.shape[:2]
    flat = clip_lib.normalize_images(images.reshape((b * v,) + images.shape[2:]) / 255.0)
    return encode_image(params, flat).reshape(b, v, -1).astype(out_dtype)

  stream = (pipeline.host_slice(i, jax.process_index(), jax.process_count())
            for i in pipeline.global_indices(count, batch_size, training=False))
  (features, has_images), _ = pipeline.map_batches(
      lambda batch: (encode(params, batch["images"]), batch["has_images"]),
      pipeline.prefetch_to_device(_host_batches(source, stream, image_size, workers), mesh),
      total=pipeline.num_batches(count, batch_size, False), desc=desc,
      counts=lambda i: {"shapes": min(batch_size, count - i * batch_size)})
  features, has_images = features[:count], has_images[:count]
  return {FEATURES: features, HAS_IMAGES: has_images}


def _to_disk(arrays):
  features = arrays[FEATURES]
  if features.dtype == ml_dtypes.bfloat16:  # .npy has no bfloat16: keep its bits.
    features = features.view(np.uint16)
  return {FEATURES: features, HAS_IMAGES: arrays[HAS_IMAGES]}


def _from_disk(arrays, dtype):
  features = arrays[FEATURES]
  if dtype == "bfloat16":
    features = features.view(ml_dtypes.bfloat16)
  return {FEATURES: features, HAS_IMAGES: np.asarray(arrays[HAS_IMAGES])}


def load_or_compute(directory: str, ident: dict[str, Any], compute_fn: Callable[[], dict]):
  """The cache in `directory`, made by `compute_fn()` if there is none yet.

  Host 0 writes it; the other hosts read it (or, without a shared file
  system, write their own copy of the same arrays).

  Raises:
    UserError if the cache there was made by another CLIP or other data.
  """
  dtype = ident["dtype"]
  if dtype not in DTYPES:
    raise UserError(f"image feature dtype {dtype!r}; use one of {', '.join(DTYPES)}")
  cached = feature_cache.load(directory, ident)
  if not parallel.any_process(cached is None):
    return _from_disk(cached, dtype)
  arrays = compute_fn()  # Collectives: every host computes if any lacks the cache.
  if parallel.is_host0():
    feature_cache.save(directory, _to_disk(arrays), ident)
  parallel.wait_for_hosts("image feature cache written")
  cached = feature_cache.load(directory, ident)
  if cached is None:  # Not a shared file system: this host keeps its own copy.
    cached = feature_cache.save(directory, _to_disk(arrays), ident)
  return _from_disk(cached, dtype)


def for_split(config, workdir: str, source, loaded: hf_clip.LoadedCLIP, mesh):
  """F_I of every (shape, view) of a pre-training config's split, from its cache.

  The cache is `config.image_cache.dir` (empty: `default_dir`), computed with
  `loaded`'s image tower on the mesh on first use.

  Args:
    config: has `data` (name, split, data_dir), `clip.name`, `render.image_size`,
      `image_cache` (dir, dtype, batch_size) and `workers`.
    workdir: where an empty `data.data_dir` points.
    source: the split's examples (with `images` and `has_images`).

  Returns:
    ({"features": dtype[M, V, D], "has_images": bool[M]}, the cache's directory).
  """
  data_dir = splits.data_dir(config.data, workdir)
  options = registry.options_of(config.data)
  directory = config.image_cache.dir or default_dir(
      registry.dataset_dir(config.data.name, data_dir, options), config.clip.name, config.data.split,
      config.image_cache.dtype)
  vision = clip_lib.vision_params(loaded.params)
  ident = identity(
      clip_fingerprint=feature_cache.fingerprint(vision), dataset=config.data.name,
      split=config.data.split, num_examples=len(source),
      dataset_options=pretrain_data.dataset_identity(config.data.name, data_dir, config.data.split,
                                                     options),
      image_size=config.render.image_size, dtype=config.image_cache.dtype)
  tower = clip_lib.vision_tower(loaded.model)
  encode_image = lambda params, images: tower.apply({"params": params}, images)
  compute_fn = lambda: compute(
      source, encode_image, jax.device_put(vision, parallel.replicated(mesh)), mesh,
      image_size=config.render.image_size, batch_size=config.image_cache.batch_size,
      dtype=config.image_cache.dtype, workers=config.workers)
  return load_or_compute(directory, ident, compute_fn), directory
