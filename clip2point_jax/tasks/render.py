"""Renders ShapeNetCore v2 models to the 10 pre-training views; see configs/render.py.

Host threads read and pack meshes while the device renders earlier batches,
and other threads encode and write the PNGs. Meshes are batched by padded
face count (powers of two), so only a few shapes compile. Every PNG is
written to a temporary name and renamed, so a model folder holds only whole
images, and a model with all its views is skipped on the next run.
"""

import collections
import concurrent.futures
import io
import json
import multiprocessing
import os
import threading
import time

import jax
import numpy as np
from PIL import Image
from tqdm import tqdm

from clip2point_jax.errors import UserError
from renderers import cameras
from renderers import mesh as mesh_renderer
from renderers import mesh_batch
from renderers import mesh_io
from renderers.errors import InputError

_LISTS = "ShapeNet-55"
_LIST_PARENTS = ("", "ShapeNet55-34", "ShapeNet55")


def parse_shard(text: str) -> tuple[int, int]:
  """'i/n' -> (i, n) with 0 <= i < n."""
  try:
    index, count = (int(p) for p in str(text).split("/"))
  except ValueError:
    raise UserError(f"config.shard={text!r} must look like i/n, e.g. 0/4") from None
  if not 0 <= index < count:
    raise UserError(f"config.shard={text!r}: need 0 <= i < n")
  return index, count


def list_models(lists_dir: str, splits) -> list[tuple[str, str]]:
  """Sorted unique (synset, model) pairs of ShapeNet-55's split lists."""
  lists_dir = os.path.expanduser(lists_dir)
  folder = next((os.path.join(lists_dir, p, _LISTS) for p in _LIST_PARENTS
                 if os.path.isdir(os.path.join(lists_dir, p, _LISTS))), None)
  if folder is None:
    raise UserError(f"config.lists_dir={lists_dir!r} has no {_LISTS}/ folder (nor in "
                    f"{' or '.join(p for p in _LIST_PARENTS if p)}/); it comes with Point-BERT's "
                    "ShapeNet55 download.")
  models = set()
  for split in splits:
    path = os.path.join(folder, f"{split}.txt")
    if not os.path.isfile(path):
      raise UserError(f"{path} is missing; config.splits={tuple(splits)}")
    with open(path) as f:
      for line in f:
        name = line.strip()
        if not name:
          continue
        shape_id = name[:-4] if name.endswith(".npy") else name
        synset, sep, model = shape_id.partition("-")
        if not sep or not synset or not model:
          raise UserError(f"{path}: line {name!r} is not <synset>-<model>.npy")
        models.add((synset, model))
  return sorted(models)


def _is_finished(folder: str, num_views: int) -> bool:
  return all(os.path.isfile(os.path.join(folder, f"{k}.png")) for k in range(num_views))


def _write_png_atomically(path: str, image: np.ndarray):
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="PNG")
  tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
  with open(tmp, "wb") as f:
    f.write(buffer.getvalue())
  os.replace(tmp, path)


def _render_options(config) -> dict:
  if config.camera == "orthographic":
    camera = cameras.ORTHOGRAPHIC
  elif config.camera == "perspective":
    camera = cameras.PerspectiveCamera(fov=float(config.fov))
  else:
    raise UserError(f"config.camera={config.camera!r}; use orthographic or perspective")
  if config.light == "headlight":
    light = mesh_renderer.Headlight()
  elif config.light == "directional":
    light = mesh_renderer.DirectionalLight(direction=tuple(float(v) for v in config.light_direction))
  else:
    raise UserError(f"config.light={config.light!r}; use headlight or directional")
  if int(config.image_size) < 8:
    raise UserError(f"config.image_size={config.image_size} is too small")
  return dict(image_size=int(config.image_size), camera=camera, light=light,
              background=tuple(float(v) for v in config.background),
              distance=float(config.distance))


def _load(path: str, atlas_size: int):
  """Reads, normalises and packs one mesh; returns (packed, warnings) or raises."""
  mesh = mesh_batch.normalize(mesh_io.load_mesh(path))
  return mesh_batch.pack_mesh(mesh, atlas_size=atlas_size), mesh.warnings


def _loader_pool(config):
  """Processes (the default: mesh parsing holds the GIL) or threads that read meshes."""
  workers = max(1, int(config.load_workers))
  if config.loader == "threads":
    return concurrent.futures.ThreadPoolExecutor(workers)
  if config.loader == "processes":
    # Spawned, not forked: the parent's JAX runtime threads must not be copied.
    return concurrent.futures.ProcessPoolExecutor(
        workers, mp_context=multiprocessing.get_context("spawn"))
  raise UserError(f"config.loader={config.loader!r}; use processes or threads")


class _Report:
  """Failures and warnings, written as JSON (atomically) as the run goes."""

  def __init__(self, path: str, settings: dict):
    self.path = path
    self.data = {"settings": settings, "rendered": 0, "already_done": 0, "failed": [],
                 "warnings": [], "seconds": 0.0}
    self.lock = threading.Lock()

  def fail(self, model_id: str, path: str, reason: str):
    with self.lock:
      self.data["failed"].append({"id": model_id, "file": path, "reason": reason})

  def warn(self, model_id: str, warnings):
    if warnings:
      with self.lock:
        self.data["warnings"].append({"id": model_id, "warnings": list(warnings)})

  def count(self, key: str, n: int = 1):
    with self.lock:
      self.data[key] += n

  def save(self):
    with self.lock:
      text = json.dumps(self.data, indent=2)
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, self.path)


