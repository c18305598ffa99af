"""The Pallas inference passes alone, against XLA's: quick-GELU after cuBLAS's fc1,
and a block's layer norm (two XLA passes), in several tilings.

  PYTHONPATH=. python bench/bench_fused_kernels.py                 # zero-shot's and pre-training's shapes
  PYTHONPATH=. python bench/bench_fused_kernels.py --rows 300 --width 128 --intermediate 256 \
      --configs 2048w4 --norm_configs 4w4 --repeats 2   # a CPU check
  PYTHONPATH=. python bench/bench_fused_kernels.py --gemms         # also: the GEMMs XLA compiles zero-shot into

Rows are tokens: 307,200 = 1,024 clouds x 6 views x 50 tokens (zero-shot),
25,600 = 256 samples x 2 depth maps x 50 tokens (a pre-training forward).
Outputs are compared with float32 references from the same bf16 inputs;
TFLOP/s counts fc1's GEMM (2 M K N) over the time of GEMM and activation,
GB/s the layer norm's one read of x and one write of its output.
"""

import argparse
import collections
import re

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp

from bench.lib import device as device_lib
from bench.lib import inputs as inputs_lib
from bench.lib import models
from clip2point_jax.kernels import backend
from clip2point_jax.kernels import fused_layer_norm
from clip2point_jax.kernels import quick_gelu
from renderers import cameras

GELU_CONFIGS = ("2048w4", "4096w8", "8192w8", "16384w16")
NORM_CONFIGS = ("1w4", "2w4", "4w4", "4w8", "8w8", "16w8")


def norm_implementations(configs):
  """"4w4": 4 rows per program, 4 warps."""
  found = {"xla layer norm": lambda x, s, b: fused_layer_norm.flax_layer_norm(
      x, s, b, 1e-5, jnp.bfloat16)}
  for text in configs:
    rows, warps = map(int, text.split("w"))
    found[f"pallas norm {text}"] = (lambda x, s, b, rows=rows, warps=warps:
                                    fused_layer_norm.pallas_layer_norm(
                                        x, s, b, 1e-5, jnp.bfloat16, rows, warps))
  return found


