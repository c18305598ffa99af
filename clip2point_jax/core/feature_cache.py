"""Features of frozen encoders, computed once and stored on disk.

A cache is a folder of `.npy` arrays plus `cache.json`, which records the
identity of what made them: the encoder's checkpoint fingerprint, the dataset,
split, views, render settings... Loading with a different identity is refused
with an error that names the differing keys, so a stale cache is never used.
`cache.json` is written last, after every array is in place, so a cache that
was interrupted while being written counts as missing, not as valid.

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

from clip2point_jax.core import settings
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
    The arrays, memory-mapped from their new files.
  """
  directory = os.path.expanduser(directory)
  if os.path.isdir(directory):
    shutil.rmtree(directory)
  staging = directory.rstrip("/") + ".incomplete"
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  for name, array in arrays.items():
    np.save(os.path.join(staging, f"{name}.npy"), np.asarray(array))
  index = {"identity": settings.canonical(identity),
           "arrays": {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)}
                      for k, v in arrays.items()}}
  with open(os.path.join(staging, INDEX), "w") as f:
    json.dump(index, f, indent=2, sort_keys=True)
  os.replace(staging, directory)
  return _open(directory, index)


def _open(directory: str, index: dict[str, Any]) -> dict[str, np.ndarray]:
  arrays = {}
  for name in index["arrays"]:
    path = os.path.join(directory, f"{name}.npy")
    try:
      arrays[name] = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
      raise UserError(f"feature cache {path} is unreadable ({e}); delete {directory} to rebuild it") from e
  return arrays


def load(directory: str, identity: dict[str, Any]) -> Optional[dict[str, np.ndarray]]:
  """The cached arrays (memory-mapped), or None if there is no complete cache.

  Raises:
    UserError if the cache was made by something else than `identity` says
    (another checkpoint, dataset, view set...): it names the differing keys.
  """
  directory = os.path.expanduser(directory)
  path = os.path.join(directory, INDEX)
  if not os.path.exists(path):
    return None
  try:
    with open(path) as f:
      index = json.load(f)
    stored = index["identity"]
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f"{path} is corrupt ({e}); delete {directory} to rebuild the cache") from e
  if settings.differing_keys(stored, identity):
    details = settings.describe_diff(stored, identity, template="{key}: cached {old!r}, now {new!r}")
    raise UserError(f"the feature cache {directory} is stale ({details}). Delete it to rebuild, "
                    "or point the run at another cache folder")
  return _open(directory, index)
