"""The zero-shot comparison of CLIP2Point, PointCLIP and PointCLIP V2: per-method configs, timing, outputs.

`tasks/compare.py` runs each method through the same zero-shot classifier
(`loading.classifier`) on the same clouds and CLIP; this module builds each
method's config, times a classifier on the current device, and writes the
table (JSON, Markdown) and the figure of the three projections.

    cfg = compare.method_config(config, "pointclip_v2")   # render.mode, its views and recipe
    row = compare.row(cfg, method, recipe, metrics, seconds)
    compare.write_table(rows, header, workdir)             # compare.json, compare.md
"""

import copy
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.core import parallel, paths, plots
from clip2point_jax.core.plots import plt
from clip2point_jax.data import pipeline
from clip2point_jax.features import text
from clip2point_jax.loading import classifier
from clip2point_jax.projection import encode, recipes, settings

JSON_FILE, MARKDOWN_FILE, FIGURE_FILE = "compare.json", "compare.md", "projections.png"


def method_config(config, method: str):
  """A zero-shot config for one method: a copy of `config` with its render mode.

  CLIP2Point keeps the config's render mode (hard or soft), views, view
  weights and prompts. A PointCLIP gets its own mode and views, and empty view
  weights and CLIP2Point's default prompts, so its recipe's published ones
  score it (`classifier.zero_shot_recipe`).
  """
  cfg = copy.deepcopy(config)
  with cfg.unlocked():
    cfg.task = "zeroshot"
    if method != "clip2point":
      cfg.render.mode = recipes.METHOD_MODES[method]
      cfg.view_weights = ()
      cfg.prompts = tuple(text.DEFAULT_TEMPLATES)
  return cfg


def clouds_per_second(classify, params, text_features, source, config, mesh) -> float:
  """Clouds per second of `classify` over `source` on the current devices, compilation excluded.

  The first batch is classified once untimed (it compiles), then the whole
  split is timed as `evaluate.predict` feeds it, batches kept on the devices.
  """
  batch_size = pipeline.eval_batch_size(config.batch_size, len(source), mesh.devices.size)

  def batches():
    return pipeline.batches(source, global_batch_size=batch_size, num_points=config.data.num_points,
                            training=False, sampling=config.data.sampling, normalize_points=False)

  first = parallel.global_batch(mesh, next(batches()))  # No thread left behind for one batch.
  jax.block_until_ready(classify(params, text_features, first["points"]))
  start = time.perf_counter()
  outputs = [classify(params, text_features, batch["points"])
             for batch in pipeline.prefetch_to_device(batches(), mesh)]
  jax.block_until_ready(outputs)
  return len(source) / max(time.perf_counter() - start, 1e-9)


def row(cfg, method: str, recipe: recipes.Recipe, metrics: dict, speed: float) -> dict:
  """One method's line of the table."""
  return {"method": method, "render_mode": cfg.render.mode, "num_views": len(cfg.views),
          "views": [list(v) for v in cfg.views],
          "clip_normalize": settings.clip_normalizes(cfg.render.mode, cfg.render.clip_normalize),
          "top1_accuracy": metrics["top1_accuracy"], "mean_class_accuracy": metrics["mean_class_accuracy"],
          "per_class_accuracy": metrics["per_class_accuracy"], "clouds_per_second": speed,
          "recipe": recipe.record()}


def _pct(x) -> str:
  return "–" if x is None else f"{100 * x:.1f}"


def markdown(header: dict, rows: list[dict]) -> str:
  """The table as Markdown: one line per method, then per-class accuracy (%) per method."""
  lines = [f"Zero-shot on {header['dataset']}/{header['split']} ({header['num_examples']} clouds, "
           f"{header['num_classes']} classes), CLIP {header['clip']}, {header['device']}, {header['date']}",
           "",
           "| method | render.mode | views | top-1 % | mean class % | clouds/s | recipe |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
  for r in rows:
    rec = r["recipe"]
    note = ("**tuned on the test set**" if rec["tuned_on_test_set"]
            else "untuned stand-in (no published entry)" if not rec["published"]
            else "the config's prompts and weights" if r["method"] == "clip2point" else "published, not test-tuned")
    lines.append(f"| {r['method']} | {r['render_mode']} | {r['num_views']} | {_pct(r['top1_accuracy'])} | "
                 f"{_pct(r['mean_class_accuracy'])} | {r['clouds_per_second']:.1f} | {note} |")
  classes = list(rows[0]["per_class_accuracy"]) if rows else []
  lines += ["", "Per-class accuracy (%):", "",
            "| class | " + " | ".join(r["method"] for r in rows) + " |",
            "| --- |" + " --- |" * len(rows)]
  for c in classes:
    lines.append(f"| {c} | " + " | ".join(_pct(r["per_class_accuracy"].get(c)) for r in rows) + " |")
  return "\n".join(lines) + "\n"


def write_table(header: dict, rows: list[dict], workdir: str) -> tuple[str, str]:
  """Writes compare.json and compare.md into `workdir`; returns their paths."""
  json_path, md_path = os.path.join(workdir, JSON_FILE), os.path.join(workdir, MARKDOWN_FILE)
  paths.write_json(json_path, dict(header, rows=rows), indent=2)
  paths.path(md_path).write_text(markdown(header, rows))
  return json_path, md_path


def save_projections(images: dict[str, np.ndarray], titles: list[str], path: str) -> None:
  """The methods' views of the same clouds side by side: one row per (cloud, method), one column per view.

  Args:
    images: method -> float[B, V, S, S], one channel of what CLIP reads
      (`encode.depth_maps`); each map is drawn over its own value range, since
      PointCLIP's are raw depths on a black background.
    titles: B cloud names.
  """
  methods = list(images)
  cols = max(a.shape[1] for a in images.values())
  n_rows = len(titles) * len(methods)
  fig, axes = plt.subplots(n_rows, cols, figsize=(1.1 * cols, 1.15 * n_rows + 0.2), squeeze=False)
  for i, title in enumerate(titles):
    for m, method in enumerate(methods):
      r = i * len(methods) + m
      for j in range(cols):
        ax = axes[r, j]
        ax.set_xticks([])
        ax.set_yticks([])
        if j >= images[method].shape[1]:
          ax.axis("off")
          continue
        view = images[method][i, j]
        ax.imshow(view, cmap="gray", vmin=float(view.min()), vmax=max(float(view.max()), float(view.min()) + 1e-6))
      axes[r, 0].set_ylabel(f"{title}\n{method}", fontsize=6)
  fig.tight_layout()
  plots.save(fig, path, dpi=90)


def projections(cfgs: dict, source, indices) -> dict[str, np.ndarray]:
  """method -> float32[B, V, S, S]: each method's maps of `source[indices]` as its classifier renders them."""
  out = {}
  for method, cfg in cfgs.items():
    points = np.stack([source[int(i)]["points"][:cfg.data.num_points] for i in indices])
    out[method] = np.asarray(encode.depth_maps(jnp.asarray(points), classifier.render_settings(cfg)))
  return out
