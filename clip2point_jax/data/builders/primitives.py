"""The built-in procedural dataset as a TFDS builder, like the real ones.

It needs no manual_dir: shapes come from `data.primitives.generate`, seeded,
so the demo and the tests go through the same path as downloaded data.
"""

from typing import Optional

from clip2point_jax.data import primitives
from clip2point_jax.data.builders import base
from clip2point_jax.errors import UserError


class Primitives(base.PointCloudBuilder, skip_registration=True):
  """Clouds of simple solids (spheres, boxes, tori...), 8 classes."""

  name = "primitives"
  CLASS_NAMES = primitives.CLASS_NAMES
  DEFAULT_NUM_POINTS = 2048
  POINT_ORDER = "uniform"
  OPTIONS = ("num_points_stored", "seed", "num_per_class_train",
             "num_per_class_test")
  MANUAL_DIR_HINT = ""
  DESCRIPTION = "Procedural point clouds of simple solids; no download."
  DEFAULT_PER_CLASS = {"train": 64, "test": 16}

  def __init__(self, *, num_per_class_train: Optional[int] = None,
               num_per_class_test: Optional[int] = None, **kwargs):
    self._per_class = {
        "train": int(num_per_class_train or self.DEFAULT_PER_CLASS["train"]),
        "test": int(num_per_class_test or self.DEFAULT_PER_CLASS["test"])}
    if min(self._per_class.values()) <= 0:
      raise UserError(f"primitives: shapes per class must be positive, got "
                      f"{self._per_class}.")
    super().__init__(**kwargs)

  @property
  def options(self):
    return {**super().options,
            "num_per_class_train": self._per_class["train"],
            "num_per_class_test": self._per_class["test"]}

  def _splits(self, dl_manager):
    del dl_manager  # Nothing to read.
    return {s: self._generate_examples(s) for s in ("train", "test")}

  def _generate_examples(self, split):
    # Distinct seeds per split keep train and test shapes apart.
    split_seed = 2 * self._seed + (split == "test")
    points, labels = primitives.generate(self._per_class[split],
                                         self._num_points, split_seed)
    per_class = self._per_class[split]
    for k in self._progress(range(len(labels)), split):
      shape_id = f"{self.CLASS_NAMES[labels[k]]}_{k % per_class:04d}"
      yield shape_id, {"points": points[k], "label": labels[k],
                       "id": shape_id}
