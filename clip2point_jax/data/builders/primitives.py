"""The built-in procedural dataset as a TFDS builder, like the real ones.

It needs no manual_dir: shapes come from `data.primitives.generate`, seeded,
so the demo and the tests go through the same path as downloaded data.

Each shape also stores CLIP2Point's 10 pre-training views (224x224 RGB) of
the mesh its cloud was sampled from, drawn in a colour of its own, exactly as
shapenet55 stores renderings: `images` holds the 10 PNG files' bytes (decode
with `shapenet55.decode_renderings`) and `has_images` is true. The mesh is
centred and scaled by the stored cloud's mean and largest radius, the frame
the input pipeline gives the cloud, so view k of the images and depth view k
of the cloud show the shape in the same place (up to the cloud's noise and
to the pipeline using the first N of the S stored points).
`render_images=False` stores no images (faster on CPUs).
"""

from typing import Optional

import numpy as np
import tensorflow_datasets as tfds

from clip2point_jax.data import primitives
from clip2point_jax.data import rendered_views
from clip2point_jax.data.builders import base
from clip2point_jax.errors import UserError
from renderers import mesh_batch

# Meshes rendered per call of the jitted renderer.
_RENDER_BATCH = 8


class Primitives(base.PointCloudBuilder, skip_registration=True):
  """Clouds of simple solids (spheres, boxes, tori...), 8 classes."""

  name = "primitives"
  CLASS_NAMES = primitives.CLASS_NAMES
  DEFAULT_NUM_POINTS = 2048
  POINT_ORDER = "uniform"
  OPTIONS = ("num_points_stored", "seed", "num_per_class_train",
             "num_per_class_test", "render_images")
  MANUAL_DIR_HINT = ""
  DESCRIPTION = "Procedural point clouds of simple solids; no download."
  DEFAULT_PER_CLASS = {"train": 64, "test": 16}

  # Prepared on first use with a task's options: each option set gets its own
  # folder (`folder_name`), so presets that differ never refuse each other.
  NAMED_BY_OPTIONS = True

  @classmethod
  def folder_name(cls, options: dict) -> str:
    """"" for the default options (today's <data_dir>/primitives/<version>), else the
    non-default ones, e.g. "train8_test2_points512_noimages"."""
    given = {k: v for k, v in options.items() if v is not None}
    parts = [f"train{int(given.get('num_per_class_train') or cls.DEFAULT_PER_CLASS['train'])}",
             f"test{int(given.get('num_per_class_test') or cls.DEFAULT_PER_CLASS['test'])}",
             f"points{int(given.get('num_points_stored') or cls.DEFAULT_NUM_POINTS)}",
             f"seed{int(given.get('seed') or 0)}",
             "images" if given.get("render_images", True) else "noimages"]
    defaults = ["train64", "test16", f"points{cls.DEFAULT_NUM_POINTS}", "seed0", "images"]
    return "_".join(p for p, d in zip(parts, defaults) if p != d)

  def _create_builder_config(self, builder_config, version):
    # An options-named folder is a BuilderConfig TFDS does not know; it is ours,
    # so skip TFDS's "Using custom data configuration" warning.
    if isinstance(builder_config, tfds.core.BuilderConfig):
      return builder_config
    return super()._create_builder_config(builder_config, version)

  def _log_download_bytes(self):
    # Nothing is downloaded: TFDS's line would say "Downloading ... Unknown size".
    print(f"preparing the built-in shapes into {self.data_dir}...")

  def __init__(self, *, num_per_class_train: Optional[int] = None,
               num_per_class_test: Optional[int] = None,
               render_images: Optional[bool] = None, **kwargs):
    self._per_class = {
        "train": int(num_per_class_train or self.DEFAULT_PER_CLASS["train"]),
        "test": int(num_per_class_test or self.DEFAULT_PER_CLASS["test"])}
    if min(self._per_class.values()) <= 0:
      raise UserError(f"primitives: shapes per class must be positive, got "
                      f"{self._per_class}.")
    self._render_images = True if render_images is None else bool(render_images)
    super().__init__(**kwargs)

  @property
  def options(self):
    return {**super().options,
            "num_per_class_train": self._per_class["train"],
            "num_per_class_test": self._per_class["test"],
            "render_images": self._render_images}

  def _extra_features(self):
    return {
        "images": tfds.features.Tensor(shape=(None,), dtype=np.object_),
        "has_images": np.bool_,
    }

  def _splits(self, dl_manager):
    del dl_manager  # Nothing to read.
    return {s: self._generate_examples(s) for s in ("train", "test")}

  def _generate_examples(self, split):
    # Distinct seeds per split keep train and test shapes apart.
    split_seed = 2 * self._seed + (split == "test")
    points, labels, meshes = primitives.generate(
        self._per_class[split], self._num_points, split_seed, with_meshes=True)
    per_class = self._per_class[split]
    views = self._views(points, meshes) if self._render_images else None
    for k in self._progress(range(len(labels)), split):
      shape_id = f"{self.CLASS_NAMES[labels[k]]}_{k % per_class:04d}"
      images = rendered_views.png_bytes_many(next(views)) if views else []
      yield shape_id, {"points": points[k], "label": labels[k],
                       "id": shape_id, "images": np.array(images, dtype=object),
                       "has_images": bool(images)}

  @staticmethod
  def _views(points, meshes):
    """The 10 views of each shape's mesh, in the stored cloud's frame."""
    frames = []
    for cloud, (vertices, faces, color) in zip(points, meshes):
      center = cloud.mean(0)
      scale = np.linalg.norm(cloud - center, axis=1).max()
      mesh = mesh_batch.from_arrays(vertices, faces, color=color)
      frames.append(mesh_batch.normalize(mesh, center=center, scale=scale))
    return rendered_views.render_views(frames, batch_size=_RENDER_BATCH)
