"""The one place a config is checked before any work starts.

    filled = validation.check(config, workdir, explicit={"clip.name"})
                                             # fields, tasks, paths, the workdir,
                                             # and a trained model's settings filled in
    validation.check_devices(config, n)      # what depends on the device count
    validation.check_task(config)            # fields and task rules only (tasks call it
                                             # first, for library users)

Each mistake is a `UserError` naming the field or file and what to do; `main`
prints it as one `error:` line. Nothing here writes to disk or loads weights.
"""

from clip2point_jax.errors import UserError
from clip2point_jax.loading import trained_settings
from clip2point_jax.validation import tasks, workdir as workdir_lib
from clip2point_jax.validation.tasks import check_task


def _task_configs(config, prefix: str = ""):
  """(prefix, config) of `config` and every task config it nests (the demo's steps)."""
  yield prefix, config
  for key, value in config.items():
    if hasattr(value, "get") and value.get("task"):
      yield from _task_configs(value, f"{prefix}{key}.")


def check(config, workdir: str, *, explicit=frozenset(), share_workdir: bool = False) -> list[str]:
  """UserError for the first mistake in `config` or `workdir`.

  A config that loads a trained depth encoder or GDPA gets the CLIP and
  render settings it was trained with (`loading/trained_settings.py`), except
  where the user set them, and a conflicting setting is a mistake.

  Args:
    config: a task's ConfigDict (`config.task` names the task); trained
      settings are written into it.
    workdir: where the task will write.
    explicit: dotted fields the command line set ("clip.name").
    share_workdir: allow a workdir that holds another task's results.

  Returns:
    "field=value" for each setting taken from a trained model.
  """
  tasks.check_task(config)
  filled = trained_settings.fill_in(config, frozenset(explicit))
  if filled:
    tasks.check_task(config)
  workdir_lib.check_writable(workdir, "--workdir")
  for prefix, task_config in _task_configs(config):
    workdir_lib.check_outputs(task_config, prefix)
  workdir_lib.check_owner(workdir, config.task, share_workdir)
  return filled


def check_devices(config, num_devices: int) -> None:
  """UserError where a global batch does not split over `num_devices` devices."""
  for prefix, task_config in _task_configs(config):
    if task_config.get("task") == "pretrain" and task_config.batch_size % num_devices:
      raise UserError(f"config.{prefix}batch_size={task_config.batch_size} must be a multiple of the "
                      f"{num_devices} devices, e.g. {max(1, task_config.batch_size // num_devices) * num_devices}")
