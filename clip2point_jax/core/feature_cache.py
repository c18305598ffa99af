"""Features of frozen encoders, computed once and stored on disk.

A cache is a folder of `.npy` arrays plus `cache.json`, which records the
identity of what made them: the encoder's checkpoint fingerprint, the dataset,
split, views, render settings... Loading with a different identity is refused
with an error that names the differing keys, so a stale cache is never used.
`cache.json` is written last, after every array is in place, so a cache that
was interrupted while being written counts as missing, not as valid.

The folder may be remote (gs://...): its arrays are then read whole into
memory, since only local files can be memory-mapped.

    identity = {"encoder": feature_cache.fingerprint(params), "split": "train", ...}
    arrays = feature_cache.load(directory, identity)
    if arrays is None:
      arrays = feature_cache.save(directory, compute(), identity)
"""

import hashlib
import json
import os
import shutil
from typing import Any, Optional

import jax
import numpy as np

from clip2point_jax.core import paths, settings
from clip2point_jax.errors import UserError

INDEX = "cache.json"


def fingerprint(params) -> str:
  """A content hash of a parameter pytree (paths, shapes, dtypes and values)."""
  digest = hashlib.blake2b(digest_size=16)
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
    array = np.asarray(jax.device_get(leaf))
    digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def save(directory: str, arrays: dict[str, np.ndarray], identity: dict[str, Any]) -> dict[str, np.ndarray]:
  """Writes `arrays` and their identity into `directory` (replacing any old cache).

  Returns:
    The arrays, memory-mapped from their new files (local), or as given (remote).
  """
  index = {"identity": settings.canonical(identity),
           "arrays": {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                      for k, v in arrays.items()}}
  if paths.is_remote(directory):
    return _save_remote(directory, arrays, index)
  directory = os.path.expanduser(directory)
  if os.path.isdir(directory):
    shutil.rmtree(directory)
  staging = directory.rstrip("/") + ".incomplete"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  for name, array in arrays.items():
    np.save(os.path.join(staging, f"{name}.npy"), np.asarray(array))
  with open(os.path.join(staging, INDEX), "w") as f:
    json.dump(index, f, indent=2, sort_keys=True)
  os.replace(staging, directory)
  return _open(directory, index)


def _save_remote(directory: str, arrays: dict[str, np.ndarray], index: dict[str, Any]):
  """`save` into a bucket: in place, `cache.json` last (object stores rename by copying)."""
  folder = paths.path(directory)
  if folder.exists():
    folder.rmtree()
  folder.mkdir(parents=True, exist_ok=True)
  for name, array in arrays.items():
    with (folder / f"{name}.npy").open("wb") as f:
      np.save(f, np.asarray(array))
  paths.write_json(folder / INDEX, index, indent=2, sort_keys=True)
  return {name: np.asarray(array) for name, array in arrays.items()}


def _read(path: str) -> np.ndarray:
  """One cached array: memory-mapped if local, read whole if remote."""
  if not paths.is_remote(path):
    return np.load(path, mmap_mode="r")
  with paths.path(path).open("rb") as f:
    return np.load(f, allow_pickle=False)


def _open(directory: str, index: dict[str, Any]) -> dict[str, np.ndarray]:
  arrays = {}
  for name in index["arrays"]:
    path = os.path.join(directory, f"{name}.npy")
    try:
      arrays[name] = _read(path)
    except (OSError, ValueError) as e:
      raise UserError(f"feature cache {path} is unreadable ({e}); delete {directory} to rebuild it") from e
  return arrays


def load(directory: str, identity: dict[str, Any]) -> Optional[dict[str, np.ndarray]]:
  """The cached arrays (memory-mapped), or None if there is no complete cache.

  Raises:
    UserError if the cache was made by something else than `identity` says
    (another checkpoint, dataset, view set...): it names the differing keys.
  """
  directory = paths.expand(directory)
  path = os.path.join(directory, INDEX)
  if not paths.path(path).exists():
    return None
  try:
    index = paths.read_json(path)
    stored = index["identity"]
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f"{path} is corrupt ({e}); delete {directory} to rebuild the cache") from e
  if settings.differing_keys(stored, identity):
    details = settings.describe_diff(stored, identity, template="{key}: cached {old!r}, now {new!r}")
    raise UserError(f"the feature cache {directory} is stale ({details}). Delete it to rebuild, "
                    "or point the run at another cache folder")
  return _open(directory, index)
