"""jax programs timed on the present device, the card's matmul rate and memory, its line in a header."""

import resource
import statistics

import jax
import jax.numpy as jnp

from bench.lib import timing

# Dense bf16 tensor-core peaks from NVIDIA's data sheets (TFLOP/s, SXM parts).
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def describe(device=None) -> str:
  """"gpu NVIDIA H100 80GB HBM3 | jax 0.x": the device and jax, for a header line."""
  device = device or jax.devices()[0]
  return f"{device.platform} {device.device_kind} | jax {jax.__version__}"


def datasheet_tflops(device=None) -> float:
  """The data-sheet bf16 peak of a known GPU (`PEAK_TFLOPS`), else 0."""
  kind = (device or jax.devices()[0]).device_kind
  return next((v for k, v in PEAK_TFLOPS.items() if k in kind), 0.0)


def compile_seconds(jitted, *args):
  """(`jitted.lower(*args).compile()`, the seconds that took)."""
  return timing.seconds_of(lambda: jitted.lower(*args).compile())


def time_compiled(jitted, fixed, inputs, repeats):
  """Compiles `jitted(*fixed, x)` once, then times the compiled program over
  `repeats` calls rotating through `inputs` (after one warm-up pass): each call
  waited for, and the calls back to back.

  Returns:
    (median seconds waited, compile seconds, spread seconds, the program's GiB,
     seconds per call back to back).
  """
  compiled, compile_s = compile_seconds(jitted, *fixed, inputs[0])
  for x in inputs:
    jax.block_until_ready(compiled(*fixed, x))
  calls = iter(range(repeats))
  times = timing.waited_seconds(
      lambda: jax.block_until_ready(compiled(*fixed, inputs[next(calls) % len(inputs)])), repeats)
  back_to_back = timing.back_to_back_seconds(
      lambda i: compiled(*fixed, inputs[i % len(inputs)]), jax.block_until_ready, repeats)
  return (statistics.median(times), compile_s, max(times) - min(times), program_gib(compiled),
          back_to_back)


def matmul_tflops(size: int = 8192, repeats: int = 30) -> float:
  """The device's bf16 matmul rate on random operands (bf16 out, float32
  accumulation, as torch's bf16 matmul): median of `repeats` after as many
  warm-up products, so the clocks have ramped up."""
  keys = jax.random.split(jax.random.key(1), 2)
  a, b = (jax.random.normal(k, (size, size), jnp.bfloat16) for k in keys)
  product = jax.jit(jnp.dot)
  seconds = timing.median_seconds(lambda: product(a, b).block_until_ready(), repeats,
                                  warmup=repeats)
  return 2 * size**3 / seconds / 1e12


def program_gib(compiled) -> float:
  """GiB one device needs for a compiled program (`jit(f).lower(...).compile()`):
  XLA's own peak for it where reported, else arguments + outputs + temporaries
  - donated aliases. Unlike the allocator's peak, it is per program, not per
  process, so runs of one process can be compared."""
  stats = compiled.memory_analysis()
  if stats is None:
    return float("nan")
  peak = getattr(stats, "peak_memory_in_bytes", 0) or (
      stats.argument_size_in_bytes + stats.output_size_in_bytes + stats.temp_size_in_bytes
      - stats.alias_size_in_bytes)
  return peak / 2**30


def peak_gib() -> float:
  """The allocator's peak on device 0 since the process started, in GiB (nan where not reported)."""
  stats = jax.devices()[0].memory_stats() or {}
  return stats.get("peak_bytes_in_use", float("nan")) / 2**30


def peak_memory() -> str:
  """The device's peak memory, or the host's peak RSS where the device reports none (a CPU)."""
  peak = peak_gib()
  if peak == peak:  # Not nan.
    return f"device peak {peak:.2f} GiB"
  return f"host peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
