"""Checkpoints of a training run, with orbax's `CheckpointManager`.

Each step folder holds two items: "state", any pytree of arrays (params,
optimiser state, step...) saved with `StandardSave` and restored into an
abstract, sharded target (`jax.eval_shape` + shardings), so every device gets
its own shard back; and "meta", a small JSON dict (data order, the config,
anything needed to resume exactly).

The manager keeps the latest `keep` checkpoints plus, when `best_metric` is
set, the one with the best validation value passed to `save(metrics=...)`.
Saving is asynchronous (`async_save`, the default). In a single process,
`save` copies the state into fresh device buffers, queued behind the step
that wrote it, and returns; a worker thread hands the copy to orbax, which
moves it to the host and writes it there. The step loop waits for none of
it, and the next step may donate the state's buffers; the copy holds as much
device memory as the state until it is on the host. With several processes
orbax's save synchronises the hosts through the devices, which must not
race the steps' own collectives from another thread: there `save` waits
while orbax moves the state to the host, and the writes run in the
background.

    ckpt = checkpoints.Checkpointer(os.path.join(workdir, "checkpoints"), keep=2,
                                    best_metric="val_top1")
    if ckpt.latest_step() is not None:
      state, meta = ckpt.restore(abstract_state)
    ...
    ckpt.save(step, state, meta={"epoch": epoch}, metrics={"val_top1": acc})
    ckpt.close()
"""

import concurrent.futures
import copy
import importlib
from typing import Any, Callable, Optional

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from clip2point_jax.core import paths
from clip2point_jax.errors import UserError

STATE = "state"
META = "meta"


def read_part(step_dir: str, select: Callable[[Any], Any], *, name: str, kind: str,
              what: str) -> Any:
  """Part of a step folder's state as numpy arrays, read without knowing the rest's layout.

  Orbax partial restore of the subtree that `select` picks from the stored
  tree (of array metadata), at the shapes and dtypes the checkpoint records:
  the caller needs no optimiser or model to build a restore target.

  Args:
    step_dir: a checkpoint's step folder (holding `state/`).
    select: stored metadata tree -> the wanted subtree; a KeyError or
      TypeError there means the checkpoint is not of the expected kind.
    name, kind, what: how errors name the checkpoint, the kind of checkpoint
      expected and what could not be restored.

  Raises:
    UserError "<name>: not a readable <kind> (...)" or "<name>: cannot restore <what> (...)".
  """
  state_dir = paths.path(step_dir) / STATE
  # The item's handler: a Checkpointer would look for (and warn about) step metadata.
  handler = ocp.PyTreeCheckpointHandler()
  try:
    metadata = handler.metadata(state_dir)
    wanted = select(getattr(metadata, "tree", metadata))
  except UserError:
    raise
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise UserError(f"{name}: not a readable {kind} ({type(e).__name__}: {str(e)[:200]})") from e
  _check_stored_paths(getattr(metadata, "tree", metadata), wanted)
  target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), wanted)
  restore_args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), target)
  try:
    return handler.restore(state_dir, args=ocp.args.PyTreeRestore(
        item=target, restore_args=restore_args, partial_restore=True))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise UserError(f"{name}: cannot restore {what} ({type(e).__name__}: {str(e)[:200]})") from e


def _check_stored_paths(stored, wanted) -> None:
  """ValueError unless every leaf of `wanted` sits at its stored path.

  A partial restore fills a path the checkpoint lacks with the target's
  values (zeros here) and says nothing, so a `select` that drops the outer
  keys (`t["params"]` instead of `{"params": t["params"]}`) would read zeros.
  """
  paths_of = lambda tree: {jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]}
  missing = sorted(paths_of(wanted) - paths_of(stored))
  if missing:
    raise ValueError(f"read_part: {missing[0]} is not a path of the stored tree; `select` must keep "
                     "the outer keys of what it picks")


def _check_remote_ready(directory: str) -> None:
  """UserError unless orbax can write `directory` here: gs:// needs google-cloud-storage too.

  orbax asks the bucket whether it has a hierarchical namespace through that
  package, and without it fails with an ImportError deep in its step listing.
  """
  paths.path(directory)  # epath's own backend for the scheme (gcsfs for gs://)
  if not directory.startswith("gs://"):
    return
  try:
    importlib.import_module("google.cloud.storage")
  except ImportError as e:
    raise UserError(f"checkpoints in {directory} need the google-cloud-storage package here (orbax "
                    "queries the bucket with it): pip install google-cloud-storage") from e


def abstract_like(tree, shardings=None):
  """`jax.ShapeDtypeStruct`s (with shardings) to restore `tree`'s layout into."""
  if shardings is None:
    shardings = jax.tree.map(lambda x: getattr(x, "sharding", None), tree)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                      tree, shardings)


def copy_on_devices(tree):
  """`tree` with each jax.Array leaf copied into new buffers, on the same devices and sharding.

  Nothing waits for the devices and nothing compiles: the copies are queued
  behind whatever writes the arrays, so the originals may be donated to the
  next step at once. Arrays must be fully addressable (one process).
  """
  leaves, treedef = jax.tree.flatten(tree)
  where = [i for i, leaf in enumerate(leaves) if isinstance(leaf, jax.Array)]
  arrays = [leaves[i] for i in where]
  copies = jax.device_put(arrays, [x.sharding for x in arrays], may_alias=False) if arrays else []
  for i, x in zip(where, copies):
    leaves[i] = x
  return jax.tree.unflatten(treedef, leaves)