def time_each(found, weights, inputs, exact, repeats, rate):
  """Times each `fn(x, *weights)` over `inputs` and prints a row: ms, `rate(seconds)`,
  compile seconds and the max error of the first input's rows against `exact`."""
  rows = inputs[0].shape[0]
  for name, fn in found.items():
    try:
      jitted = jax.jit(lambda *args, fn=fn: fn(args[-1], *args[:-1]))
      seconds, compile_s, *_ = device_lib.time_compiled(jitted, weights, inputs, repeats)
    except Exception as e:  # pylint: disable=broad-except
      print(f"{name:<28} {rows:>7} failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
      continue
    out = jax.jit(fn)(inputs[0], *weights)[:len(exact)].astype(jnp.float32)
    error = "—" if "only" in name else f"{float(jnp.max(jnp.abs(out - exact))):.2e}"
    print(f"{name:<28} {rows:>7} {1e3 * seconds:>8.3f} {rate(seconds):>14} {compile_s:>9.1f} "
          f"{error:>10}", flush=True)


def bench_norms(args, rows, key):
  scale = 1 + 0.3 * jax.random.normal(jax.random.fold_in(key, 1), (args.width,), jnp.float32)
  bias = jax.random.normal(jax.random.fold_in(key, 2), (args.width,), jnp.float32)
  inputs = [(jax.random.normal(k, (rows, args.width), jnp.float32) * 3).astype(jnp.bfloat16)
            for k in jax.random.split(key, 3)]
  exact = fused_layer_norm.flax_layer_norm(inputs[0][:min(rows, 4096)].astype(jnp.float32),
                                           scale, bias, 1e-5, jnp.float32)
  rate = lambda seconds: f"{2 * rows * args.width * 2 / seconds / 1e9:.0f} GB/s"
  time_each(norm_implementations(args.norm_configs), (scale, bias), inputs, exact, args.repeats,
            rate)


def implementations(configs):
  """fc1 then quick-GELU: XLA's pass, or the Pallas pass ("8192w8": elements
  per program and warps)."""
  found = {
      "xla gemm+bias only": lambda x, w, b: jnp.dot(x, w.astype(x.dtype)) + b.astype(x.dtype),
      "xla gemm, then gelu": lambda x, w, b: quick_gelu.quick_gelu(
          jnp.dot(x, w.astype(x.dtype)) + b.astype(x.dtype)),
  }
  approx = backend.on_gpu()
  for text in configs:
    block, warps = map(int, text.split("w"))
    found[f"xla gemm, pallas gelu {text}"] = (
        lambda x, w, b, block=block, warps=warps: quick_gelu.pallas_quick_gelu(
            jnp.dot(x, w.astype(x.dtype)) + b.astype(x.dtype), block, warps, approx))
  return found


def print_gemms(batch: int):
  """Lists the GEMM custom calls in the compiled zero-shot program, by shape."""
  config = models.clip_config()
  classify, params, text = models.zeroshot_classifier(config, jnp.bfloat16, "depth-pallas-bf16res",
                                                      cameras.VIEWS_ZERO_SHOT)
  hlo = classify.lower(params, text, inputs_lib.clouds(batch, 1024, 0)).compile().as_text()
  calls = collections.Counter()
  for line in hlo.splitlines():
    target = re.search(r'custom_call_target="([^"]+)"', line)
    if target and ("matmul" in target.group(1) or "gemm" in target.group(1).lower()):
      shape = line.split("=", 1)[1].split("custom-call", 1)[0].strip()
      calls[(target.group(1), shape)] += 1
  print(f"GEMM custom calls in zero-shot at batch {batch} (count, target, result shape):")
  for (target, shape), count in sorted(calls.items()):
    print(f"  {count:>3}  {target}  {shape[:150]}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", type=int, nargs="+", default=[307200, 25600])
  parser.add_argument("--width", type=int, default=768)
  parser.add_argument("--intermediate", type=int, default=3072)
  parser.add_argument("--configs", nargs="*", default=list(GELU_CONFIGS),
                      help="quick-GELU tilings: elements per program, w, warps (none: skip)")
  parser.add_argument("--norm_configs", nargs="*", default=list(NORM_CONFIGS),
                      help="layer-norm tilings: rows per program, w, warps (none: skip)")
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--gemms", action="store_true", help="list zero-shot's compiled GEMMs")
  args = parser.parse_args()
  print(f"fused kernels | {device_lib.describe()} | "
        f"K={args.width}, N={args.intermediate}, bf16", flush=True)
  if args.gemms:
    print_gemms(64)
  keys = jax.random.split(jax.random.key(0), 4)
  w = jax.random.normal(keys[1], (args.width, args.intermediate), jnp.float32) * 0.03
  b = jax.random.normal(keys[2], (args.intermediate,), jnp.float32) * 0.5
  print(f"{'implementation':<28} {'rows':>7} {'ms':>8} {'TFLOP/s, GB/s':>14} {'compile s':>9} "
        f"{'max |err|':>10}", flush=True)
  for rows in args.rows:
    inputs = [jax.random.normal(k, (rows, args.width), jnp.bfloat16) for k in
              jax.random.split(keys[0], 3)]
    exact = quick_gelu.quick_gelu(
        inputs[0][:min(rows, 4096)].astype(jnp.float32) @ w.astype(jnp.bfloat16).astype(jnp.float32)
        + b.astype(jnp.bfloat16).astype(jnp.float32))
    rate = lambda seconds, rows=rows: (
        f"{2 * rows * args.width * args.intermediate / seconds / 1e12:.1f} TFLOP/s")
    time_each(implementations(args.configs), (w, b), inputs, exact, args.repeats, rate)
    if args.norm_configs:
      bench_norms(args, rows, keys[3])


if __name__ == "__main__":
  main()
