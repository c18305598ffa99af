"""CLIP's quick-GELU, x * sigmoid(1.702 x), as one Pallas pass (Triton on GPUs).

cuBLAS fuses fc1's bias into its GEMM but has no quick-GELU epilogue, so the
activation is a pass of its own over the 3,072-wide hidden layer. XLA's pass
computes an exact exponential and division per element and stays well under
the card's memory bandwidth; this one uses the GPU's tanh.approx instruction
and reads and writes each element once. On an H200, zero-shot's 12 passes
take about 5 ms less (bench/RESULTS.md). A kernel that fused the activation
into fc1's GEMM as well was slower: Triton's GEMM reaches ~460 TFLOP/s here,
cuBLAS ~740.

`quick_gelu_kernel` runs the kernel when it is called plainly (inference) and
XLA's activation under differentiation, so training is unchanged. It is
wrapped so that XLA splits it over the devices holding the batch. The kernel
compiles with Triton on GPU targets, runs interpreted on CPUs and refuses
TPUs (`backend.interpret`).
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from clip2point_jax.kernels import backend
from clip2point_jax.kernels import batch_parallel

SCALE = 1.702


def quick_gelu(x):
  """x * sigmoid(1.702 x), as transformers' CLIP computes it."""
  return x * jax.nn.sigmoid(SCALE * x)


def _tanh_quick_gelu(x):
  """quick_gelu(x) = x/2 (1 + tanh(1.702 x / 2)): one tanh.approx instruction per
  element instead of exp and a division (relative error ~2^-11, under bf16's 2^-8)."""
  return 0.5 * x * (1.0 + plgpu.approx_tanh(0.5 * SCALE * x))


def _kernel(x_ref, out_ref, *, size, approx):
  block = x_ref.shape[0]
  inside = pl.program_id(0) * block + jnp.arange(block) < size
  x = plgpu.load(x_ref, mask=inside, other=0.0).astype(jnp.float32)
  activation = _tanh_quick_gelu if approx else quick_gelu
  plgpu.store(out_ref, activation(x).astype(out_ref.dtype), mask=inside)


def pallas_quick_gelu(x, block: int = 8192, num_warps: int = 8, approx: bool = False):
  """quick_gelu(x) elementwise in one pass, float32 inside: float[...] -> the same.

  approx: through the GPU's tanh.approx (GPUs only). 8,192 elements and 8
  warps per program were the fastest on an H200 (bench_fused_kernels.py).
  """
  return _pallas_quick_gelu(x, block, num_warps, approx, _interpret())


def _interpret() -> bool:
  return backend.interpret("the quick-GELU kernel")


# `interpret` is static, so a trace for one target is never reused for another.
@functools.partial(jax.jit, static_argnames=("block", "num_warps", "approx", "interpret"))
def _pallas_quick_gelu(x, block, num_warps, approx, interpret):
  flat = x.reshape(-1)
  out = pl.pallas_call(
      functools.partial(_kernel, size=flat.size, approx=approx),
      grid=(pl.cdiv(flat.size, block),),
      in_specs=[pl.BlockSpec((block,), lambda i: (i,))],
      out_specs=pl.BlockSpec((block,), lambda i: (i,)),
      out_shape=jax.ShapeDtypeStruct(flat.shape, x.dtype),
      compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=1),
      interpret=interpret,
      name="quick_gelu",
  )(flat)
  return out.reshape(x.shape)


@functools.cache
def _op(interpret: bool):
  """The partitioned, differentiable op; one per target (`interpret`), as in short_attention.

  Compiled (a GPU), it uses the GPU's tanh.approx; interpreted, the exact activation.
  """
  local = lambda x: _pallas_quick_gelu(x, block=8192, num_warps=8, approx=not interpret,
                                       interpret=interpret)
  partitioned = batch_parallel.batch_parallel(local, "b t n -> b t n")
  return batch_parallel.with_reference_gradient(partitioned, quick_gelu)


def quick_gelu_kernel(x):
  """The Pallas pass at inference, XLA's ops when differentiated, for the target
  platform: x float[B, T, N] -> the same shape and dtype."""
  return _op(_interpret())(x)
