"""Running a classifier over a whole split, and pictures of what it sees."""

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.core import parallel, plots, throughput
from clip2point_jax.data import pipeline
from clip2point_jax.loading import classifier
from clip2point_jax.projection import encode


def predict(classify, params, text_features, source, config, mesh, desc="zero-shot"):
  """Logits and labels of every example of `source`, in order, on every host, and the pass's timing.

  Args:
    classify: `(params, text_features, points float32[B, N, 3]) -> float32[B, C]`, jitted.
    config: has `batch_size` (cut to the split's size where larger) and
      `data.num_points`, `data.sampling`.

  Returns:
    logits float32[M, C], labels int32[M] (numpy), and the timing dict
    {"seconds": the whole pass, "compile_seconds": the first batch's,
    "clouds_per_second": the steady rate (clouds after the first batch over
    their time; the whole pass's where the split is one batch, with
    "clouds_per_second_note" saying so), "clouds_per_second_overall": M / seconds}.
  """
  n = len(source)
  batch_size = _batch_size(config, source, mesh)
  # The classifier normalises on the device; the pipeline need not.
  batches = pipeline.prefetch_to_device(pipeline.batches(
      source, global_batch_size=batch_size, num_points=config.data.num_points, training=False,
      sampling=config.data.sampling, normalize_points=False), mesh)
  (logits, labels, keep), timer = pipeline.map_batches(
      lambda batch: (classify(params, text_features, batch["points"]), batch["label"], batch["mask"]),
      batches, total=pipeline.num_batches(n, batch_size, training=False), desc=desc,
      counts=lambda i: {"clouds": min(batch_size, n - i * batch_size)})  # the padding is not counted
  seconds = timer.elapsed()
  return logits[keep], labels[keep], {"seconds": seconds,
                                      **throughput.pass_fields(timer, "clouds", n, seconds)}


def _batch_size(config, source, mesh) -> int:
  return pipeline.eval_batch_size(config.batch_size, len(source), mesh.devices.size)


def compile_for_predict(classify, params, text_features, source, config, mesh) -> None:
  """Compiles `classify` for the batches `predict` will give it, without running it.

  JAX keeps the program, so `predict` with arguments of the same layout
  compiles nothing. Safe to run in a background thread while steps run.

  Args:
    params, text_features: arrays, or `jax.ShapeDtypeStruct`s with the
      shardings the real ones will have.
  """
  batch_size = _batch_size(config, source, mesh)
  points = jax.ShapeDtypeStruct((batch_size, config.data.num_points, 3), jnp.float32,
                                sharding=parallel.data_sharding(mesh))
  classify.lower(params, text_features, points).compile()


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
