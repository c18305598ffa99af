"""What every training and evaluation loop shares: host-0 output, progress, metrics, NaN stops, compiled steps.

    loop.say("pretrain: resuming from step 200")          # printed by host 0 only
    bar = loop.progress(total=300, initial=200, desc="pretrain", unit="step")  # "compiling…" until the first update
    log = loop.MetricsLog(workdir, resume_step=200)      # metrics.jsonl + learning_curves.png
    loop.check_finite(step, loss, ckpt)                   # UserError naming the step
    step_fn = STEPS.get(key, lambda: jax.jit(...))        # one compiled program per key
"""

import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, Callable, Hashable

import numpy as np

from clip2point_jax.core import paths, plots
from clip2point_jax.core.parallel import is_host0
from clip2point_jax.core.progress import COMPILING, Progress, progress  # pylint: disable=unused-import
from clip2point_jax.errors import UserError

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "learning_curves.png"
def say(message: str) -> None:
  """Prints on host 0 only, above any open progress bar, flushed at once."""
  if is_host0():
    Progress.write(message, file=sys.stdout)


def config_key(*parts: Any) -> str:
  """A hashable key of config blocks, dicts and scalars (JSON, sorted keys)."""
  plain = [p.to_dict() if hasattr(p, "to_dict") else p for p in parts]
  return json.dumps(plain, sort_keys=True, default=str)


class JitCache:
  """Compiled functions by what determines their program.

  Running a task again in one process (a notebook, the tests) then compiles
  nothing new. At most `size` entries are kept, oldest dropped first:
  compiled programs hold device memory.
  """

  def __init__(self, size: int = 1):
    self.size, self.entries = size, {}

  def get(self, key: Hashable, build: Callable[[], Any]) -> Any:
    if key not in self.entries:
      while len(self.entries) >= self.size:
        self.entries.pop(next(iter(self.entries)))
      self.entries[key] = build()
    return self.entries[key]


@contextlib.contextmanager
def frozen_heap():
  """Inside, the objects alive at entry are exempt from Python's garbage collections.

  Enter it once setup is done: a full collection walks every tracked object,
  and setup leaves hundreds of thousands (modules, traced and compiled
  functions, dataset metadata), a pause between two steps whenever one runs.
  On exit they are collected as before, so a process that runs many tasks
  leaks no cycles.
  """
  gc.freeze()
  try:
    yield
  finally:
    gc.unfreeze()


def check_finite(step: int, loss: float, ckpt) -> None:
  """Raises UserError naming `step` if its loss is not finite, and what was kept."""
  if np.isfinite(loss):
    return
  last = ckpt.latest_step()
  kept = (f"the last good checkpoint, step {last}, is kept in {ckpt.directory}" if last is not None
          else "no checkpoint was saved before it")
  raise UserError(f"the loss became {loss} at step {step}; training stopped and {kept}. "
                  "Lower config.optim.learning_rate (or use clip.dtype=float32) and rerun; a "
                  "rerun resumes from the last checkpoint")


def _event_writer(workdir: str):
  """clu's TensorBoard writer where clu is installed, else None."""
  try:
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return metric_writers.create_default_writer(workdir, just_logging=not is_host0())


class MetricsLog:
  """metrics.jsonl (one JSON record per line) and learning_curves.png, written by host 0.

  On resume, records past `resume_step` (from a run that did not reach its
  next checkpoint) are dropped, so the file reads as one uninterrupted run.
  In a remote workdir (gs://...) each write rewrites the file: objects there
  cannot be appended to.
  """

  def __init__(self, workdir: str, resume_step: int = 0, tensorboard: bool = True):
    self.path = os.path.join(workdir, METRICS_FILE)
    self.curves = os.path.join(workdir, CURVES_FILE)
    self.writer = _event_writer(workdir) if tensorboard else None
    self.records = []
    self._plotting = None  # the child process drawing in the background
    if resume_step and paths.path(self.path).exists():
      lines = paths.path(self.path).read_text().splitlines()
      self.records = [r for r in map(json.loads, filter(str.strip, lines)) if r["step"] <= resume_step]
    if is_host0():
      self._rewrite()

  def _rewrite(self) -> None:
    paths.path(self.path).write_text("".join(json.dumps(r) + "\n" for r in self.records))

  def write(self, record: dict) -> None:
    self.records.append(record)
    if not is_host0():
      return
    if paths.is_remote(self.path):
      self._rewrite()
    else:
      with open(self.path, "a") as f:
        f.write(json.dumps(record) + "\n")
    if self.writer is not None:
      self.writer.write_scalars(record["step"], {k: v for k, v in record.items()
                                                 if k != "step" and isinstance(v, (int, float))})

  def plot(self, title: str, background: bool = False) -> None:
    """Draws learning_curves.png from the records so far.

    `background`: in a child process that reads metrics.jsonl (`python -m
    clip2point_jax.core.plots`), so matplotlib's Python does not compete for
    the interpreter lock with the thread that feeds the devices. A later plot
    or `close` waits for it and says if it failed: a missing picture does not
    stop training.
    """
    self._wait_for_plot()
    if not (is_host0() and self.records):
      return
    if background:
      # The child imports this package as the parent does, wherever that came from.
      env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
      errors = tempfile.TemporaryFile()  # not a pipe: a chatty child would block on a full one
      self._plotting = (subprocess.Popen(
          [sys.executable, "-m", "clip2point_jax.core.plots", self.path, self.curves, title],
          env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors), errors)
    else:
      plots.save_learning_curves(list(self.records), self.curves, title=title)

  def _wait_for_plot(self) -> None:
    if self._plotting is None:
      return
    (process, errors), self._plotting = self._plotting, None
    with errors:
      if process.wait():
        errors.seek(0)
        last = (errors.read().decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        say(f"warning: {CURVES_FILE} was not drawn (the plot exited with {process.returncode}: {last})")

  def close(self) -> None:
    try:
      self._wait_for_plot()
    finally:
      if self.writer is not None:
        self.writer.close()
