"""Zero-shot classification of point clouds with CLIP on projected depth maps.

Writes to the workdir: `metrics.json` (top-1, top-5, mean class accuracy,
per-class accuracy, confusion matrix; the pass's throughput as
`evaluate.predict` times it: `seconds`, `compile_seconds` of the first batch,
`clouds_per_second` after it, `clouds_per_second_overall`),
`confusion_matrix.png` and `depth_maps.png` (the views of a few clouds as the
encoder sees them; none for a 3D encoder, `--config.depth_encoder` naming a
Point Transformer's pre-training workdir, which reads the points and
classifies with one feature per cloud).
"""

import os

import numpy as np
from absl import logging

from clip2point_jax import validation
from clip2point_jax.core import parallel, plots
from clip2point_jax.core import paths as storage  # `paths` names other things in tasks
from clip2point_jax.data import splits
from clip2point_jax.loading import classifier, point_encoder, tiny_clip, trained_settings
from clip2point_jax.training import evaluate, loop, metrics


def run(config, workdir: str) -> dict:
  """Evaluates zero-shot accuracy; returns the metrics dict it writes."""
  validation.check_task(config)
  storage.path(workdir).mkdir(parents=True, exist_ok=True)
  # A trained model's own CLIP and render settings (the command line has checked them);
  # an empty clip.name after that means a tiny random CLIP.
  trained_settings.fill_in(config)
  tiny_clip.use_if_unnamed(config, workdir, "zeroshot", note=", so expect about chance accuracy")
  # 1. Mesh.
  mesh = parallel.make_mesh()

  # 2. Data.
  source, class_names = splits.load(config.data, config.data.split, workdir)
  logging.info("%s/%s: %d clouds, %d classes", config.data.name, config.data.split,
               len(source), len(class_names))

  # 3. Model: the frozen CLIP (or a depth encoder, or a trained GDPA);
  # 4. step: points -> logits in one jit, projected as `config.render` says.
  loop.say(f"zeroshot: loading {config.clip.name} and the text features of {len(class_names)} classes…")
  classify, params, text_features = classifier.load_classifier(config, class_names, mesh)
  point = point_encoder.PARAMS_KEY in params  # A 3D encoder: one feature per cloud, no views.
  recipe = None if config.get("gdpa") or point else classifier.zero_shot_recipe(config)
  if recipe is not None:
    loop.say(f"zeroshot: {recipe.label()}")

  # 5. Restore: nothing trained to restore; the weights are CLIP's (or loaded in 3).

  # 6. Evals and 7. loop: one pass over the split.
  logits, labels, timing = evaluate.predict(classify, params, text_features, source, config, mesh)
  result = metrics.classification_metrics(logits, labels, class_names)
  result.update(dataset=config.data.name, split=config.data.split, clip=config.clip.name,
                gdpa=config.get("gdpa", ""),
                depth_encoder=config.get("depth_encoder", ""),
                encoder=point_encoder.POINT_TRANSFORMER if point else point_encoder.DEPTH,
                views=[list(v) for v in config.views], prompts=list(config.prompts),
                render=config.render.to_dict(), recipe=recipe.record() if recipe else None,
                **timing)
  if loop.is_host0():
    _write_outputs(config, workdir, source, class_names, result, draw_views=not point)
  return result


def _write_outputs(config, workdir, source, class_names, result, draw_views=True):
  storage.write_json(os.path.join(workdir, "metrics.json"), result, indent=2)
  plots.save_confusion_matrix(
      np.asarray(result["confusion_matrix"]), class_names,
      os.path.join(workdir, "confusion_matrix.png"),
      title=f"{'GDPA' if config.get('gdpa') else 'zero-shot'} {config.data.name}: top-1 {100 * result['top1_accuracy']:.1f}%")
  count = min(config.num_grid_clouds, len(source)) if draw_views else 0
  if count:
    picks = np.linspace(0, len(source) - 1, count).astype(int)
    titles = [class_names[int(source[int(i)]["label"])] for i in picks]
    loop.say(f"zeroshot: rendering the depth maps of {count} clouds for depth_maps.png…")
    evaluate.save_depth_grid(config, source, titles, picks, os.path.join(workdir, "depth_maps.png"))
  what = f"GDPA {config.gdpa}" if config.get("gdpa") else "zero-shot"
  print(f"\n{what} {config.data.name}/{config.data.split}: {result['num_examples']} clouds, "
        f"{len(class_names)} classes")
  if result.get("depth_encoder"):
    kind = "3D encoder" if result["encoder"] == point_encoder.POINT_TRANSFORMER else "depth encoder"
    print(f"  {kind}: {result['depth_encoder']}")
  print(f"  top-1 {100 * result['top1_accuracy']:.2f}%   top-5 {100 * result['top5_accuracy']:.2f}%   "
        f"mean class {100 * result['mean_class_accuracy']:.2f}%   "
        f"(chance {100 * result['chance_accuracy']:.2f}%)")
  drawn = ", depth_maps.png" if count else ""
  print(f"  {_speed(result)}; wrote metrics.json, confusion_matrix.png{drawn} to {workdir}")


def _speed(result) -> str:
  """"812.3 clouds/s after the first batch (compiling: 4.1 s)", or the one batch's rate, compiling included."""
  rate, compiling = result["clouds_per_second"], result["compile_seconds"]
  if result.get("clouds_per_second_note"):
    return f"{rate:.1f} clouds/s (one batch, its {compiling:.1f} s of compiling included)"
  return f"{rate:.1f} clouds/s after the first batch (compiling: {compiling:.1f} s)"
