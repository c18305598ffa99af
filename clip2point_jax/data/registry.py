"""The one entry point tasks use: dataset names, preparing and loading.

    source, class_names = registry.load_split("modelnet40", "test", data_dir)

`source` is a random-access TFDS data source (`len`, `source[i]` -> dict of
numpy values); feed it to `pipeline.batches`.
"""

import os
import shlex
import tempfile
from typing import Any, Optional

from absl import logging
import tensorflow_datasets as tfds

from clip2point_jax.data.builders import modelnet
from clip2point_jax.data.builders import modelnet_h5
from clip2point_jax.data.builders import primitives
from clip2point_jax.data.builders import scanobjectnn
from clip2point_jax.data.builders import shapenet55
from clip2point_jax.core import paths
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


# (name, data_dir) -> the options this process last prepared a NAMED_BY_OPTIONS
# dataset with: what `options=None` means below, for callers that prepare and
# then read without passing the options again.
_LAST_PREPARED: dict[tuple[str, str], dict[str, Any]] = {}


def _options(name: str, data_dir: str, options: Optional[dict[str, Any]]) -> dict[str, Any]:
  if options is None:
    options = _LAST_PREPARED.get((name, paths.expand(data_dir)), {})
  return {k: v for k, v in dict(options).items() if v is not None}


def options_of(data) -> Optional[dict[str, Any]]:
  """The options a config's `data` block prepares its dataset with, for the `options` arguments.

  `data.primitives` for the built-in shapes (empty: the defaults); None for
  the others, which are prepared once by configs/prepare.py.
  """
  if data.name != "primitives":
    return None
  return dict(data.get("primitives") or {})


def dataset_dir(name: str, data_dir: str, options: Optional[dict[str, Any]] = None) -> str:
  """Where the prepared `name` lives: <data_dir>/<name>[/<options>]/<version>.

  Datasets prepared on first use (primitives) keep each option set in a
  sub-folder named by its non-default options, e.g.
  primitives/train8_test2_points512_noimages/1.0.0; the defaults have none.
  `options` None: those this process last prepared `name` with, else the defaults.
  """
  cls = builder_class(name)
  folder = cls.folder_name(_options(name, data_dir, options)) if cls.NAMED_BY_OPTIONS else ""
  return os.path.join(paths.expand(data_dir), name, *([folder] if folder else []),
                      str(cls.VERSION))


def is_prepared(name: str, data_dir: str, options: Optional[dict[str, Any]] = None) -> bool:
  # TFDS renames its temporary folder into place only once it is complete.
  return paths.path(os.path.join(dataset_dir(name, data_dir, options), "dataset_info.json")).exists()


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


def metadata(name: str, data_dir: str, options: Optional[dict[str, Any]] = None) -> dict[str, Any]:
  """The prepared dataset's metadata: options, point_order, skipped shapes."""
  path = os.path.join(dataset_dir(name, data_dir, options), "metadata.json")
  if not paths.path(path).exists():
    return {}
  return paths.read_json(path)


class PreparedOtherwise(UserError):
  """A prepared copy holds other options than asked for; `what` says so without a remedy.

  Callers with their own way to rebuild (configs/prepare.py's overwrite) add it to `what`.
  """

  def __init__(self, what: str):
    super().__init__(f"{what}; delete that folder to prepare it again, or call registry.prepare "
                     "with overwrite=True")
    self.what = what


def _check_manual_dir(name: str, manual_dir: Optional[str]):
  instructions = builder_class(name).MANUAL_DOWNLOAD_INSTRUCTIONS
  if not manual_dir:
    raise UserError(f"dataset {name!r} is built from files you download; "
                    f"set manual_dir.\n{instructions}")
  if not os.path.isdir(manual_dir) or not os.listdir(manual_dir):
    raise UserError(f"manual_dir {manual_dir} does not exist or is empty.\n"
                    f"{instructions}")


