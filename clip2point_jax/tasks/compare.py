"""Zero-shot CLIP2Point, PointCLIP and PointCLIP V2 side by side: same clouds, same CLIP, one table.

Each method runs as the zero-shot task would run it with its `render.mode`
(its projector, views and published recipe: `loading.classifier`). Writes to
the workdir `compare.json` and `compare.md` (top-1, mean and per-class
accuracy, clouds/s on the current device, each recipe and whether it was
tuned on the test set) and `projections.png` (the methods' views of the same
clouds).
"""

import datetime
import os

import jax
import numpy as np

from clip2point_jax import validation
from clip2point_jax.core import parallel
from clip2point_jax.core import paths as storage  # `paths` names other things in tasks
from clip2point_jax.data import splits
from clip2point_jax.loading import classifier, hf_clip, tiny_clip
from clip2point_jax.training import compare, evaluate, loop, metrics


def run(config, workdir: str) -> dict:
  """Runs every method of `config.methods`; returns the table it writes ({..., "rows": [...]})."""
  validation.check_task(config)
  storage.path(workdir).mkdir(parents=True, exist_ok=True)
  tiny_clip.use_if_unnamed(config, workdir, "compare", note=", so expect about chance accuracy")
  # Each method's config and recipe first: a missing recipe fails before any work.
  cfgs = {m: compare.method_config(config, m) for m in config.methods}
  recipes = {m: classifier.zero_shot_recipe(cfg) for m, cfg in cfgs.items()}
  # 1. Mesh.
  mesh = parallel.make_mesh()

  # 2. Data: one split, the same clouds for every method.
  source, class_names = splits.load(config.data, config.data.split, workdir)

  # 3. Model: one CLIP, loaded once and shared by the methods.
  loop.say(f"compare: loading {config.clip.name}…")
  loaded = hf_clip.load_configured(config.clip, config.render.image_size)

  # 4. Step, 5. restore (nothing trained) and 6. evals, per method:
  #    its classifier (projector, views, recipe) in one jit, a pass over the split, a timed pass.
  rows = []
  for method, cfg in cfgs.items():
    loop.say(f"compare: {method} ({recipes[method].label()})…")
    classify, params, text = classifier.load_classifier(cfg, class_names, mesh, loaded=loaded)
    logits, labels, _ = evaluate.predict(classify, params, text, source, cfg, mesh, desc=method)
    speed = compare.clouds_per_second(classify, params, text, source, cfg, mesh)
    rows.append(compare.row(cfg, method, recipes[method],
                            metrics.classification_metrics(logits, labels, class_names), speed))

  # 7. Loop: none; the outputs.
  device = jax.devices()[0]
  header = {"dataset": config.data.name, "split": config.data.split, "clip": config.clip.name,
            "num_examples": len(labels), "num_classes": len(class_names),
            "device": f"{len(jax.devices())} x {device.device_kind} ({device.platform})",
            "date": datetime.date.today().isoformat()}
  if loop.is_host0():
    json_path, md_path = compare.write_table(header, rows, workdir)
    count = min(config.num_grid_clouds, len(source))
    if count:
      picks = np.linspace(0, len(source) - 1, count).astype(int)
      titles = [class_names[int(source[int(i)]["label"])] for i in picks]
      compare.save_projections(compare.projections(cfgs, source, picks), titles,
                               os.path.join(workdir, compare.FIGURE_FILE))
    _print(header, rows, workdir)
  return dict(header, rows=rows)


def _print(header, rows, workdir):
  print(f"\nzero-shot {header['dataset']}/{header['split']}: {header['num_examples']} clouds, "
        f"{header['num_classes']} classes, CLIP {header['clip']}, {header['device']}")
  for r in rows:
    rec = r["recipe"]
    warn = ("   recipe TUNED ON THE TEST SET" if rec["tuned_on_test_set"]
            else "   untuned recipe (none published)" if not rec["published"] else "")
    print(f"  {r['method']:<13} top-1 {100 * r['top1_accuracy']:6.2f}%   mean class "
          f"{100 * r['mean_class_accuracy']:6.2f}%   {r['clouds_per_second']:8.1f} clouds/s{warn}")
  print(f"  wrote {compare.JSON_FILE}, {compare.MARKDOWN_FILE}, {compare.FIGURE_FILE} to {workdir}")
