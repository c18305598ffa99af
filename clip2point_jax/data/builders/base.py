"""What every point-cloud builder shares: features, options, skips, layout.

Builders store `points` float32[S, 3], `label` and `id` as array_record files
and are read back with `as_data_source()`; nothing here needs TensorFlow.
Broken shapes are skipped with a warning and listed in the dataset metadata
(`metadata.json` beside the records) under "skipped", never stored wrong.
"""

import inspect
import os
from typing import Any, Iterable, Optional, Sequence

from absl import logging
from etils import epath
import numpy as np
import tensorflow_datasets as tfds
from clip2point_jax.core import progress
from clip2point_jax.errors import UserError

_MAX_LISTED_SKIPS = 1000


class PointCloudBuilder(tfds.core.GeneratorBasedBuilder,
                        skip_registration=True):
  """Base of the builders; subclasses set the class attributes below.

  skip_registration: these names must not collide with TFDS's own catalogue,
  and are looked up through our registry instead.
  """

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  CLASS_NAMES: tuple[str, ...] = ()
  DEFAULT_NUM_POINTS = 2048
  # How stored points are ordered, so the first N are a good N-point cloud:
  # "uniform" (random order), "fps" (farthest point order) or "source".
  POINT_ORDER = "uniform"
  OPTIONS: tuple[str, ...] = ("num_points_stored", "seed")
  # A path shown in error messages and docs as the manual_dir to pass.
  MANUAL_DIR_HINT = "/path/to/unpacked/archive"
  DESCRIPTION = ""
  HOMEPAGE = ""
  CITATION = ""

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    # TFDS's own lookup needs the `importlib_resources` backport for classes
    # in a package, which we don't depend on; the plain file path suffices.
    return epath.Path(inspect.getfile(cls))

  def __init__(self, *, num_points_stored: Optional[int] = None,
               seed: int = 0, **kwargs):
    self._num_points = int(num_points_stored or self.DEFAULT_NUM_POINTS)
    if self._num_points <= 0:
      raise UserError(f"num_points_stored must be positive, got "
                      f"{num_points_stored}.")
    self._seed = int(seed)
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  @property
  def options(self) -> dict[str, Any]:
    """The choices that shape the stored data, recorded in the metadata."""
    values = {"num_points_stored": self._num_points, "seed": self._seed}
    return {k: values[k] for k in self.OPTIONS if k in values}

  # True: `registry` keeps each option set in a folder of its own (see
  # `folder_name`); False: one folder, rebuilt on request with other options.
  NAMED_BY_OPTIONS = False

  @classmethod
  def folder_name(cls, options: dict[str, Any]) -> str:
    """The options' sub-folder of <data_dir>/<name>; "" for the default options."""
    del options
    return ""

  def _log_download_bytes(self) -> None:
    # TFDS's line reads "Downloading and preparing dataset Unknown size"; ours
    # read local files (manual_dir) or make the shapes, and download nothing.
    print(f"preparing {self.name} into {self.data_dir}...")

  def _log_download_done(self) -> None:
    pass  # The tasks say where the data went.

  def _extra_features(self) -> dict[str, Any]:
    return {}

  def _info(self) -> tfds.core.DatasetInfo:
    features = {
        "points": tfds.features.Tensor(
            shape=(self._num_points, 3), dtype=np.float32),
        "label": tfds.features.ClassLabel(names=self.CLASS_NAMES),
        "id": tfds.features.Text(),
        **self._extra_features(),
    }
    return tfds.core.DatasetInfo(
        builder=self,
        description=self.DESCRIPTION,
        features=tfds.features.FeaturesDict(features),
        supervised_keys=("points", "label"),
        homepage=self.HOMEPAGE or None,
        citation=self.CITATION or None,
        metadata=tfds.core.MetadataDict(self._fresh_metadata()),
    )

  def _fresh_metadata(self) -> dict[str, Any]:
    return {"options": self.options, "point_order": self.POINT_ORDER,
            "skipped": {}}

  def _split_generators(self, dl_manager):
    # TFDS loads metadata.json of an existing copy into `info`; a rebuild
    # must not add its skips to the old ones.
    self.info.metadata.clear()
    self.info.metadata.update(self._fresh_metadata())
    return self._splits(dl_manager)

  def _splits(self, dl_manager) -> dict[str, Iterable[Any]]:
    """{split: example generator}; what `_split_generators` is elsewhere."""
    raise NotImplementedError

  def _manual_root(self, dl_manager, marker: str,
                   subdirs: Sequence[str] = ()) -> str:
    """The folder holding `marker`: manual_dir itself or one of `subdirs`."""
    try:
      manual = os.fspath(dl_manager.manual_dir)
    except AssertionError as e:  # TFDS's check for a missing manual_dir.
      raise UserError(f"{self.name}: {e}") from e
    for candidate in [manual] + [os.path.join(manual, s) for s in subdirs]:
      if os.path.exists(os.path.join(candidate, marker)):
        return candidate
    archives = sorted(f for f in os.listdir(manual)
                      if f.endswith((".zip", ".tar", ".tar.gz", ".tgz")))
    unpack = (f" It holds {', '.join(archives)}: unpack it there first."
              if archives else "")
    within = f" (or in one of {', '.join(subdirs)} inside it)" if subdirs else ""
    raise UserError(
        f"{self.name}: manual_dir {manual} has no {marker}{within}.{unpack}\n"
        f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")

  def _skip(self, split: str, shape_id: str, reason: str):
    """Leaves a broken shape out, loudly, and records it in the metadata."""
    logging.warning("%s %s: skipping %s: %s", self.name, split, shape_id,
                    reason)
    entry = self.info.metadata["skipped"].setdefault(
        split, {"count": 0, "shapes": []})
    entry["count"] += 1
    if len(entry["shapes"]) < _MAX_LISTED_SKIPS:
      entry["shapes"].append({"id": shape_id, "reason": reason})

  def _progress(self, items: Sequence[Any], split: str):
    # The first shape compiles the renderer (or warms the readers): no ETA from it.
    return progress.Progress(items, desc=f"{self.name} {split}", unit="shape", mininterval=1.0,
                             first_note="starting…")

  def _require_any(self, split: str, count: int, where: str):
    if not count:
      raise UserError(f"{self.name}: split {split!r} has no usable shapes in "
                      f"{where}; check manual_dir and the warnings above.")