def _remove_stale(name: str, data_dir: str, options: dict[str, Any]):
  """Drops temporary folders of preparations that were killed outright."""
  parent = paths.path(os.path.dirname(dataset_dir(name, data_dir, options)))
  if not parent.is_dir():
    return
  for entry in parent.iterdir():
    if entry.name.startswith("incomplete."):
      logging.warning("Removing %s, left by an interrupted preparation.", entry)
      try:
        entry.rmtree()
      except OSError:
        pass  # Another process's, or gone already: preparing goes on beside it.


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
    The dataset folder, `dataset_dir(name, data_dir, options)`.

  Raises:
    UserError: unknown name or option, missing manual_dir, bad files;
    PreparedOtherwise: a prepared copy built with other options (delete it,
      or pass overwrite=True).
  """
  cls = builder_class(name)
  data_dir = data_dir or default_data_dir()
  options = {k: v for k, v in options.items() if v is not None}
  unknown = sorted(set(options) - set(cls.OPTIONS))
  if unknown:
    raise UserError(f"option(s) {', '.join(unknown)} do not apply to dataset "
                    f"{name!r}; it takes {', '.join(cls.OPTIONS)}.")
  if needs_manual_dir(name):
    manual_dir = manual_dir and os.path.abspath(paths.require_local(
        manual_dir, "manual_dir", "preparing a dataset from its download"))
    _check_manual_dir(name, manual_dir)
  data_dir = paths.expand(data_dir)
  if remove_stale:
    _remove_stale(name, data_dir, options)
  config = None
  if cls.NAMED_BY_OPTIONS:
    _LAST_PREPARED[(name, data_dir)] = dict(options)
    folder = cls.folder_name(options)
    config = tfds.core.BuilderConfig(name=folder) if folder else None
  builder = cls(data_dir=data_dir, config=config, **options)
  path = dataset_dir(name, data_dir, options)
  if is_prepared(name, data_dir, options) and not overwrite:
    stored = metadata(name, data_dir, options).get("options")
    if stored != builder.options:
      raise PreparedOtherwise(f"{path} was prepared with {stored}, not {builder.options}")
    logging.info("%s is prepared already in %s.", name, path)
    return path
  if paths.is_remote(data_dir):
    return _prepare_then_upload(name, path, manual_dir, overwrite, options)
  mode = (tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS if overwrite
          else tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS)
  # Our builders show one bar per split; TFDS's own bars (examples, shuffling)
  # would interleave with it.
  tfds.disable_progress_bar()
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      manual_dir=manual_dir, download_mode=mode))
  return path


def _prepare_then_upload(name: str, path: str, manual_dir: Optional[str], overwrite: bool,
                         options: dict[str, Any]) -> str:
  """`prepare` into a bucket: ArrayRecord writes local files only.

  The dataset is prepared in a local temporary folder and copied to `path`,
  its dataset_info.json last, so `is_prepared` never sees half a copy.
  """
  if overwrite and paths.path(path).exists():
    paths.path(path).rmtree()
  with tempfile.TemporaryDirectory(prefix="clip2point_prepare_") as local:
    built = prepare(name, local, manual_dir, remove_stale=False, **options)
    _LAST_PREPARED.pop((name, local), None)
    info = os.path.join(built, "dataset_info.json")
    with open(info, "rb") as f:
      info_bytes = f.read()
    os.remove(info)
    paths.upload_tree(built, path)
    paths.path(os.path.join(path, "dataset_info.json")).write_bytes(info_bytes)
  return path


def load_split(name: str, split: str, data_dir: Optional[str] = None,
               manual_dir: Optional[str] = None, options: Optional[dict[str, Any]] = None):
  """Opens a prepared split for random access, without TensorFlow.

  The procedural `primitives` dataset is prepared on first use; the others
  must be prepared first (the error says how).

  Args:
    name: one of `DATASETS`.
    split: "train" or "test".
    data_dir: the TFDS data folder (default: `config_args.default_data_dir()`).
    manual_dir: only used to spell out the prepare command in errors.
    options: primitives only: the options it is (to be) prepared with; None:
      those this process last prepared it with, else the defaults.

  Returns:
    source: a TFDS data source; `source[i]` is {"points": float32[S, 3],
      "label": int, "id": bytes, ...}.
    class_names: tuple of str, in label order.
  """
  builder_class(name)
  data_dir = data_dir or default_data_dir()
  options = _options(name, data_dir, options) if builder_class(name).NAMED_BY_OPTIONS else {}
  if not is_prepared(name, data_dir, options):
    if needs_manual_dir(name):
      raise UserError(
          f"dataset {name!r} is not prepared in {data_dir}. Prepare it once "
          f"with:\n  {prepare_command(name, data_dir, manual_dir)}\n"
          "(docs/datasets.md says what to download).")
    try:
      # Other hosts may be doing the same: leave their temporary folders be,
      # and accept their copy if it lands first.
      prepare(name, data_dir, remove_stale=False, **options)
    except OSError:
      if not is_prepared(name, data_dir, options):
        raise
  builder = tfds.builder_from_directory(dataset_dir(name, data_dir, options))
  if split not in builder.info.splits:
    raise UserError(f"dataset {name!r} has no split {split!r}; it has "
                    f"{', '.join(builder.info.splits)}.")
  source = builder.as_data_source(split=split)
  return source, tuple(builder.info.features["label"].names)
