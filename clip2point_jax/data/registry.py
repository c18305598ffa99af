"""The one entry point tasks use: dataset names, preparing and loading.

    source, class_names = registry.load_split("modelnet40", "test", data_dir)

`source` is a random-access TFDS data source (`len`, `source[i]` -> dict of
numpy values); feed it to `pipeline.batches`.
"""

import json
import os
import shlex
import shutil
from typing import Any, Optional

from absl import logging
import tensorflow_datasets as tfds

from clip2point_jax.data.builders import modelnet
from clip2point_jax.data.builders import modelnet_h5
from clip2point_jax.data.builders import primitives
from clip2point_jax.data.builders import scanobjectnn
from clip2point_jax.data.builders import shapenet55
from clip2point_jax.core.config_args import default_data_dir
from clip2point_jax.errors import UserError

_BUILDERS = {
    cls.name: cls for cls in (
        modelnet.ModelNet40, modelnet.ModelNet10, modelnet.ModelNet40Aligned,
        modelnet_h5.ModelNet40H5, scanobjectnn.ScanObjectNNObjBg,
        scanobjectnn.ScanObjectNNObjOnly, scanobjectnn.ScanObjectNNPbT50Rs,
        shapenet55.ShapeNet55, primitives.Primitives)
}
DATASETS = tuple(_BUILDERS)


def builder_class(name: str):
  """The TFDS builder class of dataset `name`."""
  if name not in _BUILDERS:
    raise UserError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}.")
  return _BUILDERS[name]


def needs_manual_dir(name: str) -> bool:
  """Whether `name` is built from files the user downloads."""
  return builder_class(name).MANUAL_DOWNLOAD_INSTRUCTIONS is not None


def dataset_dir(name: str, data_dir: str) -> str:
  """Where the prepared `name` lives: <data_dir>/<name>/<version>."""
  return os.path.join(os.path.expanduser(data_dir), name,
                      str(builder_class(name).VERSION))


def is_prepared(name: str, data_dir: str) -> bool:
  # TFDS renames its temporary folder into place only once it is complete.
  return os.path.exists(os.path.join(dataset_dir(name, data_dir),
                                     "dataset_info.json"))


def prepare_command(name: str, data_dir: str,
                    manual_dir: Optional[str] = None) -> str:
  """The shell command that prepares `name`."""
  parts = ["python", "-m", "clip2point_jax.main",
           "--config", f"configs/prepare.py:dataset={name}"]
  if needs_manual_dir(name):
    parts.append("--config.manual_dir="
                 + (manual_dir or builder_class(name).MANUAL_DIR_HINT))
  parts.append(f"--config.data_dir={data_dir}")
  return " ".join(shlex.quote(p) for p in parts)


def metadata(name: str, data_dir: str) -> dict[str, Any]:
  """The prepared dataset's metadata: options, point_order, skipped shapes."""
  path = os.path.join(dataset_dir(name, data_dir), "metadata.json")
  if not os.path.exists(path):
    return {}
  with open(path) as f:
    return json.load(f)


def _check_manual_dir(name: str, manual_dir: Optional[str]):
  instructions = builder_class(name).MANUAL_DOWNLOAD_INSTRUCTIONS
  if not manual_dir:
    raise UserError(f"dataset {name!r} is built from files you download; "
                    f"set manual_dir.\n{instructions}")
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    raise UserError(f"manual_dir {manual_dir} does not exist or is empty.\n"
                    f"{instructions}")


def _remove_stale(name: str, data_dir: str):
  """Drops temporary folders of preparations that were killed outright."""
  parent = os.path.join(os.path.expanduser(data_dir), name)
  if not os.path.isdir(parent):
    return
  for entry in os.listdir(parent):
    if entry.startswith("incomplete."):
      logging.warning("Removing %s, left by an interrupted preparation.",
                      os.path.join(parent, entry))
      shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def prepare(name: str, data_dir: Optional[str] = None,
            manual_dir: Optional[str] = None, *, overwrite: bool = False,
            remove_stale: bool = True, **options) -> str:
  """Builds dataset `name` into `data_dir` once; returns its folder.

  Args:
    name: one of `DATASETS`.
    data_dir: the TFDS data folder (default: `config_args.default_data_dir()`).
    manual_dir: the folder holding the unpacked download (not for primitives).
    overwrite: rebuild even if prepared already.
    remove_stale: delete temporary folders of killed preparations of `name`
      first (never while another process prepares the same dataset).
    **options: builder options (`num_points_stored`, `seed`, ...; see each
      builder's OPTIONS); None values mean the default.

  Returns:
    The dataset folder, <data_dir>/<name>/<version>.

  Raises:
    UserError: unknown name or option, missing manual_dir, bad files, or a
      prepared copy built with other options (rerun with overwrite=True).
  """
  cls = builder_class(name)
  data_dir = data_dir or default_data_dir()
  options = {k: v for k, v in options.items() if v is not None}
  unknown = sorted(set(options) - set(cls.OPTIONS))
  if unknown:
    raise UserError(f"option(s) {', '.join(unknown)} do not apply to dataset "
                    f"{name!r}; it takes {', '.join(cls.OPTIONS)}.")
  if needs_manual_dir(name):
    manual_dir = manual_dir and os.path.abspath(os.path.expanduser(manual_dir))
    _check_manual_dir(name, manual_dir)
  data_dir = os.path.expanduser(data_dir)
  if remove_stale:
    _remove_stale(name, data_dir)
  builder = cls(data_dir=data_dir, **options)
  path = dataset_dir(name, data_dir)
  if is_prepared(name, data_dir) and not overwrite:
    stored = metadata(name, data_dir).get("options")
    if stored != builder.options:
      raise UserError(
          f"{path} was prepared with {stored}, not {builder.options}; rerun "
          "with overwrite=True (--config.overwrite=True) to rebuild it.")
    logging.info("%s is prepared already in %s.", name, path)
    return path
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, download_mode=mode))
  return path


def load_split(name: str, split: str, data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None):
  """Opens a prepared split for random access, without TensorFlow.

  The procedural `primitives` dataset is prepared on first use; the others
  must be prepared first (the error says how).

  Args:
    name: one of `DATASETS`.
    split: "train" or "test".
    data_dir: the TFDS data folder (default: `config_args.default_data_dir()`).
    manual_dir: only used to spell out the prepare command in errors.

  Returns:
    source: a TFDS data source; `source[i]` is {"points": float32[S, 3],
      "label": int, "id": bytes, ...}.
    class_names: tuple of str, in label order.
  """
  builder_class(name)
  data_dir = data_dir or default_data_dir()
  if not is_prepared(name, data_dir):
    if needs_manual_dir(name):
      raise UserError(
          f"dataset {name!r} is not prepared in {data_dir}. Prepare it once "
          f"with:\n  {prepare_command(name, data_dir, manual_dir)}\n"
          "(docs/datasets.md says what to download).")
    try:
      # Other hosts may be doing the same: leave their temporary folders be,
      # and accept their copy if it lands first.
      prepare(name, data_dir, remove_stale=False)
    except OSError:
      if not is_prepared(name, data_dir):
        raise
  builder = tfds.builder_from_directory(dataset_dir(name, data_dir))
  if split not in builder.info.splits:
    raise UserError(f"dataset {name!r} has no split {split!r}; it has "
                    f"{', '.join(builder.info.splits)}.")
  source = builder.as_data_source(split=split)
  return source, tuple(builder.info.features["label"].names)
