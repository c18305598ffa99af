"""Zero-shot classification of point clouds with CLIP on projected depth maps.

Writes to the workdir: `metrics.json` (top-1, top-5, mean class accuracy,
per-class accuracy, confusion matrix), `confusion_matrix.png` and
`depth_maps.png` (the views of a few clouds as the encoder sees them).
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging
from jax.experimental import multihost_utils
from tqdm import tqdm

from clip2point_jax import metrics, parallel, projection
from clip2point_jax.data import eval_data
from clip2point_jax.errors import UserError
from clip2point_jax.models import hf_clip, zeroshot
from clip2point_jax.utils import plots

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def _compute_dtype(name: str):
  if name not in DTYPES:
    raise UserError(f"config.clip.dtype={name!r}; use one of {', '.join(DTYPES)}")
  return DTYPES[name]


def run(config, workdir: str) -> dict:
  """Evaluates zero-shot accuracy; returns the metrics dict it writes."""
  # 1. Mesh.
  mesh = parallel.make_mesh()
  batch_size = parallel.round_to_devices(config.batch_size, mesh)

  # 2. Data.
  split = eval_data.load_eval_split(config.data)
  logging.info("%s/%s: %d clouds, %d classes", config.data.name, config.data.split,
               len(split.source), len(split.class_names))

  # 3. Model: the frozen CLIP, and the text features computed once.
  loaded = hf_clip.load_clip(config.clip.name, dtype=_compute_dtype(config.clip.dtype))
  if loaded.config.vision.image_size != config.render.image_size:
    raise UserError(
        f"config.render.image_size={config.render.image_size} but the CLIP at "
        f"{config.clip.name} takes {loaded.config.vision.image_size}x{loaded.config.vision.image_size} images")
  text_features = zeroshot.class_text_features(loaded, split.class_names, tuple(config.prompts))
  replicated = parallel.replicated(mesh)
  params = jax.device_put(loaded.params, replicated)
  text_features = jax.device_put(text_features, replicated)

  # 4. Step function: points -> logits, one jit.
  classify = zeroshot.make_classifier(
      zeroshot.clip_image_encoder(loaded), views=config.views, view_weights=config.view_weights,
      image_size=config.render.image_size, radius=config.render.radius,
      distance=config.render.distance, align_modelnet=config.data.align_modelnet)

  # 5. Checkpoint restore: nothing trained to restore; the weights are CLIP's.

  # 6. Evals: the loop over the whole split.
  all_logits, all_labels = [], []
  start = time.time()
  batches = eval_data.eval_batches(split.source, batch_size, seed=config.seed)
  for local in tqdm(batches, total=eval_data.num_batches(split.source, batch_size),
                    desc="zero-shot", unit="batch", disable=jax.process_index() != 0):
    batch = parallel.global_batch(mesh, local)
    logits = classify(params, text_features, batch["points"])
    keep = np.asarray(multihost_utils.process_allgather(batch["mask"], tiled=True))
    all_logits.append(np.asarray(multihost_utils.process_allgather(logits, tiled=True))[keep])
    all_labels.append(np.asarray(multihost_utils.process_allgather(batch["label"], tiled=True))[keep])
  seconds = time.time() - start

  # 7. Results.
  logits, labels = np.concatenate(all_logits), np.concatenate(all_labels)
  result = metrics.classification_metrics(logits, labels, split.class_names)
  result.update(dataset=config.data.name, split=config.data.split, clip=config.clip.name,
                views=[list(v) for v in config.views], prompts=list(config.prompts),
                seconds=seconds, clouds_per_second=len(labels) / max(seconds, 1e-9))
  if jax.process_index() == 0:
    _write_outputs(config, workdir, split, result)
  return result


def _write_outputs(config, workdir, split, result):
  with open(os.path.join(workdir, "metrics.json"), "w") as f:
    json.dump(result, f, indent=2)
  plots.save_confusion_matrix(
      np.asarray(result["confusion_matrix"]), split.class_names,
      os.path.join(workdir, "confusion_matrix.png"),
      title=f"zero-shot {config.data.name}: top-1 {100 * result['top1_accuracy']:.1f}%")
  count = min(config.num_grid_clouds, len(split.source))
  if count:
    picks = np.linspace(0, len(split.source) - 1, count).astype(int)
    points = np.stack([split.source[int(i)]["points"] for i in picks])
    labels = [split.class_names[int(split.source[int(i)]["label"])] for i in picks]
    prepared = zeroshot.prepare_points(jnp.asarray(points), jnp.ones(points.shape[:2], bool),
                                       config.data.align_modelnet)
    depth = projection.render_depth(prepared, config.views, image_size=config.render.image_size,
                                    radius=config.render.radius, distance=config.render.distance)
    plots.save_depth_grid(np.asarray(depth), os.path.join(workdir, "depth_maps.png"),
                          row_titles=labels, view_titles=[f"e{e} a{a}" for e, a in config.views])
  print(f"\nzero-shot {config.data.name}/{config.data.split}: {result['num_examples']} clouds, "
        f"{len(split.class_names)} classes")
  print(f"  top-1 {100 * result['top1_accuracy']:.2f}%   top-5 {100 * result['top5_accuracy']:.2f}%   "
        f"mean class {100 * result['mean_class_accuracy']:.2f}%   "
        f"(chance {100 * result['chance_accuracy']:.2f}%)")
  print(f"  {result['clouds_per_second']:.1f} clouds/s; wrote metrics.json, confusion_matrix.png, "
        f"depth_maps.png to {workdir}")
