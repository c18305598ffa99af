"""CLIP's first MLP layer and its quick-GELU as one Pallas kernel (Triton on GPUs).

cuBLAS fuses the bias add into a GEMM's epilogue but has no quick-GELU
(x * sigmoid(1.702 x)), so XLA writes fc1's 3,072-wide output, reads it back
for the activation and writes it again: on an H200 that pass is about 12% of
zero-shot's time. This kernel applies bias and activation to each output
tile while it is still in registers, so the activations are written once.

`dense_quick_gelu` runs the kernel when it is called plainly (inference) and
XLA's cuBLAS path under differentiation: the backward pass needs fc1's
pre-activation, which the kernel never writes. Like the attention kernel, it
is wrapped so that XLA splits it over the devices holding the batch.
"""

import functools

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from clip2point_jax.models import batch_parallel

QUICK_GELU_SCALE = 1.702


def quick_gelu(x):
  return x * jax.nn.sigmoid(QUICK_GELU_SCALE * x)


def xla_dense_quick_gelu(x, kernel, bias):
  """quick_gelu(x @ kernel + bias) as `nn.Dense` and XLA run it: float[..., K] ->
  float[..., N] in x's dtype (the matmul and bias add in x's dtype)."""
  h = jnp.dot(x, kernel.astype(x.dtype)) + bias.astype(x.dtype)
  return quick_gelu(h)


def _tanh_quick_gelu(h):
  """quick_gelu(h) = h/2 (1 + tanh(1.702 h / 2)): one tanh.approx instruction per
  element instead of exp and a division (relative error ~2^-11, under bf16's 2^-8)."""
  return 0.5 * h * (1.0 + plgpu.approx_tanh(0.5 * QUICK_GELU_SCALE * h))


def _kernel(x_ref, w_ref, b_ref, out_ref, *, rows, col_blocks, block_k, approx):
  block_m = out_ref.shape[0]
  first_row = pl.program_id(0) // col_blocks * block_m
  in_rows = (first_row + jnp.arange(block_m)) < rows

  def accumulate(step, acc):
    cols = pl.ds(step * block_k, block_k)
    x = plgpu.load(x_ref.at[:, cols], mask=in_rows[:, None], other=0.0)
    return acc + jnp.dot(x, w_ref[cols, :], preferred_element_type=jnp.float32)

  acc = jnp.zeros(out_ref.shape, jnp.float32)
  acc = jax.lax.fori_loop(0, x_ref.shape[1] // block_k, accumulate, acc)
  h = acc + b_ref[...].astype(jnp.float32)[None, :]
  activation = _tanh_quick_gelu if approx else quick_gelu
  plgpu.store(out_ref, activation(h).astype(out_ref.dtype), mask=in_rows[:, None])


@functools.partial(jax.jit, static_argnames=("block_m", "block_n", "block_k", "num_warps",
                                             "num_stages", "approx"))
def pallas_dense_quick_gelu(x, kernel, bias, block_m: int = 128, block_n: int = 256,
                            block_k: int = 64, num_warps: int = 8, num_stages: int = 3,
                            approx: bool = False):
  """quick_gelu(x @ kernel + bias) in one kernel, float32 accumulation and activation.

  x: bf16[M, K]; kernel: float[K, N] and bias: float[N] (cast to x's dtype);
  returns bf16[M, N]. K must be a multiple of block_k and N of block_n; any M.
  approx: the activation through the GPU's tanh.approx (GPUs only).
  """
  rows, depth = x.shape
  width = kernel.shape[1]
  if depth % block_k or width % block_n:
    raise ValueError(f"K={depth} and N={width} must be multiples of "
                     f"block_k={block_k} and block_n={block_n}")
  row_blocks, col_blocks = pl.cdiv(rows, block_m), width // block_n
  # One flat grid, column blocks fastest: consecutive programs share one row
  # block of x, so x is read from HBM once and the kernel stays in L2.
  row_of = lambda p: p // col_blocks
  col_of = lambda p: p % col_blocks
  return pl.pallas_call(
      functools.partial(_kernel, rows=rows, col_blocks=col_blocks, block_k=block_k,
                        approx=approx),
      grid=(row_blocks * col_blocks,),
      in_specs=[pl.BlockSpec((block_m, depth), lambda p: (row_of(p), 0)),
                pl.BlockSpec((depth, block_n), lambda p: (0, col_of(p))),
                pl.BlockSpec((block_n,), lambda p: (col_of(p),))],
      out_specs=pl.BlockSpec((block_m, block_n), lambda p: (row_of(p), col_of(p))),
      out_shape=jax.ShapeDtypeStruct((rows, width), x.dtype),
      compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=num_stages),
      interpret=jax.default_backend() != "gpu",
      name="dense_quick_gelu",
  )(x, kernel.astype(x.dtype), bias.astype(x.dtype))


