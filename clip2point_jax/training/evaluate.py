"""Running a classifier over a whole split, and pictures of what it sees."""

import time

import jax.numpy as jnp
import numpy as np

from clip2point_jax.core import parallel, plots
from clip2point_jax.data import pipeline
from clip2point_jax.loading import classifier
from clip2point_jax.projection import encode
from clip2point_jax.training import loop


def predict(classify, params, text_features, source, config, mesh, desc="zero-shot"):
  """Logits and labels of every example of `source`, in order, on every host.

  Args:
    classify: `(params, text_features, points float32[B, N, 3]) -> float32[B, C]`, jitted.
    config: has `batch_size` (cut to the split's size where larger) and
      `data.num_points`, `data.sampling`.

  Returns:
    logits float32[M, C], labels int32[M] (numpy), and the seconds it took.
  """
  batch_size = pipeline.eval_batch_size(config.batch_size, len(source), mesh.devices.size)
  # The classifier normalises on the device; the pipeline need not.
  batches = pipeline.prefetch(pipeline.batches(
      source, global_batch_size=batch_size, num_points=config.data.num_points, training=False,
      sampling=config.data.sampling, normalize_points=False))
  outputs = []
  start = time.time()
  for local in loop.progress(iterable=batches, desc=desc, unit="batch",
                             total=pipeline.num_batches(len(source), batch_size, training=False)):
    batch = parallel.global_batch(mesh, local)
    # Kept on the device: fetching each batch would stall the dispatch queue.
    outputs.append((classify(params, text_features, batch["points"]), batch["label"], batch["mask"]))
    parallel.wait_for_previous(outputs)
  logits, labels, keep = (parallel.concat_to_host(o[i] for o in outputs) for i in range(3))
  return logits[keep], labels[keep], time.time() - start


def save_depth_grid(config, source, row_titles, indices, path):
  """The depth maps of `source[indices]` exactly as `classifier.load_classifier(config)` renders them.

  Args:
    config: a zero-shot-style config (`render`, `views`, `view_weights`,
      `data.num_points`, `data.align_modelnet`); after `load_classifier`,
      which gives it a trained GDPA's settings where it names one.
    source: examples with `points` float32[N, 3].
    row_titles: one per index.
    path: the PNG to write.
  """
  settings = classifier.render_settings(config)
  points = np.stack([source[int(i)]["points"][:config.data.num_points] for i in indices])
  depth = encode.depth_maps(jnp.asarray(points), settings)
  plots.save_depth_grid(np.asarray(depth), path, row_titles=row_titles,
                        view_titles=[f"elev {e} azim {a}" for e, a in config.views])
