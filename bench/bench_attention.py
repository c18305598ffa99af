"""Attention alone at CLIP's shapes: cuDNN's fused kernel, XLA's einsums and the Pallas kernel.

  PYTHONPATH=. python bench/bench_attention.py                  # 6,144 images (1,024 clouds x 6 views)
  PYTHONPATH=. python bench/bench_attention.py --batch 8 --repeats 2   # a CPU check (Pallas interpreted)

Each implementation's bfloat16 output (and, for "fwd+bwd", its gradient of
a random linear loss) is compared with XLA's float32 einsums. GB/s counts the
least any implementation can move: q, k, v read and the output written (the
forward); q, k, v and the output's gradient read and the three gradients
written (fwd+bwd, backward recomputing the forward).
"""

import argparse

from clip2point_jax.core import xla_defaults

xla_defaults.apply()  # Before jax starts.

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp
import numpy as np

from bench.lib import device as device_lib
from clip2point_jax.kernels import backend
from clip2point_jax.kernels import short_attention


def implementations(num_warps):
  found = {"xla": short_attention.xla_attention}
  if backend.on_gpu():
    found["cudnn"] = lambda q, k, v: jax.nn.dot_product_attention(q, k, v, implementation="cudnn")
  for warps in num_warps:
    found[f"pallas w{warps}"] = (
        lambda q, k, v, warps=warps: short_attention.pallas_attention(q, k, v, False, warps))
  return found


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=6144)
  parser.add_argument("--tokens", type=int, default=50)
  parser.add_argument("--heads", type=int, default=12)
  parser.add_argument("--head_dim", type=int, default=64)
  parser.add_argument("--num_warps", type=int, nargs="+", default=[2, 4, 8])
  parser.add_argument("--repeats", type=int, default=20)
  args = parser.parse_args()
  shape = (args.batch, args.tokens, args.heads, args.head_dim)
  print(f"attention | {device_lib.describe()} | "
        f"q, k, v bfloat16{list(shape)}", flush=True)
  keys = jax.random.split(jax.random.key(0), 3 * 3)
  qkv_sets = [tuple(jax.random.normal(keys[3 * i + j], shape, jnp.bfloat16) for j in range(3))
              for i in range(3)]
  target = jax.random.normal(jax.random.key(1), shape, jnp.float32)
  # Sequences are independent, so the reference needs only the first few.
  checked = min(args.batch, 64)
  exact_inputs = tuple(t[:checked].astype(jnp.float32) for t in qkv_sets[0])
  exact_forward = jax.jit(short_attention.xla_attention)(*exact_inputs)
  exact_grads = jax.jit(_grads(short_attention.xla_attention, target[:checked]))(exact_inputs)
  tensor_gb = np.prod(shape) * 2 / 1e9
  print(f"{'implementation':<14} {'pass':<8} {'ms':>8} {'GB/s':>8} {'compile s':>9} {'max |err|':>10}")
  for name, attend in implementations(args.num_warps).items():
    for pass_name, fn, exact, tensors in (
        ("forward", lambda qkv, attend=attend: attend(*qkv), exact_forward, 4),
        ("fwd+bwd", _grads(attend, target), exact_grads, 7)):
      jitted = jax.jit(fn)
      try:
        seconds, compile_s, *_ = device_lib.time_compiled(jitted, (), qkv_sets, args.repeats)
        error = max(float(jnp.max(jnp.abs(a[:checked].astype(jnp.float32) - b)))
                    for a, b in zip(jax.tree.leaves(jitted(qkv_sets[0])), jax.tree.leaves(exact)))
      except Exception as e:  # pylint: disable=broad-except
        print(f"{name:<14} {pass_name:<8} failed: {type(e).__name__}: "
              f"{str(e).splitlines()[0][:200]}", flush=True)
        continue
      print(f"{name:<14} {pass_name:<8} {1e3 * seconds:>8.3f} {tensors * tensor_gb / seconds:>8.0f} "
            f"{compile_s:>9.1f} {error:>10.2e}", flush=True)


def _grads(attend, target):
  """qkv -> (dq, dk, dv) of sum(attend(q, k, v) * target)."""
  loss = lambda qkv: jnp.sum(attend(*qkv).astype(jnp.float32) * target)
  return jax.grad(loss)


if __name__ == "__main__":
  main()
