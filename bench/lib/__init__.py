"""What the benchmarks share.

  timing         wall-clock timers (no framework: the torch baselines use them too)
  device         jax programs timed compiled, the card's matmul rate, memory, the device line
  flops          analytic matmul FLOPs of the image tower and of a pre-training sample
  inputs         synthetic point clouds, unit feature rows, a process's share of a batch
  models         the image tower's configs and params, kernel settings by variant name
  trace_summary  where a jitted program spends its GPU time (a profiler trace, summarised)
"""
