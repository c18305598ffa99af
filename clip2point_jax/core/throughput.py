"""Throughput of a loop that dispatches device work, its first (compiling) call timed apart.

The first call of a jitted function compiles it, so a rate over every call
would mostly measure XLA. A `Timer` waits for the first call's output and
keeps its wall time (dispatch + compile + first run) as `compile_seconds`;
the steady rate counts only what comes after, over the time from the first
output's end to the last output's end:

    timer = throughput.Timer()
    for batch in batches:
      out = timer.call(classify, params, text, batch["points"], clouds=n)  # waits on the first only
    timer.lap(out)  # waits for the last output, then reads the clock
    timer.rates()   # {"clouds_per_second": steady rate, or None after one call}

Work that is not one call (an epoch of steps) is timed with `done(output,
**counts)` after it; time that is not throughput (evaluations, checkpoints)
is left out with `lap` before it and `resume` after it. `pass_fields` gives
the fields the tasks write for one pass over a split.
"""

import collections
import time
from typing import Any, Callable, NamedTuple, Optional

import jax

ONE_CALL_NOTE = "one batch: the whole pass's rate, compiling included"


class Lap(NamedTuple):
  """What an interval of steady calls did: counts (e.g. {"steps": 4, "samples": 128}) and seconds."""
  counts: dict
  seconds: float


class Timer:
  """Counts and times the calls of a loop; the first call apart (see the module doc).

  Attributes:
    began: the clock when the timer was made (`elapsed` is measured from it).
    compile_seconds: the first call's (or first unit's) wall time; None before it.
    first_counts: what the first call counted.
    steady: counts of the calls after the first, summed over closed laps.
    steady_seconds: their time, summed over closed laps.
  """

  def __init__(self, clock: Callable[[], float] = time.perf_counter):
    self._clock = clock
    self.began = self._mark = clock()
    self.compile_seconds: Optional[float] = None
    self.first_counts: dict = {}
    self._since: Optional[float] = None  # Start of the open interval; None until the first output.
    self._open = collections.Counter()
    self.steady = collections.Counter()
    self.steady_seconds = 0.0

  def mark(self) -> None:
    """Where the first unit starts (default: when the timer was made); no effect after it."""
    if self.compile_seconds is None:
      self._mark = self._clock()

  def done(self, output: Any, **counts: int) -> None:
    """After dispatching a unit of work (a call, an epoch) that returned `output`.

    The first unit waits for `output` (its time is `compile_seconds`) and
    starts the steady clock; later ones are only counted, without waiting,
    so the dispatch queue stays full.
    """
    if self.compile_seconds is None:
      jax.block_until_ready(output)
      now = self._clock()
      self.compile_seconds, self.first_counts, self._since = now - self._mark, dict(counts), now
    else:
      self._open.update(counts)

  def call(self, fn: Callable, *args, **counts: int) -> Any:
    """`fn(*args)` timed as one unit; the keyword arguments are its counts (see `done`).

    Usage: `state, metrics = timer.call(step, state, batch, steps=1, samples=256)`.
    """
    self.mark()
    out = fn(*args)
    self.done(out, **counts)
    return out

  def lap(self, wait_for: Any = None) -> Lap:
    """Closes the open interval: waits for `wait_for` (the last output), reads the clock.

    Returns the interval's counts and seconds, and adds them to the steady
    totals; the next interval starts now. Before the first unit, or with
    nothing counted since the last lap, the lap is empty and adds nothing.
    """
    if wait_for is not None:
      jax.block_until_ready(wait_for)
    now = self._clock()
    if self._since is None:
      return Lap({}, 0.0)
    lap = Lap(dict(self._open), now - self._since)
    if lap.counts:
      self.steady.update(lap.counts)
      self.steady_seconds += lap.seconds
    self._open.clear()
    self._since = now
    return lap

  def resume(self) -> None:
    """Restarts the steady clock after time that is not throughput (after a `lap`)."""
    if self._since is not None:
      self._since = self._clock()

  def rates(self) -> dict[str, Optional[float]]:
    """"<count>_per_second" for every count: steady totals over steady seconds; None without any.

    Every count the first unit named appears, so a one-call run still has
    its fields (as None).
    """
    names = list(self.first_counts) + [k for k in self.steady if k not in self.first_counts]
    return {f"{k}_per_second": (self.steady[k] / max(self.steady_seconds, 1e-9) if self.steady[k] else None)
            for k in names}

  def elapsed(self) -> float:
    """Seconds since the timer was made."""
    return self._clock() - self.began


def pass_fields(timer: Timer, unit: str, total: int, seconds: float) -> dict[str, Any]:
  """The throughput fields of one pass over `total` items that took `seconds` in all.

  Args:
    timer: the pass's timer, its last lap closed (`timer.lap(last_output)`),
      its calls counted as `unit`.
    unit: what was counted, e.g. "clouds".

  Returns:
    {"compile_seconds": the first call's seconds (None without calls),
     "<unit>_per_second": the steady rate (items after the first call over
       their time); with one call, the whole pass's rate, and
     "<unit>_per_second_note": says so (only then),
     "<unit>_per_second_overall": total / seconds}.
  """
  overall = total / max(seconds, 1e-9)
  steady = timer.rates().get(f"{unit}_per_second")
  out = {"compile_seconds": timer.compile_seconds, f"{unit}_per_second": steady}
  if steady is None:
    out[f"{unit}_per_second"] = overall
    out[f"{unit}_per_second_note"] = ONE_CALL_NOTE
  out[f"{unit}_per_second_overall"] = overall
  return out
