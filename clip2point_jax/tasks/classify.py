"""Classify your own point-cloud or mesh files with your own class names.

Prints a table of the top predictions per file and writes `predictions.json`
and `depth_maps.png` (the views of the first few files) to the workdir.
"""

import os

import numpy as np

from clip2point_jax import validation
from clip2point_jax.core import parallel
from clip2point_jax.core import paths as storage  # `paths` names other things in tasks
from clip2point_jax.data import splits
from clip2point_jax.errors import UserError
from clip2point_jax.loading import classifier, tiny_clip, trained_settings
from clip2point_jax.projection import zeroshot
from clip2point_jax.training import evaluate, loop


def run(config, workdir: str) -> list:
  """Returns one {"file", "predictions": [(class, probability), ...]} per file."""
  validation.check_task(config)
  storage.path(workdir).mkdir(parents=True, exist_ok=True)
  # A trained model's own CLIP and render settings; an empty clip.name then: a tiny random CLIP.
  trained_settings.fill_in(config)
  tiny_clip.use_if_unnamed(config, workdir, "classify", note=", so its guesses are random")
  # 1. Mesh.
  mesh = parallel.make_mesh()

  # 2. Data: every file matching any of the comma-separated globs.
  class_names = tuple(c.strip() for c in config.classes.split(",") if c.strip())
  paths = sorted({p for pattern in config.inputs.split(",") if pattern.strip()
                  for p in splits.expand_files(pattern.strip())})
  if not paths:
    raise UserError("config.inputs is empty; give a glob such as 'clouds/*.ply'")
  points = splits.read_files(paths, config.data.num_points, config.data.seed)
  source = splits.ArraySource(points, np.zeros(len(paths), np.int32), paths)

  # 3. Model and 4. step: zero-shot's points -> logits function.
  classify, params, text_features = classifier.load_classifier(config, class_names, mesh)

  # 5. Restore: nothing to restore.

  # 6. Evals and 7. loop: one pass over the files.
  logits, _, _ = evaluate.predict(classify, params, text_features, source, config, mesh, desc="classify")
  # At the temperature the classifier was trained with, not a softmax of raw cosines.
  scale = classifier.probability_scale(config, params)
  top = zeroshot.top_predictions(scale * logits, class_names, k=min(config.top_k, len(class_names)))
  results = [{"file": p, "predictions": [[name, prob] for name, prob in t]} for p, t in zip(paths, top)]
  if loop.is_host0():
    storage.write_json(os.path.join(workdir, "predictions.json"),
                       {"classes": list(class_names), "clip": config.clip.name, "results": results}, indent=2)
    count = min(config.num_grid_clouds, len(paths))
    evaluate.save_depth_grid(config, source, [os.path.basename(p) for p in paths[:count]],
                             range(count), os.path.join(workdir, "depth_maps.png"))
    _print_table(results)
    print(f"wrote predictions.json and depth_maps.png to {workdir}")
  return results


def _print_table(results):
  width = min(max(len(r["file"]) for r in results), 60)
  for r in results:
    name = r["file"] if len(r["file"]) <= width else "..." + r["file"][-(width - 3):]
    guesses = "  ".join(f"{c} {100 * p:5.1f}%" for c, p in r["predictions"])
    print(f"{name:<{width}}  {guesses}")
