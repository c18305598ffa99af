"""Figures of a dataset's RGB views beside the depth maps of its clouds.

Writes `views.png` (one shape, every view: RGB above depth) and `classes.png`
(one shape per class: an RGB view beside its depth map), as the CLIP2Point
supplementary's Figs. 1-4 show ShapeNet.
"""

import os

import jax.numpy as jnp
import numpy as np

from clip2point_jax import validation
from clip2point_jax.core import plots
from clip2point_jax.core import paths as storage  # `paths` names other things in tasks
from clip2point_jax.data import splits
from clip2point_jax.data.builders import shapenet55
from clip2point_jax.errors import UserError
from clip2point_jax.projection import encode, settings
from renderers import cameras


def view_name(elevation: float, azimuth: float) -> str:
  """A label for a view from its camera position: +z front, +x right, +y top."""
  position = np.asarray(cameras.camera_position(elevation, azimuth))
  parts = []
  for axis, (plus, minus) in ((1, ("top", "bottom")), (2, ("front", "back")),
                              (0, ("right", "left"))):
    if abs(position[axis]) > 0.3:
      parts.append(plus if position[axis] > 0 else minus)
  return "-".join(parts)


def _images(example, shape_id: str, num_views: int) -> np.ndarray:
  if not example.get("has_images", False) or len(example.get("images", ())) == 0:
    raise UserError(f"shape {shape_id} has no rendered images; prepare the dataset with its "
                    "renderings (see docs/rendering.md)")
  images = shapenet55.decode_renderings(example["images"])
  if len(images) != num_views:
    raise UserError(f"shape {shape_id} has {len(images)} images but config.views lists {num_views}")
  return images


def depth_maps(config, points: np.ndarray, views) -> np.ndarray:
  """float32[B, V, S, S] depth maps of clouds float32[B, N, 3] from `views`, as `config.render` projects them."""
  projection = settings.from_config(config.render, views)
  return np.asarray(encode.depth_maps(jnp.asarray(points[:, :config.data.num_points]), projection))


def run(config, workdir: str) -> dict:
  """Writes views.png and classes.png; returns their paths."""
  validation.check_task(config)
  storage.path(workdir).mkdir(parents=True, exist_ok=True)
  # 1. Mesh: one device renders a few clouds.
  # 2. Data: a prepared split with images (primitives are prepared on first use).
  source, class_names = splits.load(config.data, config.data.split, workdir)
  views = cameras.views_array(config.views)
  index = _find_shape(source, config.shape_id) if config.shape_id else int(config.shape)
  if not 0 <= index < len(source):
    raise UserError(f"config.shape={config.shape} is out of range [0, {len(source)})")
  if not 0 <= config.view < len(views):
    raise UserError(f"config.view={config.view} is out of range [0, {len(views)})")
  labels = ["{} ({:g}, {:g})".format(view_name(*v), *v) for v in views.tolist()]

  # 3. Model, 4. step: the projector alone. 5. Restore: nothing to restore.
  # 6. Evals and 7. loop: depth maps of the chosen shapes, drawn beside their images.
  example = source[index]
  shape_id = _shape_id(example)
  images = _images(example, shape_id, len(views))
  depth = depth_maps(config, example["points"][None], views)[0]
  views_path = os.path.join(workdir, "views.png")
  plots.save_view_grid(images, depth, views_path, view_titles=labels,
                       title=f"{class_names[int(example['label'])]}: {shape_id}")

  firsts = {}
  for i in range(len(source)):
    label = int(source[i]["label"])
    if label not in firsts and source[i].get("has_images", False):
      firsts[label] = i
    if len(firsts) == min(len(class_names), config.max_classes):
      break
  if not firsts:
    raise UserError(f"no shape of {config.data.name}/{config.data.split} has rendered images")
  picks = [firsts[k] for k in sorted(firsts)][:config.max_classes]
  rgb = np.stack([_images(source[i], _shape_id(source[i]), len(views))[config.view] for i in picks])
  points = np.stack([source[i]["points"] for i in picks])
  pair_depth = depth_maps(config, points, views[config.view:config.view + 1])[:, 0]
  classes_path = os.path.join(workdir, "classes.png")
  plots.save_image_depth_pairs(rgb, pair_depth, [class_names[int(source[i]["label"])] for i in picks],
                               classes_path)
  print(f"wrote {views_path} ({len(views)} views of {shape_id}) and {classes_path} "
        f"({len(picks)} classes, view {labels[config.view]})")
  return {"views": views_path, "classes": classes_path}


def _find_shape(source, shape_id: str) -> int:
  for i in range(len(source)):
    if _shape_id(source[i]) == shape_id:
      return i
  raise UserError(f"config.shape_id={shape_id!r} is not in the split")


def _shape_id(example) -> str:
  shape_id = example.get("id", "")
  return shape_id.decode() if isinstance(shape_id, bytes) else str(shape_id)