def _activation_kernel(x_ref, out_ref, *, size, approx):
  block = x_ref.shape[0]
  inside = pl.program_id(0) * block + jnp.arange(block) < size
  x = plgpu.load(x_ref, mask=inside, other=0.0).astype(jnp.float32)
  activation = _tanh_quick_gelu if approx else quick_gelu
  plgpu.store(out_ref, activation(x).astype(out_ref.dtype), mask=inside)


@functools.partial(jax.jit, static_argnames=("block", "num_warps", "approx"))
def pallas_quick_gelu(x, block: int = 4096, num_warps: int = 8, approx: bool = False):
  """quick_gelu(x) elementwise in one pass, float32 inside: float[...] -> the same.

  approx: through the GPU's tanh.approx (GPUs only).
  """
  flat = x.reshape(-1)
  out = pl.pallas_call(
      functools.partial(_activation_kernel, size=flat.size, approx=approx),
      grid=(pl.cdiv(flat.size, block),),
      in_specs=[pl.BlockSpec((block,), lambda i: (i,))],
      out_specs=pl.BlockSpec((block,), lambda i: (i,)),
      out_shape=jax.ShapeDtypeStruct(flat.shape, x.dtype),
      compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=1),
      interpret=jax.default_backend() != "gpu",
      name="quick_gelu",
  )(flat)
  return out.reshape(x.shape)


def supported(depth: int, width: int) -> bool:
  """Whether the kernel tiles fc1's [K=depth, N=width] weights."""
  return depth % 32 == 0 and width % 64 == 0


# Rows from which 128 x 256 output tiles beat 128 x 128 ones.
_WIDE_TILES_FROM_ROWS = 65536


def _tiling(rows: int, depth: int, width: int) -> dict:
  # The fastest tilings on an H200 (bench_fused_kernels.py, bench/RESULTS.md): 128 x 256
  # x 64 at zero-shot's 307,200 rows, 128 x 128 x 64 at 25,600; 8 warps, 3 stages.
  block_n = 256 if rows >= _WIDE_TILES_FROM_ROWS and width % 256 == 0 else 128
  return dict(block_m=128, block_n=block_n if width % block_n == 0 else 64,
              block_k=64 if depth % 64 == 0 else 32, num_warps=8, num_stages=3,
              approx=jax.default_backend() == "gpu")


def _run_local(x, kernel, bias):
  """The kernel on this device's share: x bf16[B, T, K] -> bf16[B, T, N]."""
  rows = x.reshape(-1, x.shape[-1])
  out = pallas_dense_quick_gelu(rows, kernel, bias, **_tiling(rows.shape[0], *kernel.shape))
  return out.reshape(*x.shape[:-1], kernel.shape[1])


_partitioned = batch_parallel.batch_parallel(_run_local, "b t k, k n, n -> b t n")


@jax.custom_vjp
def dense_quick_gelu(x, kernel, bias):
  """quick_gelu(x @ kernel + bias): the Pallas kernel, or XLA's path when differentiated.

  x: bf16[B, T, K]; kernel: float32[K, N]; bias: float32[N] (both used in
  bf16); returns bf16[B, T, N]. Needs `supported(K, N)`.
  """
  return _partitioned(x, kernel, bias)


def _forward_for_gradient(x, kernel, bias):
  return jax.vjp(xla_dense_quick_gelu, x, kernel, bias)


def _backward(vjp, grad_out):
  return vjp(grad_out)


dense_quick_gelu.defvjp(_forward_for_gradient, _backward)


def _activation_local(x):
  return pallas_quick_gelu(x, approx=jax.default_backend() == "gpu")


_activation_partitioned = batch_parallel.batch_parallel(_activation_local, "b t n -> b t n")


@jax.custom_vjp
def quick_gelu_kernel(h):
  """quick_gelu(h) as one Pallas pass after cuBLAS's fc1, or XLA's when differentiated.

  h: bf16[B, T, N] -> bf16[B, T, N].
  """
  return _activation_partitioned(h)


def _activation_forward_for_gradient(h):
  return jax.vjp(quick_gelu, h)


quick_gelu_kernel.defvjp(_activation_forward_for_gradient, _backward)
