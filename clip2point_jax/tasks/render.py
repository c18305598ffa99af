"""Renders ShapeNetCore v2 models to the 10 pre-training views; see configs/render.py.

A wrong ShapeNetCore or lists folder, or a run in which every model failed,
ends in a `UserError` (a non-zero exit), not in a report of failures only.

The pipeline (meshes read on host workers while the device renders earlier
batches, PNGs written atomically on other threads, meshes bucketed by padded
face count so only a few shapes compile) is `data/shapenet_render.py`; this
module wires one shard of a run together. Each shard's process shows its
own progress bar, whichever host it runs on.
"""

import os
import time

import jax
import numpy as np
from tqdm import tqdm

from clip2point_jax.core import paths
from clip2point_jax.data import shapenet_render
from renderers import cameras
from renderers import mesh as mesh_renderer
from renderers import mesh_batch


def run(config, workdir: str) -> dict:
  """Renders the shard's unfinished models; returns the report dict."""
  # Local: its PNGs are the manual_dir that preparing shapenet55 reads.
  workdir = paths.require_local(workdir, "--workdir", "the render task")
  os.makedirs(workdir, exist_ok=True)
  # 1. Mesh: one device; several GPUs or hosts each run a shard.
  device = jax.local_devices()[0]
  options = shapenet_render.render_options(config)
  views = cameras.views_array(config.views)

  # 2. Data: the models of the split lists, this shard's part.
  shapenet_dir, out_dir = shapenet_render.input_folders(config, workdir)
  index, count = shapenet_render.parse_shard(config.shard)
  models = shapenet_render.list_models(config.lists_dir, config.splits)[index::count]
  report_name = "render_report.json" if count == 1 else f"render_report_{index}_of_{count}.json"
  report = shapenet_render.Report(os.path.join(workdir, report_name), {
      "shapenet_dir": shapenet_dir, "out_dir": out_dir, "shard": f"{index}/{count}",
      "image_size": options["image_size"], "views": views.tolist(),
      "camera": config.camera, "light": config.light, "edge_rule": options["edge_rule"],
      "models_in_shard": len(models)})

  # 3. Model and 4. step: the jitted renderer, compiled once per batch shape.
  def batch_size(num_faces: int) -> int:
    return int(np.clip(int(config.faces_per_batch) // num_faces, 1, int(config.max_batch)))

  def render(items):
    packed = [p for _, p in items]
    batch = mesh_batch.stack(packed, batch_size(packed[0].mask.shape[1]))
    return mesh_renderer.render(jax.device_put(batch, device), views, **options).rgb8

  # 5. Restore: models with all their views are done; the rest are rendered.
  todo = shapenet_render.unfinished(models, shapenet_dir, out_dir, len(views), report)
  shapenet_render.check_meshes_exist(todo, shapenet_dir)

  # 6. Evals: none. 7. Loop: load on workers, render in buckets, write on threads.
  start = time.time()
  bar = tqdm(total=len(models), initial=len(models) - len(todo), desc="render", unit="model",
             smoothing=0.05, mininterval=1.0)
  try:
    shapenet_render.render_all(
        todo, render, batch_size, report=report, advance=lambda: bar.update(1), num_views=len(views),
        atlas_size=int(config.atlas_size), loader=config.loader, load_workers=int(config.load_workers),
        write_workers=int(config.write_workers))
  finally:
    bar.close()
    report.data["seconds"] = time.time() - start
    report.save()

  data = report.data
  print(f"render: {data['rendered']} models rendered, {data['already_done']} already done, "
        f"{len(data['failed'])} failed, {len(data['warnings'])} with warnings "
        f"({data['seconds']:.0f} s); report in {report.path}")
  shapenet_render.check_not_all_failed(todo, report)
  return data
