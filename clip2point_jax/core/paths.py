"""Storage paths: local folders and cloud buckets (gs://, s3://...) alike, through `etils.epath`.

Work directories, checkpoints, feature caches and dataset folders may be
`gs://bucket/...` (a TPU VM's usual storage). `open`, `os.makedirs` and
numpy's file functions reach local files only, and `os.path.abspath` or
`normpath` turn "gs://b/x" into "<cwd>/gs:/b/x", a local folder, without a
word. So reads and writes of those go through `path()`, while a path stays a
`str` between functions (`os.path.join`, `dirname` and `basename` are right
for both kinds).

    run = paths.path(workdir) / "metrics.json"        # epath.Path, local or remote
    paths.write_json(os.path.join(workdir, "metrics.json"), result)
    local = paths.require_local(manual_dir, "config.manual_dir")  # UserError for gs://

Libraries that open files by name (h5py, trimesh, safetensors, transformers'
tokenizers) get a local copy (`local_copy`) or a clear error (`require_local`).
"""

import functools
import hashlib
import importlib.util
import json
import os
import tempfile
from typing import Any

from etils import epath

from clip2point_jax.errors import UserError

REMOTE_PREFIXES = ("gs://", "s3://", "az://", "hf://")
# The fsspec package each scheme needs where TensorFlow (epath's other backend) is absent.
_FSSPEC_PACKAGES = {"gs": ("gcs", "gcsfs"), "s3": ("s3", "s3fs"), "az": ("az", "adlfs"),
                    "hf": ("hf", "huggingface_hub")}
# Where `local_copy` keeps remote folders that a library can only read from local files.
LOCAL_COPIES = os.path.join(tempfile.gettempdir(), "clip2point_remote_copies")
COMPLETE = ".complete"  # Written last in a local copy: its listing of the remote folder.


def is_remote(path) -> bool:
  """Whether `path` names cloud storage (gs://, s3://, az://, hf://) rather than a local file."""
  return os.fspath(path).startswith(REMOTE_PREFIXES)


def expand(path) -> str:
  """A local path with `~` expanded; a remote one unchanged."""
  path = os.fspath(path)
  return path if is_remote(path) else os.path.expanduser(path)


def absolute(path) -> str:
  """A local path expanded and absolute; a remote one without its trailing slashes.

  Recorded paths (checkpoints, trained models) are read back from other
  working directories, so local ones are made absolute; a remote one is
  absolute already, and `os.path.abspath` would make it a local folder.
  """
  path = os.fspath(path)
  if is_remote(path):
    scheme, rest = path.split("://", 1)
    return f"{scheme}://{rest.rstrip('/')}"
  return os.path.abspath(os.path.expanduser(path))


@functools.lru_cache(maxsize=None)
def _check_backend(scheme: str) -> None:
  """UserError unless epath can reach `scheme://` here (TensorFlow, or fsspec's package for it)."""
  if importlib.util.find_spec("tensorflow") is not None:
    return  # epath then uses tf.io.gfile for every scheme.
  import fsspec  # pylint: disable=g-import-not-at-top
  protocol, package = _FSSPEC_PACKAGES[scheme]
  try:
    fsspec.get_filesystem_class(protocol)
  except (ImportError, ValueError) as e:
    raise UserError(f"{scheme}:// paths need the {package} package here: pip install {package}") from e


def path(value) -> epath.Path:
  """`value` (local: `~` expanded) as an `epath.Path`.

  Raises:
    UserError if `value` is remote and nothing installed here can reach its
    scheme (it names the package to install).
  """
  value = expand(value)
  if is_remote(value):
    _check_backend(value.split("://", 1)[0])
  return epath.Path(value)


def require_local(value, what: str, reader: str = "this step") -> str:
  """`value` expanded; UserError naming `what` and the path if it is remote.

  For inputs a library opens by file name (h5py, trimesh, archives...).
  """
  if value and is_remote(value):
    raise UserError(f"{what}={os.fspath(value)!r}: {reader} reads local files only; copy it to this "
                    "machine first (e.g. gcloud storage cp -r) and give the local folder")
  return expand(value) if value else value


def read_json(value) -> Any:
  """The JSON value stored at `value` (local or remote)."""
  return json.loads(path(value).read_text())


def write_json(value, data: Any, **dump_args) -> None:
  """Writes `data` as JSON to `value` (local or remote), `json.dump`'s `dump_args` applied."""
  path(value).write_text(json.dumps(data, **dump_args))


def _listing(root: epath.Path, prefix: str = "") -> dict[str, int]:
  """{relative name: size} of every file under `root`.

  By `iterdir`, not `walk`: through fsspec, `walk` gives folders without their
  gs:// scheme, which epath then reads as local paths.
  """
  found = {}
  for entry in root.iterdir():
    name = prefix + entry.name
    if entry.is_dir():
      found.update(_listing(entry, name + "/"))
    else:
      found[name] = entry.stat().length
  return found


def local_copy(value) -> str:
  """A local folder with the files of folder `value`: `value` itself if local, else a copy.

  The copy (under `LOCAL_COPIES`, named by the remote path) is reused while
  the remote folder lists the same files with the same sizes, so each host
  downloads a CLIP or a tiny CLIP once.
  """
  value = absolute(value)
  if not is_remote(value):
    return value
  remote = path(value)
  digest = hashlib.sha256(value.encode()).hexdigest()[:16]
  local = os.path.join(LOCAL_COPIES, f"{os.path.basename(value) or 'root'}-{digest}")
  try:
    listing = _listing(remote)
  except FileNotFoundError:
    listing = {}  # Buckets list a missing folder as empty; local file systems raise.
  if not listing:
    raise UserError(f"{value}: no such folder, or it is empty")
  marker = os.path.join(local, COMPLETE)
  if os.path.isfile(marker):
    with open(marker, encoding="utf-8") as f:
      if json.load(f) == listing:
        return local
  for name in listing:
    target = os.path.join(local, name)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as f:
      f.write((remote / name).read_bytes())
  with open(marker, "w", encoding="utf-8") as f:
    json.dump(listing, f)
  return local


def upload_tree(local: str, value) -> None:
  """Copies every file under local folder `local` to folder `value` (local or remote)."""
  target = path(value)
  for folder, _, files in os.walk(local):
    for name in files:
      source = os.path.join(folder, name)
      destination = target / os.path.relpath(source, local)
      destination.parent.mkdir(parents=True, exist_ok=True)
      with open(source, "rb") as f:
        destination.write_bytes(f.read())
