"""Wall-clock timing shared by the benchmarks; imports no framework."""

import statistics
import time
from typing import Callable


def waited_seconds(step: Callable[[], object], repeats: int, warmup: int = 0) -> list[float]:
  """Wall time of each of `repeats` calls of `step()`, after `warmup` calls.

  `step` must wait for its own result (`block_until_ready`,
  `torch.cuda.synchronize`), so each call is timed to completion.
  """
  for _ in range(warmup):
    step()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return times


def median_seconds(step: Callable[[], object], repeats: int, warmup: int = 1) -> float:
  """Median of `waited_seconds(step, repeats, warmup)`."""
  return statistics.median(waited_seconds(step, repeats, warmup))


def back_to_back_seconds(launch: Callable[[int], object], wait: Callable[[object], object],
                         repeats: int) -> float:
  """Mean wall time per call of `launch(0..repeats-1)` issued without waiting
  in between, then `wait(last result)`: steady-state throughput, as a loop
  over batches runs, without a host round trip per call."""
  start = time.perf_counter()
  out = None
  for i in range(repeats):
    out = launch(i)
  wait(out)
  return (time.perf_counter() - start) / repeats


def seconds_of(fn: Callable[[], object]) -> tuple[object, float]:
  """(fn(), its wall seconds)."""
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start
