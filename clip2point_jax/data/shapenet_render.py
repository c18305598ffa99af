"""Rendering ShapeNetCore v2 to CLIP2Point's pre-training views (the render task's library).

    index, count = shapenet_render.parse_shard("0/4")
    models = shapenet_render.list_models(lists_dir, ("train", "test"))[index::count]
    todo = shapenet_render.unfinished(models, shapenet_dir, out_dir, num_views, report)
    shapenet_render.render_all(todo, render, batch_size, report=report, advance=bar.update, ...)

Host threads (or processes) read and pack meshes while the device renders
earlier batches, and other threads encode and write the PNGs. Meshes are
batched by padded face count (powers of two), so only a few shapes compile.
Every PNG is written to a temporary name and renamed, so a model folder
holds only whole images, and a model with all its views is skipped on the
next run.
"""

import collections
import concurrent.futures
import json
import multiprocessing
import os
import threading
from typing import Callable, NamedTuple

import numpy as np

from clip2point_jax.core import paths
from clip2point_jax.data import rendered_views
from clip2point_jax.errors import UserError
from renderers import cameras
from renderers import mesh as mesh_renderer
from renderers import mesh_batch
from renderers import mesh_io
from renderers.errors import InputError

_LISTS = "ShapeNet-55"
_LIST_PARENTS = ("", "ShapeNet55-34", "ShapeNet55")
# Batches rendered but not yet written: bounds host memory.
MAX_WRITES_IN_FLIGHT = 4


class Job(NamedTuple):
  """One model to render: its id `<synset>_<model>`, its mesh file and its output folder."""
  model_id: str
  path: str
  folder: str


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
  if not models:
    raise UserError(f"{folder}: the lists {', '.join(f'{s}.txt' for s in splits)} name no models")
  return sorted(models)


def input_folders(config, workdir: str) -> tuple[str, str]:
  """(ShapeNetCore folder, output folder) of a render config, checked; the output folder is made.

  All local: trimesh reads the meshes by file name, and the PNGs are the
  manual_dir that preparing shapenet55 reads (copy that to a bucket after).
  """
  if not config.shapenet_dir:
    raise UserError("set config.shapenet_dir to the ShapeNetCore v2 folder "
                    "(<synset>/<model>/models/model_normalized.obj)")
  shapenet_dir = paths.require_local(config.shapenet_dir, "config.shapenet_dir", "rendering (trimesh)")
  if not os.path.isdir(shapenet_dir):
    raise UserError(f"config.shapenet_dir={shapenet_dir!r} is not a folder; point it at ShapeNetCore v2 "
                    "(<synset>/<model>/models/model_normalized.obj)")
  if not config.lists_dir:
    raise UserError("set config.lists_dir to the folder holding ShapeNet-55/{train,test}.txt")
  lists_dir = paths.require_local(config.lists_dir, "config.lists_dir", "rendering")
  if not os.path.isdir(lists_dir):
    raise UserError(f"config.lists_dir={lists_dir!r} is not a folder; point it at the folder holding "
                    f"{_LISTS}/{{train,test}}.txt (Point-BERT's ShapeNet55 download)")
  out_dir = (paths.require_local(config.out_dir, "config.out_dir", "rendering") if config.out_dir
             else os.path.join(paths.require_local(workdir, "--workdir", "rendering"), "rendering"))
  os.makedirs(out_dir, exist_ok=True)
  return shapenet_dir, out_dir


def render_options(config) -> dict:
  """`renderers.mesh.render`'s keyword arguments from a render config (errors name the field)."""
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
  if config.edge_rule not in mesh_renderer.EDGE_RULES:
    raise UserError(f"config.edge_rule={config.edge_rule!r}; use "
                    f"{' or '.join(mesh_renderer.EDGE_RULES)}")
  return dict(image_size=int(config.image_size), camera=camera, light=light,
              background=tuple(float(v) for v in config.background),
              distance=float(config.distance), edge_rule=config.edge_rule)


def is_finished(folder: str, num_views: int) -> bool:
  """Whether `folder` holds every view's PNG (each is whole: they are written by renaming)."""
  return all(os.path.isfile(os.path.join(folder, f"{k}.png")) for k in range(num_views))


def write_png_atomically(path: str, image: np.ndarray):
  """uint8[H, W, 3] as a PNG at `path`, never half-written: a temporary file, then a rename."""
  tmp = f"{path}.tmp.{os.getpid()}.{threading.get_ident()}"
  with open(tmp, "wb") as f:
    f.write(rendered_views.png_bytes(image))
  os.replace(tmp, path)


class Report:
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