class Checkpointer:
  """Saves and restores (state pytree, meta dict) per step in `directory`."""

  def __init__(self, directory: str, *, keep: int = 2, best_metric: Optional[str] = None,
               best_mode: str = "max", async_save: bool = True):
    """
    Args:
      directory: the checkpoint folder (created if missing), local or
        remote (gs://...: orbax writes its files through epath and the
        arrays through TensorStore's GCS driver).
      keep: how many of the latest checkpoints to keep (>= 1).
      best_metric: a key of the `metrics` passed to `save`; the best
        checkpoint by it is kept too, whatever its age.
      best_mode: "max" or "min": which values of `best_metric` are better.
      async_save: write in the background; in a single process `save`
        returns once the state's copy is queued on the devices (see above).
        At most one such copy waits for its turn, so saving faster than the
        disk allows blocks instead of filling the devices.
    """
    if keep < 1:
      raise UserError(f"checkpoints: keep={keep}; keep at least the latest one")
    if best_mode not in ("max", "min"):
      raise UserError(f"checkpoints: best_mode={best_mode!r}; use 'max' or 'min'")
    self.directory = paths.absolute(directory)
    if paths.is_remote(self.directory):
      _check_remote_ready(self.directory)
    self.best_metric = best_metric
    policies = [checkpoint_managers.LatestN(keep)]
    best_fn = None
    if best_metric:
      best_fn = lambda metrics: float(metrics[best_metric])
      policies.append(checkpoint_managers.BestN(
          get_metric_fn=best_fn, reverse=best_mode == "min", n=1,
          keep_checkpoints_without_metrics=False))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=checkpoint_managers.AnyPreservationPolicy(policies),
        # best_fn also makes the manager store each step's metrics on disk, so
        # the best checkpoint is still known after a restart.
        best_fn=best_fn, best_mode=best_mode,
        enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=(STATE, META))
    self._worker = (concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="checkpoint")
                    if async_save and jax.process_count() == 1 else None)
    self._handed = None  # the save the worker is handing to orbax

  def _finish_handing(self) -> None:
    """Waits until the worker has handed its save to orbax; raises what went wrong there."""
    handed, self._handed = self._handed, None
    if handed is not None:
      handed.result()

  def latest_step(self) -> Optional[int]:
    """The newest saved step, or None if there is none."""
    self._finish_handing()
    return self._manager.latest_step()

  def best_step(self) -> Optional[int]:
    """The saved step with the best `best_metric`, or None."""
    if not self.best_metric:
      return None
    self._finish_handing()
    # The manager falls back to the latest step when none has metrics.
    if not any(self._manager.metrics(s) for s in self._manager.all_steps()):
      return None
    return self._manager.best_step()

  def all_steps(self) -> list[int]:
    self._finish_handing()
    return list(self._manager.all_steps())

  def save(self, step: int, state, *, meta: Optional[dict[str, Any]] = None,
           metrics: Optional[dict[str, float]] = None) -> None:
    """Saves `state` (a pytree of arrays) and `meta` (a JSON dict) as `step`.

    With `async_save` in a single process it returns once the copies are
    queued on the devices; an error in the background is raised by the next
    call of this object.
    """
    metrics = {k: float(v) for k, v in metrics.items()} if metrics else None
    if self._worker is None:
      self._manager.save(int(step), args=_save_args(state, meta), metrics=metrics, force=True)
      return
    self._finish_handing()
    args = _save_args(copy_on_devices(state), copy.deepcopy(meta))
    self._handed = self._worker.submit(self._manager.save, int(step), args=args, metrics=metrics,
                                       force=True)

  def restore(self, abstract_state, step: Optional[int] = None):
    """Restores (state, meta) of `step` (default: the latest).

    Args:
      abstract_state: the target layout: a pytree of `jax.ShapeDtypeStruct`
        with shardings (see `abstract_like`), or of arrays to mimic.

    Raises:
      UserError if there is no such checkpoint or it does not fit the target.
    """
    step = self.latest_step() if step is None else int(step)
    if step is None or step not in self.all_steps():
      raise UserError(f"no checkpoint{'' if step is None else f' for step {step}'} in "
                      f"{self.directory}; it has steps {self.all_steps()}")
    if any(isinstance(x, jax.Array) for x in jax.tree.leaves(abstract_state)):
      abstract_state = abstract_like(abstract_state)
    args = ocp.args.Composite(**{STATE: ocp.args.StandardRestore(abstract_state),
                                 META: ocp.args.JsonRestore()})
    try:
      restored = self._manager.restore(step, args=args)
    except (ValueError, KeyError, TypeError) as e:
      raise UserError(f"checkpoint {self.directory}/{step} does not fit this run's model "
                      f"or optimiser ({type(e).__name__}: {str(e)[:300]}); use a fresh workdir "
                      "or the same config") from e
    return restored[STATE], dict(restored[META] or {})

  def wait(self):
    """Blocks until pending asynchronous saves are on disk."""
    self._finish_handing()
    self._manager.wait_until_finished()

  def close(self):
    """Finishes the pending saves (raising what failed in them) and closes the manager."""
    try:
      self._finish_handing()
    finally:
      if self._worker is not None:
        self._worker.shutdown()
      self._manager.wait_until_finished()
      self._manager.close()


def _save_args(state, meta: Optional[dict[str, Any]]):
  return ocp.args.Composite(**{STATE: ocp.args.StandardSave(state),
                               META: ocp.args.JsonSave(dict(meta or {}))})
