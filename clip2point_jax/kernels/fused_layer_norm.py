"""A transformer block's layer norm as one Pallas kernel (Triton on GPUs).

XLA runs `nn.LayerNorm` on the residual stream as two passes, one for the
statistics and one to normalise, so every token is read twice. This kernel
holds a block of whole rows in registers: one read of x, one write of the
normalised bf16 rows that the next matmul takes. Statistics are float32, as
in `nn.LayerNorm` (mean and mean of squares).

`layer_norm` runs the kernel when it is called plainly (inference) and
`nn.LayerNorm` itself under differentiation, so training is unchanged. The
kernel compiles with Triton on GPU targets, runs interpreted on CPUs and
refuses TPUs (`backend.interpret`).
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from clip2point_jax.kernels import backend
from clip2point_jax.kernels import batch_parallel


def flax_layer_norm(x, scale, bias, epsilon: float, out_dtype):
  """`nn.LayerNorm(epsilon, dtype=float32)` over the last axis, cast to out_dtype."""
  module = nn.LayerNorm(epsilon=epsilon, dtype=jnp.float32, param_dtype=jnp.float32)
  return module.apply({"params": {"scale": scale, "bias": bias}}, x).astype(out_dtype)


def _kernel(x_ref, scale_ref, bias_ref, out_ref, *, rows, width, epsilon):
  block_rows, padded = x_ref.shape
  in_rows = pl.program_id(0) * block_rows + jnp.arange(block_rows) < rows
  in_cols = jnp.arange(padded) < width
  inside = in_rows[:, None] & in_cols[None, :]
  x = plgpu.load(x_ref, mask=inside, other=0.0).astype(jnp.float32)
  mean = jnp.sum(x, axis=1) / width
  mean_square = jnp.sum(x * x, axis=1) / width
  variance = jnp.maximum(0.0, mean_square - mean * mean)
  scale = plgpu.load(scale_ref, mask=in_cols, other=0.0)
  bias = plgpu.load(bias_ref, mask=in_cols, other=0.0)
  multiplier = jax.lax.rsqrt(variance + epsilon)[:, None] * scale[None, :]
  out = (x - mean[:, None]) * multiplier + bias[None, :]
  plgpu.store(out_ref, out.astype(out_ref.dtype), mask=inside)


def pallas_layer_norm(x, scale, bias, epsilon: float, out_dtype=jnp.bfloat16,
                      block_rows: int = 4, num_warps: int = 4):
  """Layer norm of each row in one kernel, for the target platform.

  x: float[M, D]; scale, bias: float32[D]; returns out_dtype[M, D].
  """
  return _pallas_layer_norm(x, scale, bias, epsilon, out_dtype, block_rows, num_warps,
                            _interpret())


def _interpret() -> bool:
  return backend.interpret("the layer-norm kernel")


# `interpret` is static, so a trace for one target is never reused for another.
@functools.partial(jax.jit, static_argnames=("epsilon", "out_dtype", "block_rows", "num_warps",
                                             "interpret"))
def _pallas_layer_norm(x, scale, bias, epsilon, out_dtype, block_rows, num_warps, interpret):
  rows, width = x.shape
  padded = pl.next_power_of_2(width)
  # Blocks reach past the last column and row; the kernel's masks keep them out.
  return pl.pallas_call(
      functools.partial(_kernel, rows=rows, width=width, epsilon=epsilon),
      grid=(pl.cdiv(rows, block_rows),),
      in_specs=[pl.BlockSpec((block_rows, padded), lambda i: (i, 0)),
                pl.BlockSpec((padded,), lambda i: (0,)),
                pl.BlockSpec((padded,), lambda i: (0,))],
      out_specs=pl.BlockSpec((block_rows, padded), lambda i: (i, 0)),
      out_shape=jax.ShapeDtypeStruct((rows, width), out_dtype),
      compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=1),
      interpret=interpret,
      name="layer_norm",
  )(x, scale.astype(jnp.float32), bias.astype(jnp.float32))


def _run_local(x, scale, bias, epsilon, out_dtype, interpret):
  """The kernel on this device's share: x float[B, T, D] -> out_dtype[B, T, D]."""
  out = _pallas_layer_norm(x.reshape(-1, x.shape[-1]), scale, bias, epsilon, out_dtype,
                           block_rows=4, num_warps=4, interpret=interpret)
  return out.reshape(x.shape)


@functools.cache
def _op(epsilon: float, out_dtype, interpret: bool):
  """The partitioned, differentiable op; one per target (`interpret`), as in short_attention."""
  def local(x, scale, bias):
    return _run_local(x, scale, bias, epsilon, out_dtype, interpret)

  def reference(x, scale, bias):
    return flax_layer_norm(x, scale, bias, epsilon, out_dtype)
  return batch_parallel.with_reference_gradient(
      batch_parallel.batch_parallel(local, "b t d, d, d -> b t d"), reference)


def layer_norm(x, scale, bias, epsilon: float, out_dtype):
  """Layer norm over the last axis: the Pallas kernel, or `nn.LayerNorm` when differentiated.

  x: float[B, T, D]; scale, bias: float32[D]; returns out_dtype[B, T, D].
  """
  return _op(epsilon, jnp.dtype(out_dtype), _interpret())(x, scale, bias)
