"""Command line: `python -m clip2point_jax.main --config configs/<task>.py`.

Flags are parsed into a locked ml_collections config (a misspelled override
fails with a suggestion), `validation` checks it before any work starts,
then the task module named by `config.task` runs. `--help` (with `--config`)
lists the task's fields and their meanings. Mistakes a user can make end in
one line on stderr and a non-zero exit.
"""

import glob
import importlib
import os
import re
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from clip2point_jax.core import config_doc, config_errors, interrupts, xla_defaults
from clip2point_jax.errors import UserError
from renderers.errors import InputError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/zeroshot.py:dataset=modelnet40.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (default: runs/<task>).")
_SHARE_WORKDIR = flags.DEFINE_bool(
    "share_workdir", False, "Write into a workdir that holds another task's results.")
_PRINT_CONFIG = flags.DEFINE_bool("print_config", False, "Print the config's fields and meanings, then exit.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() first (multi-host GPU clusters, TPU pods).")
# Slurm, Open MPI and TPU pods are detected; elsewhere (one process per GPU of a
# workstation, say) each process names the coordinator, the count and its rank.
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "With --distributed: process 0's host:port.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "With --distributed: how many processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "With --distributed: this process's rank.")
# config.task -> the module under clip2point_jax/tasks/ that runs it, where the
# names differ: fine-tuning is the few-shot task with every training cloud.
TASK_MODULES = {"finetune": "fewshot"}
HELP_FLAGS = ("--help", "-h", "-?", "--helpshort", "--helpfull")
USAGE = ("usage: python -m clip2point_jax.main --config configs/<task>.py[:args] [--workdir DIR] "
         "[--config.<field>=<value> ...]")


def _fail(message: str, status: int = 2, *, mid_run: bool = False):
  logging.flush()
  print(f"error: {message}", file=sys.stderr)
  if mid_run:
    # A task stopped mid-run leaves threads (input prefetch, compiles, XLA's own) inside native
    # code, and the interpreter's shutdown can crash on them ("Fatal Python error") after this
    # line. What is worth keeping is written: the tasks close their checkpoints on the way out.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
  sys.exit(status)


def _config_file(argv) -> str | None:
  for i, arg in enumerate(argv):
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1].split(":")[0]
    if arg.startswith("--config="):
      return arg.split("=", 1)[1].split(":")[0]
  return None


def _print_help(argv) -> None:
  """The usage, main's flags and, with --config, the task's fields; exit 0."""
  print(USAGE)
  print("\nflags:")
  for flag in (_CONFIG, _WORKDIR, _SHARE_WORKDIR, _PRINT_CONFIG, _DISTRIBUTED, _COORDINATOR,
               _NUM_PROCESSES, _PROCESS_ID):
    print(f"  --{flag.name:<22} {flags.FLAGS[flag.name].help}")
  configs = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join("configs", "*.py"))
                   if not p.endswith("common.py"))
  if configs:
    print(f"\ntasks (configs/<task>.py): {', '.join(configs)}")
  if _config_file(argv):
    flags.FLAGS([a for a in argv if a not in HELP_FLAGS])
    _print_fields()
  else:
    print("\nadd --config configs/<task>.py to list that task's fields.")
  sys.exit(0)


def _print_fields() -> None:
  given = flags.FLAGS["config"].config_filename
  path = re.sub(r"(\.py):.*$", r"\1", given)
  print(f"\nfields of {given} (override with --config.<field>=<value>):")
  print(config_doc.describe(_CONFIG.value, path))


def parse_flags(argv):
  """absl's flag parsing, with config mistakes as one line instead of a traceback."""
  try:
    if any(a in HELP_FLAGS for a in argv[1:]):
      _print_help(argv)
    if not _config_file(argv[1:]):
      _fail(f"give a task's config, e.g. --config configs/zeroshot.py; {USAGE}; --help lists more")
    return flags.FLAGS(argv)
  except (flags.Error, UserError, KeyError, AttributeError, OSError) as e:
    _fail(config_errors.one_line(e, argv))


def _initialize_distributed() -> None:
  import jax  # Imported late so --help stays fast.
  try:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  except Exception as e:  # pylint: disable=broad-except
    detail = str(e).splitlines()[0] if str(e) else type(e).__name__
    _fail(f"--distributed: jax.distributed.initialize() failed ({detail}); outside Slurm, Open MPI "
          "or a TPU pod, give --coordinator_address=HOST:PORT --num_processes=N --process_id=I")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  interrupts.keep_ctrl_c()  # A Ctrl-C during JAX's gc callback would otherwise be dropped.
  if not flags.FLAGS["verbosity"].present:
    # Progress bars and results are printed; library INFO logs only with -v 0.
    logging.set_verbosity(logging.WARNING)
  try:
    config = _CONFIG.value
    task_name = config.task  # A config that failed to load raises here.
  except Exception as e:  # pylint: disable=broad-except
    _fail(config_errors.one_line(e, sys.argv))
  if _PRINT_CONFIG.value:
    _print_fields()
    return
  workdir = _WORKDIR.value or os.path.join("runs", task_name)
  if not _DISTRIBUTED.value or not _PROCESS_ID.value:
    # Importing JAX and the models takes seconds: say why nothing happens yet.
    print(f"{task_name}: checking the config…", flush=True)
  xla_defaults.apply()  # Before anything below can start a JAX backend.
  from clip2point_jax import validation  # Imported late: it imports JAX and the models.
  explicit = frozenset(config_flags.get_override_values(flags.FLAGS["config"]))
  try:
    filled = validation.check(config, workdir, explicit=explicit, share_workdir=_SHARE_WORKDIR.value)
  except (UserError, InputError) as e:
    _fail(str(e))
  if filled:
    print(f"{task_name}: as the trained model was trained: {', '.join(filled)}", flush=True)
  if _DISTRIBUTED.value:
    _initialize_distributed()
  created = False
  try:
    import jax  # pylint: disable=g-import-not-at-top
    validation.check_devices(config, jax.device_count())
    task = importlib.import_module(f"clip2point_jax.tasks.{TASK_MODULES.get(task_name, task_name)}")
    created = validation.workdir.claim(workdir, task_name)
    task.run(config, workdir)
  except (UserError, InputError) as e:
    if created:
      validation.workdir.release_if_unused(workdir)
    _fail(str(e), 1, mid_run=True)
  except KeyboardInterrupt:
    _fail("interrupted; rerun the same command to resume.", 130, mid_run=True)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
