"""Command line: `python -m clip2point_jax.main --config configs/<task>.py`.

Flags are parsed into a locked ml_collections config (a misspelled override
fails with a suggestion), then the task module named by `config.task` runs.
Mistakes a user can make end in one line on stderr and a non-zero exit.
"""

import importlib
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from clip2point_jax.core import xla_defaults
from clip2point_jax.errors import UserError
from renderers.errors import InputError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/zeroshot.py:dataset=modelnet40.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<task>).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (multi-host GPU clusters, TPU pods).")
# Slurm, Open MPI and TPU pods are detected; elsewhere (one process per GPU of a
# workstation, say) each process names the coordinator, the count and its rank.
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "With --distributed: process 0's host:port.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed: how many processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed: this process's rank.")
flags.mark_flags_as_required(["config"])
# config.task -> the module under clip2point_jax/tasks/ that runs it, where the
# names differ: fine-tuning is the few-shot task with every training cloud.
TASK_MODULES = {"finetune": "fewshot"}


def _fail(message: str, status: int = 2):
  logging.flush()
  print(f"error: {message}", file=sys.stderr)
  sys.exit(status)


def _config_error_message(error: BaseException) -> str:
  """The useful line out of the exceptions config_flags wraps around ours."""
  chain, seen = [], error
  while seen is not None and seen not in chain:
    chain.append(seen)
    seen = seen.__cause__ or seen.__context__
  text = " ".join(str(e) for e in chain)
  # config_flags re-raises get_config's exceptions with traceback text.
  ours = re.findall(r"UserError: (.*)", text)
  if ours:
    return ours[-1].strip()
  for e in chain:
    if isinstance(e, UserError):
      return str(e)
  typo = re.search(r"'(\w+)'.*?Did you mean \"(\w+)\"", text.replace("\\'", "'"))
  if typo:
    return f"the config has no field {typo.group(1)!r}; did you mean {typo.group(2)!r}?"
  for e in chain:
    if isinstance(e, OSError) and "Failed loading config file" in str(e):
      attempted = re.findall(r"^\s{4}(\S.*)$", str(e), re.M)
      return f"cannot load config file {attempted[0] if attempted else ''}: no such file"
  lines = [line for line in str(error).splitlines() if line.strip()]
  return lines[-1].strip() if lines else repr(error)


def parse_flags(argv):
  """absl's flag parsing, with config mistakes as one line instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, UserError, KeyError, AttributeError, OSError) as e:
    _fail(_config_error_message(e))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:
    # Progress bars and results are printed; library INFO logs only with -v 0.
    logging.set_verbosity(logging.WARNING)
  try:
    config = _CONFIG.value
    task_name = config.task  # A config that failed to load raises here.
  except Exception as e:  # pylint: disable=broad-except
    _fail(_config_error_message(e))
  workdir = _WORKDIR.value or os.path.join("runs", task_name)
  xla_defaults.apply()
  try:
    if _DISTRIBUTED.value:
      import jax  # Imported late so --help stays fast.
      jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                                 num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
    task = importlib.import_module(f"clip2point_jax.tasks.{TASK_MODULES.get(task_name, task_name)}")
    os.makedirs(workdir, exist_ok=True)
    task.run(config, workdir)
  except (UserError, InputError) as e:
    _fail(str(e), 1)
  except KeyboardInterrupt:
    _fail("interrupted; rerun the same command to resume.", 130)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
