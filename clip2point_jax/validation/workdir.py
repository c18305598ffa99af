"""The work directory: writable before any work starts, and one task's results per folder.

A task run from the command line records itself in `<workdir>/clip2point_task.json`;
another task refuses that folder (its results and checkpoints would mix, and
files such as metrics.json would be overwritten) unless told to share it.
A workdir may be remote (gs://...), through `core.paths`.
"""

import json
import os
from typing import Optional

from clip2point_jax.core import paths
from clip2point_jax.core.config_args import get_field
from clip2point_jax.errors import UserError

MARKER = "clip2point_task.json"
# Output folders a task writes besides its workdir (empty: inside the workdir).
OUTPUT_PATHS = ("cache_dir", "image_cache.dir", "out_dir")


def _nearest_existing(path: str) -> str:
  while not os.path.exists(path):
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return path


def check_writable(path: str, what: str) -> None:
  """UserError unless `path` is, or can be made, a folder this process writes in.

  Args:
    path: the folder (it need not exist yet).
    what: how the message names it, e.g. "--workdir" or "config.cache_dir".
  """
  if paths.is_remote(path):
    return _check_remote(path, what)
  path = os.path.abspath(os.path.expanduser(path))
  existing = _nearest_existing(path)
  if not os.path.isdir(existing):
    at = "" if existing == path else f" ({existing} is a file)"
    raise UserError(f"{what}={path!r} is a file{at}; give a folder")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise UserError(f"{what}={path!r}: no permission to write in {existing}; give a folder you can "
                    "write to")


def _check_remote(path: str, what: str) -> None:
  """A remote folder: reachable from here and not a file. Whether this host may write there is
  known only at the first write (buckets grant it per object), which names the path."""
  folder = paths.path(path)
  if folder.exists() and not folder.is_dir():
    raise UserError(f"{what}={path!r} is a file; give a folder")


def check_outputs(config, prefix: str = "") -> None:
  """Every output folder a config names is writable."""
  for field in OUTPUT_PATHS:
    value = get_field(config, field)
    if value:
      check_writable(value, f"config.{prefix}{field}")


def owner(workdir: str) -> Optional[dict]:
  """The task record of `workdir`, or None if no task has claimed it."""
  path = paths.path(workdir) / MARKER
  if not path.exists():
    return None
  try:
    record = json.loads(path.read_text())
  except (OSError, ValueError):
    return {"task": "unknown"}
  return record if isinstance(record, dict) else {"task": "unknown"}


def check_owner(workdir: str, task: str, share: bool) -> None:
  """UserError if another task's results are in `workdir` (unless `share`)."""
  record = owner(workdir)
  if record is None or share or record.get("task") == task:
    return
  raise UserError(f"--workdir {workdir} holds the results of a {record.get('task')} run "
                  f"({MARKER}); give this {task} run its own --workdir, or pass --share_workdir "
                  "to write beside them")


def claim(workdir: str, task: str) -> bool:
  """Creates `workdir` and records `task` in it; True if the folder was new."""
  path = paths.path(workdir)
  created = not path.exists()
  path.mkdir(parents=True, exist_ok=True)
  if owner(workdir) is None:
    paths.write_json(path / MARKER, {"task": task})
  return created


def release_if_unused(workdir: str) -> None:
  """Removes a workdir `claim` created if the run left nothing else in it."""
  path = paths.path(workdir)
  if path.is_dir() and {p.name for p in path.iterdir()} <= {MARKER}:
    try:
      path.rmtree(missing_ok=True)
    except OSError:
      pass  # Left for the user: the run's error matters more.
