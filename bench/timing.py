"""Wall-clock timing shared by the benchmarks; imports no framework."""

import statistics
import time
from typing import Callable


def median_seconds(step: Callable[[], object], repeats: int, warmup: int = 1) -> float:
  """Median wall time of `step()` over `repeats` calls, after `warmup` calls.

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
  return statistics.median(times)