def unfinished(models, shapenet_dir: str, out_dir: str, num_views: int, report: Report) -> list[Job]:
  """The models without all their views yet; the others are counted as already done."""
  todo = []
  for synset, model in models:
    folder = os.path.join(out_dir, f"{synset}_{model}")
    if is_finished(folder, num_views):
      report.count("already_done")
    else:
      todo.append(Job(f"{synset}_{model}", mesh_io.shapenet_path(shapenet_dir, synset, model), folder))
  return todo


def check_meshes_exist(todo: list[Job], shapenet_dir: str) -> None:
  """Raises UserError when none of the jobs' mesh files exists: a wrong ShapeNetCore folder,
  which would otherwise fail every model one by one."""
  if todo and not any(os.path.isfile(job.path) for job in todo):
    raise UserError(f"none of the {len(todo)} listed models to render is in config.shapenet_dir="
                    f"{shapenet_dir!r} (no {todo[0].path}); point it at ShapeNetCore v2, which holds "
                    "<synset>/<model>/models/model_normalized.obj")


def check_not_all_failed(todo: list[Job], report: Report) -> None:
  """Raises UserError when every model to render failed (the run then did nothing)."""
  if todo and report.data["rendered"] == 0:
    raise UserError(f"all {len(todo)} models to render failed; the reasons are in {report.path}")


def load_packed(path: str, atlas_size: int):
  """Reads, normalises and packs one mesh; returns (packed, warnings) or raises."""
  mesh = mesh_batch.normalize(mesh_io.load_mesh(path))
  return mesh_batch.pack_mesh(mesh, atlas_size=atlas_size), mesh.warnings


def loader_pool(loader: str, workers: int) -> concurrent.futures.Executor:
  """Processes (the default: mesh parsing holds the GIL) or threads that read meshes."""
  workers = max(1, int(workers))
  if loader == "threads":
    return concurrent.futures.ThreadPoolExecutor(workers)
  if loader == "processes":
    # Spawned, not forked: the parent's JAX runtime threads must not be copied.
    return concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
  raise UserError(f"config.loader={loader!r}; use processes or threads")


def render_all(todo: list[Job], render: Callable, batch_size: Callable[[int], int], *, report: Report,
               advance: Callable[[], None], num_views: int, atlas_size: int, loader: str = "processes",
               load_workers: int = 8, write_workers: int = 4) -> None:
  """Renders and writes every job; a mesh or batch that fails is reported, never stops the run.

  Args:
    todo: the jobs, in order.
    render: `(items [(Job, packed mesh)]) -> uint8[B, V, S, S, 3]` on the device
      (not yet fetched); all items share one padded face and atlas size.
    batch_size: meshes per batch for a padded face count.
    report: counts renders, failures and mesh warnings.
    advance: called once per finished job (rendered or failed), from any thread.
  """
  pool = loader_pool(loader, load_workers)
  writer = concurrent.futures.ThreadPoolExecutor(max(1, int(write_workers)))
  writes = collections.deque()
  advance_lock = threading.Lock()

  def done():
    with advance_lock:
      advance()

  def fail_batch(items, error):
    for job, _ in items:
      report.fail(job.model_id, job.path, f"rendering failed: {type(error).__name__}: {error}")
      done()

  def write(items, rgb8):
    try:
      images = np.asarray(rgb8)  # Waits for the device here, not in the main thread.
    except Exception as e:  # pylint: disable=broad-except  # e.g. out of device memory
      fail_batch(items, e)
      return
    for b, (job, _) in enumerate(items):
      os.makedirs(job.folder, exist_ok=True)
      for k in range(num_views):
        write_png_atomically(os.path.join(job.folder, f"{k}.png"), images[b, k])
      report.count("rendered")
      done()

  def flush(items):
    try:
      rgb8 = render(items)
    except Exception as e:  # pylint: disable=broad-except
      fail_batch(items, e)
      return
    writes.append(writer.submit(write, items, rgb8))
    while len(writes) > MAX_WRITES_IN_FLIGHT:
      writes.popleft().result()

  prefetch = max(4, 4 * int(load_workers))
  pending = collections.deque()
  buckets = collections.defaultdict(list)
  queue = iter(todo)
  try:
    while True:
      while len(pending) < prefetch:
        job = next(queue, None)
        if job is None:
          break
        pending.append((job, pool.submit(load_packed, job.path, atlas_size)))
      if not pending:
        break
      job, future = pending.popleft()
      try:
        packed, warnings = future.result()
      except Exception as e:  # pylint: disable=broad-except  # A bad mesh never stops the run.
        report.fail(job.model_id, job.path, str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}")
        done()
        continue
      report.warn(job.model_id, warnings)
      key = (packed.mask.shape[1], packed.atlas.shape[1])
      buckets[key].append((job, packed))
      if len(buckets[key]) == batch_size(key[0]):
        flush(buckets.pop(key))
    for key in list(buckets):
      flush(buckets.pop(key))
    while writes:
      writes.popleft().result()
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
    writer.shutdown(wait=True)
