"""Per-view features of every cloud of a split, computed once with frozen encoders.

The caching pass renders each cloud's views and runs both GDPA encoders in
one jitted, sharded function per batch (`dual_path.make_view_encoder`), keeps
the outputs on the devices until the pass ends, then stores them with
`feature_cache` under an identity that names everything they depend on
(`split_identity`): both encoders' fingerprints, the dataset and its
preparation, the split, the views, the render and point settings and the
compute dtype.

    identity = view_features.split_identity(config, fingerprints, source, "train", data_root)
    timing = {}  # the caching pass's throughput, if it runs
    features = view_features.load_or_compute(cache_root, identity,
                                             lambda: view_features.compute(..., timing=timing))
    features["depth"], features["clip"]   # float32[M, V, D]
    features["label"]                     # int32[M]
"""

import hashlib
import json
import os
from typing import Any, Callable, Optional

import numpy as np
from absl import logging

from clip2point_jax.core import feature_cache, parallel, paths, throughput
from clip2point_jax.data import pipeline, registry
from clip2point_jax.loading import hf_clip
from clip2point_jax.projection import settings as render_settings

CACHE_VERSION = 1


def data_identity(data, source, root: str) -> dict[str, Any]:
  """What the split's clouds depend on: the prepared dataset's options and size."""
  identity = {"name": data.name, "examples": len(source)}
  if data.name in registry.DATASETS:
    identity["prepared"] = registry.metadata(data.name, root, registry.options_of(data)).get("options")
  return identity


def split_identity(config, fingerprints: dict[str, str], source, split: str, root: str) -> dict[str, Any]:
  """What one split's cached features depend on, from a few-shot config.

  The cache folder's name hashes this dict, so its keys and values must stay
  as earlier versions wrote them: the render block enters as
  `settings.identity`, which leaves out the projector fields added after
  a89c44e while they hold the values that version rendered with.

  Args:
    config: the few-shot / fine-tuning config (`data`, `views`, `render`, `clip`).
    fingerprints: `FrozenPaths.fingerprints` ({"depth_encoder", "clip_encoder"}).
    source: the split's examples; split: its name; root: the prepared dataset's folder.
  """
  return {"depth_encoder": fingerprints["depth_encoder"], "clip_encoder": fingerprints["clip_encoder"],
          "data": data_identity(config.data, source, root), "split": split,
          "views": [list(v) for v in config.views], "num_points": config.data.num_points,
          "sampling": config.data.sampling, "align_modelnet": config.data.align_modelnet,
          "render": render_settings.identity(config.render), "dtype": config.clip.dtype,
          "residual_dtype": hf_clip.resolve_residual_dtype(config.clip)}


def cache_dir(root: str, identity: dict[str, Any]) -> str:
  """`<root>/<dataset>-<split>-<hash of the identity>`: a new identity gets a new folder."""
  digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
  return os.path.join(paths.expand(root), f"{identity['data']['name']}-{identity['split']}-{digest}")


def compute(encode: Callable, frozen, source, *, mesh, batch_size: int, num_points: int,
            sampling: str = "first", shared: bool = False, desc: str = "caching features",
            timing: Optional[dict] = None) -> dict:
  """Both paths' per-view features of every example of `source`, in order.

  Args:
    encode: jitted `(frozen, points, mask) -> {"depth", "clip"}` features.
    frozen: the encoders' params, replicated over `mesh`.
    source: random access to {"points", "label"} examples.
    batch_size: clouds per global batch (rounded up to the device count).
    shared: the paths share weights; only "clip" is kept.
    timing: if given, filled with the pass's throughput: {"num_clouds",
      "seconds", "compile_seconds" (the first batch), "clouds_per_second"
      (steady, after the first batch; with one batch the whole pass's, and
      "clouds_per_second_note" says so), "clouds_per_second_overall"}.

  Returns:
    {"clip": float32[M, V, D], "depth": (unless shared), "label": int32[M]} as
    numpy arrays on every host.
  """
  n = len(source)
  batch_size = parallel.round_to_devices(batch_size, mesh)
  batches = pipeline.prefetch_to_device(pipeline.batches(
      source, global_batch_size=batch_size, num_points=num_points, training=False,
      sampling=sampling, normalize_points=False), mesh)
  keys = ("clip",) if shared else ("clip", "depth")
  (features, labels, keep), timer = pipeline.map_batches(
      lambda batch: ({k: v for k, v in encode(frozen, batch["points"], None).items() if k in keys},
                     batch["label"], batch["mask"]),
      batches, total=pipeline.num_batches(n, batch_size, training=False), desc=desc,
      counts=lambda i: {"clouds": min(batch_size, n - i * batch_size)})  # the padding is not counted
  result = {k: features[k][keep] for k in keys}
  result["label"] = labels[keep].astype(np.int32)
  seconds = timer.elapsed()
  fields = {"num_clouds": n, "seconds": seconds, **throughput.pass_fields(timer, "clouds", n, seconds)}
  logging.info("%s: %d clouds in %.1f s, %.1f clouds/s after the first batch (%.1f s, compiling)", desc, n,
               seconds, fields["clouds_per_second"], fields["compile_seconds"])
  if timing is not None:
    timing.update(fields)
  return result


def load_or_compute(root: str, identity: dict[str, Any], compute_fn: Callable[[], dict]) -> dict:
  """The cached features of `identity` under `root`, computing and storing them if missing.

  Returns:
    {"depth", "clip": float32[M, V, D], "label": int32[M]}; with shared
    weights "depth" is the same array as "clip".
  """
  identity = dict(identity, cache_version=CACHE_VERSION)
  directory = cache_dir(root, identity)
  arrays = feature_cache.load(directory, identity)
  if parallel.any_process(arrays is None):
    arrays = compute_fn()  # Collectives: every host computes if any lacks the cache.
    if parallel.is_host0():
      arrays = feature_cache.save(directory, arrays, identity)
      print(f"cached {identity['split']} features of {len(arrays['label'])} clouds in {directory}")
  else:
    print(f"using cached {identity['split']} features in {directory}")
  arrays = dict(arrays)
  arrays.setdefault("depth", arrays["clip"])
  return arrays
