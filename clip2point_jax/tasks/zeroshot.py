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
from tqdm import tqdm

from clip2point_jax.core import parallel
from clip2point_jax.training import metrics
from clip2point_jax.projection import preprocess
from clip2point_jax.data import pipeline, splits
from clip2point_jax.errors import UserError
from clip2point_jax.loading import depth_encoder, hf_clip, trained_gdpa
from clip2point_jax.projection import zeroshot
from clip2point_jax.core import plots
from renderers import points as projector


def load_clip(config) -> hf_clip.LoadedCLIP:
  """The CLIP of `config.clip` (`hf_clip.load_configured`), checked against the render settings."""
  loaded = hf_clip.load_configured(config.clip)
  size = loaded.config.vision.image_size
  if size != config.render.image_size:
    raise UserError(f"config.render.image_size={config.render.image_size} but the CLIP at "
                    f"{config.clip.name} takes {size}x{size} images")
  return loaded


def load_classifier(config, class_names, mesh, loaded=None):
  """The frozen CLIP as a jitted points -> logits function.

  With `config.gdpa` set, a trained GDPA instead; its checkpoint's CLIP,
  views, render settings and prompts then replace those of `config`. With
  `config.depth_encoder` set (a pre-training workdir or checkpoint), its
  trained depth encoder replaces CLIP's image tower.

  Args:
    loaded: the CLIP to use (default: load `config.clip`).

  Returns:
    classify: `(params, text_features, points float32[B, N, 3]) -> float32[B, C]`.
    params, text_features: replicated over the mesh; the text features are
      computed once here.
  """
  if config.get("gdpa"):
    trained_gdpa.adopt_settings(config)
    return trained_gdpa.load_classifier(config, class_names, mesh)
  loaded = loaded or load_clip(config)
  text_features = zeroshot.class_text_features(loaded, class_names, tuple(config.prompts))
  classify = zeroshot.make_classifier(
      zeroshot.clip_depth_encoder(loaded), views=config.views, view_weights=config.view_weights,
      image_size=config.render.image_size, radius=config.render.radius,
      distance=config.render.distance, align_modelnet=config.data.align_modelnet)
  params = loaded.params
  if config.get("depth_encoder"):
    params = depth_encoder.load_params(config.depth_encoder, loaded)
  replicated = parallel.replicated(mesh)
  return classify, jax.device_put(params, replicated), jax.device_put(text_features, replicated)


def predict(classify, params, text_features, source, config, mesh, desc="zero-shot"):
  """Logits and labels of every example of `source`, in order, on every host.

  Returns:
    logits float32[M, C], labels int32[M] (numpy), and the seconds it took.
  """
  batch_size = parallel.round_to_devices(config.batch_size, mesh)
  # The classifier normalises on the device; the pipeline need not.
  batches = pipeline.prefetch(pipeline.batches(
      source, global_batch_size=batch_size, num_points=config.data.num_points, training=False,
      sampling=config.data.sampling, normalize_points=False))
  outputs = []
  start = time.time()
  for local in tqdm(batches, total=pipeline.num_batches(len(source), batch_size, training=False),
                    desc=desc, unit="batch", disable=jax.process_index() != 0):
    batch = parallel.global_batch(mesh, local)
    # Kept on the device: fetching each batch would stall the dispatch queue.
    outputs.append((classify(params, text_features, batch["points"]), batch["label"], batch["mask"]))
  logits, labels, keep = (parallel.concat_to_host(o[i] for o in outputs) for i in range(3))
  return logits[keep], labels[keep], time.time() - start


def save_depth_grid(config, source, row_titles, indices, path):
  """The depth maps of `source[indices]`, as the classifier renders them."""
  points = np.stack([source[int(i)]["points"][:config.data.num_points] for i in indices])
  prepared = preprocess.prepare_points(jnp.asarray(points), jnp.ones(points.shape[:2], bool),
                                     config.data.align_modelnet)
  depth = projector.render_depth(prepared, config.views, image_size=config.render.image_size,
                                  radius=config.render.radius, distance=config.render.distance)
  plots.save_depth_grid(np.asarray(depth), path, row_titles=row_titles,
                        view_titles=[f"elev {e} azim {a}" for e, a in config.views])


def run(config, workdir: str) -> dict:
  """Evaluates zero-shot accuracy; returns the metrics dict it writes."""
  os.makedirs(workdir, exist_ok=True)
  # 1. Mesh.
  mesh = parallel.make_mesh()

  # 2. Data.
  source, class_names = splits.load(config.data, config.data.split, workdir)
  logging.info("%s/%s: %d clouds, %d classes", config.data.name, config.data.split,
               len(source), len(class_names))

  # 3. Model: the frozen CLIP; 4. step: points -> logits in one jit.
  classify, params, text_features = load_classifier(config, class_names, mesh)

  # 5. Checkpoint restore: nothing trained to restore; the weights are CLIP's.

  # 6. Evals, 7. loop: one pass over the split.
  logits, labels, seconds = predict(classify, params, text_features, source, config, mesh)
  result = metrics.classification_metrics(logits, labels, class_names)
  result.update(dataset=config.data.name, split=config.data.split, clip=config.clip.name,
                gdpa=config.get("gdpa", ""),
                depth_encoder=config.get("depth_encoder", ""),
                views=[list(v) for v in config.views], prompts=list(config.prompts),
                seconds=seconds, clouds_per_second=len(labels) / max(seconds, 1e-9))
  if jax.process_index() == 0:
    _write_outputs(config, workdir, source, class_names, result)
  return result


def _write_outputs(config, workdir, source, class_names, result):
  with open(os.path.join(workdir, "metrics.json"), "w") as f:
    json.dump(result, f, indent=2)
  plots.save_confusion_matrix(
      np.asarray(result["confusion_matrix"]), class_names,
      os.path.join(workdir, "confusion_matrix.png"),
      title=f"{'GDPA' if config.get('gdpa') else 'zero-shot'} {config.data.name}: top-1 {100 * result['top1_accuracy']:.1f}%")
  count = min(config.num_grid_clouds, len(source))
  if count:
    picks = np.linspace(0, len(source) - 1, count).astype(int)
    titles = [class_names[int(source[int(i)]["label"])] for i in picks]
    save_depth_grid(config, source, titles, picks, os.path.join(workdir, "depth_maps.png"))
  what = f"GDPA {config.gdpa}" if config.get("gdpa") else "zero-shot"
  print(f"\n{what} {config.data.name}/{config.data.split}: {result['num_examples']} clouds, "
        f"{len(class_names)} classes")
  if result.get("depth_encoder"):
    print(f"  depth encoder: {result['depth_encoder']}")
  print(f"  top-1 {100 * result['top1_accuracy']:.2f}%   top-5 {100 * result['top5_accuracy']:.2f}%   "
        f"mean class {100 * result['mean_class_accuracy']:.2f}%   "
        f"(chance {100 * result['chance_accuracy']:.2f}%)")
  print(f"  {result['clouds_per_second']:.1f} clouds/s; wrote metrics.json, confusion_matrix.png, "
        f"depth_maps.png to {workdir}")