def run(config, workdir: str) -> dict:
  """Renders the shard's unfinished models; returns the report dict."""
  os.makedirs(workdir, exist_ok=True)
  # 1. Mesh: one device; several GPUs or hosts each run a shard.
  device = jax.local_devices()[0]
  options = _render_options(config)
  views = cameras.views_array(config.views)
  num_views = len(views)

  # 2. Data: the models of the split lists, this shard's part, minus finished ones.
  if not config.shapenet_dir:
    raise UserError("set config.shapenet_dir to the ShapeNetCore v2 folder "
                    "(<synset>/<model>/models/model_normalized.obj)")
  shapenet_dir = os.path.expanduser(config.shapenet_dir)
  if not os.path.isdir(shapenet_dir):
    raise UserError(f"config.shapenet_dir={shapenet_dir!r} is not a folder")
  if not config.lists_dir:
    raise UserError("set config.lists_dir to the folder holding ShapeNet-55/{train,test}.txt")
  index, count = parse_shard(config.shard)
  out_dir = os.path.expanduser(config.out_dir) if config.out_dir else os.path.join(workdir, "rendering")
  os.makedirs(out_dir, exist_ok=True)
  models = list_models(config.lists_dir, config.splits)[index::count]
  report_name = "render_report.json" if count == 1 else f"render_report_{index}_of_{count}.json"
  report = _Report(os.path.join(workdir, report_name), {
      "shapenet_dir": shapenet_dir, "out_dir": out_dir, "shard": f"{index}/{count}",
      "image_size": options["image_size"], "views": views.tolist(),
      "camera": config.camera, "light": config.light, "models_in_shard": len(models)})
  todo = []
  for synset, model in models:
    folder = os.path.join(out_dir, f"{synset}_{model}")
    if _is_finished(folder, num_views):
      report.count("already_done")
    else:
      todo.append((f"{synset}_{model}", mesh_io.shapenet_path(shapenet_dir, synset, model), folder))

  # 3-4. Model and step: the jitted renderer, compiled once per batch shape.
  def batch_size(num_faces: int) -> int:
    return int(np.clip(int(config.faces_per_batch) // num_faces, 1, int(config.max_batch)))

  def render(items):
    packed = [p for _, p in items]
    batch = mesh_batch.stack(packed, batch_size(packed[0].mask.shape[1]))
    return mesh_renderer.render(jax.device_put(batch, device), views, **options).rgb8

  # 5. Checkpoint restore: finished models were skipped above.
  # 6-7. Loop: load on threads, render in buckets, write on threads.
  start = time.time()
  bar = tqdm(total=len(models), initial=len(models) - len(todo), desc="render", unit="model",
             smoothing=0.05, mininterval=1.0)
  loader = _loader_pool(config)
  writer = concurrent.futures.ThreadPoolExecutor(max(1, int(config.write_workers)))
  writes = collections.deque()
  bar_lock = threading.Lock()

  def advance():
    with bar_lock:
      bar.update(1)

  def fail_batch(items, error):
    for (model_id, path, _), _ in items:
      report.fail(model_id, path, f"rendering failed: {type(error).__name__}: {error}")
      advance()

  def write(items, rgb8):
    try:
      images = np.asarray(rgb8)  # Waits for the device here, not in the main thread.
    except Exception as e:  # pylint: disable=broad-except  # e.g. out of device memory
      fail_batch(items, e)
      return
    for b, ((model_id, _, folder), _) in enumerate(items):
      os.makedirs(folder, exist_ok=True)
      for k in range(num_views):
        _write_png_atomically(os.path.join(folder, f"{k}.png"), images[b, k])
      report.count("rendered")
      advance()

  def flush(items):
    try:
      rgb8 = render(items)
    except Exception as e:  # pylint: disable=broad-except
      fail_batch(items, e)
      return
    writes.append(writer.submit(write, items, rgb8))
    while len(writes) > 4:  # Bounds host memory: at most a few batches in flight.
      writes.popleft().result()

  prefetch = max(4, 4 * int(config.load_workers))
  pending = collections.deque()
  buckets = collections.defaultdict(list)
  queue = iter(todo)
  try:
    while True:
      while len(pending) < prefetch:
        item = next(queue, None)
        if item is None:
          break
        pending.append((item, loader.submit(_load, item[1], int(config.atlas_size))))
      if not pending:
        break
      (model_id, path, folder), future = pending.popleft()
      try:
        packed, warnings = future.result()
      except Exception as e:  # pylint: disable=broad-except  # A bad mesh never stops the run.
        reason = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
        report.fail(model_id, path, reason)
        advance()
        continue
      report.warn(model_id, warnings)
      key = (packed.mask.shape[1], packed.atlas.shape[1])
      buckets[key].append(((model_id, path, folder), packed))
      if len(buckets[key]) == batch_size(key[0]):
        flush(buckets.pop(key))
    for key in list(buckets):
      flush(buckets.pop(key))
    while writes:
      writes.popleft().result()
  finally:
    loader.shutdown(wait=True, cancel_futures=True)
    writer.shutdown(wait=True)
    bar.close()
    report.data["seconds"] = time.time() - start
    report.save()

  data = report.data
  print(f"render: {data['rendered']} models rendered, {data['already_done']} already done, "
        f"{len(data['failed'])} failed, {len(data['warnings'])} with warnings "
        f"({data['seconds']:.0f} s); report in {report.path}")
  return data
