"""Self-attention over short sequences: XLA's einsums, and one fused Pallas kernel.

CLIP's towers attend over 50 (vision) or 77 (text) tokens. Flash-attention
kernels such as cuDNN's are built for long sequences: at 50 tokens most of
their 128-row tiles are padding and each tile pays the full set-up. The
Pallas kernel here gives each (sequence, head) pair one program that loads
its whole q, k and v at once, padded in registers to the next power of two,
so attention costs one read of q, k, v and one write of the output.

The backward kernel recomputes each head's probabilities from q and k rather
than storing them, as flash attention does. Both kernels are wrapped by
`batch_parallel` so that XLA's partitioner splits them over the devices
holding the batch and heads; `jax.vmap` over them is not supported. They
compile with Triton on GPU targets, run interpreted on CPUs and refuse TPUs
(`backend.interpret`).
"""

import functools
import math

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as plgpu

from clip2point_jax.kernels import backend
from clip2point_jax.kernels import batch_parallel

# Triton's matrix units need every tile dimension to be at least 16.
_MIN_TILE = 16
_MASKED = -1e30


def xla_attention(q, k, v, causal: bool = False):
  """Softmax attention as einsums, softmax in float32.

  q, k, v: float[B, T, H, D] (one dtype); returns the same shape and dtype.
  """
  length, head_dim = q.shape[1], q.shape[-1]
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k,
                      preferred_element_type=jnp.float32) * head_dim**-0.5
  if causal:
    allowed = jnp.tril(jnp.ones((length, length), bool))
    logits = jnp.where(allowed, logits, jnp.finfo(jnp.float32).min)
  weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bhqk,bkhd->bqhd", weights, v)


def _tile_masks(tile_shape, length, head_dim):
  """(rows, row mask, tile mask): which rows and elements of a padded tile are real."""
  rows = jnp.arange(tile_shape[0])
  in_row = rows < length
  in_tile = in_row[:, None] & (jnp.arange(tile_shape[1]) < head_dim)[None, :]
  return rows, in_row, in_tile


def _probabilities(q, k, rows, in_row, head_dim, causal):
  """float32[T', T'] softmax(q k^T / sqrt(d)) of one head; padded keys get 0."""
  # exp2 with log2(e) folded into the scale is one instruction per element.
  logits = plgpu.dot(q, k.T) * (head_dim**-0.5 * math.log2(math.e))
  allowed = in_row[None, :]
  if causal:
    allowed = allowed & (rows[None, :] <= rows[:, None])
  logits = jnp.where(allowed, logits, _MASKED)
  unnormalised = jnp.exp2(logits - jnp.max(logits, axis=-1)[:, None])
  return unnormalised / jnp.sum(unnormalised, axis=-1)[:, None]


def _forward_kernel(q_ref, k_ref, v_ref, out_ref, *, length, head_dim, causal):
  rows, in_row, in_tile = _tile_masks(q_ref.shape, length, head_dim)
  q, k, v = (plgpu.load(ref, mask=in_tile, other=0.0) for ref in (q_ref, k_ref, v_ref))
  probabilities = _probabilities(q, k, rows, in_row, head_dim, causal)
  out = plgpu.dot(probabilities.astype(v.dtype), v)
  plgpu.store(out_ref, out.astype(out_ref.dtype), mask=in_tile)


def _backward_kernel(q_ref, k_ref, v_ref, grad_out_ref, grad_q_ref, grad_k_ref, grad_v_ref,
                     *, length, head_dim, causal):
  """Recomputes the head's probabilities P, then dV = P^T dO, dS = P * (dO V^T -
  rowsum(P * dO V^T)), dQ = dS K / sqrt(d) and dK = dS^T Q / sqrt(d)."""
  rows, in_row, in_tile = _tile_masks(q_ref.shape, length, head_dim)
  q, k, v, grad_out = (plgpu.load(ref, mask=in_tile, other=0.0)
                       for ref in (q_ref, k_ref, v_ref, grad_out_ref))
  probabilities = _probabilities(q, k, rows, in_row, head_dim, causal)
  grad_v = plgpu.dot(probabilities.astype(v.dtype).T, grad_out)
  grad_probabilities = plgpu.dot(grad_out, v.T)
  grad_logits = probabilities * (
      grad_probabilities - jnp.sum(probabilities * grad_probabilities, axis=-1)[:, None])
  grad_logits = (grad_logits * head_dim**-0.5).astype(q.dtype)
  grad_q = plgpu.dot(grad_logits, k)
  grad_k = plgpu.dot(grad_logits.T, q)
  for ref, grad in ((grad_q_ref, grad_q), (grad_k_ref, grad_k), (grad_v_ref, grad_v)):
    plgpu.store(ref, grad.astype(ref.dtype), mask=in_tile)


def _call(kernel, arrays, num_outputs, causal, num_warps, interpret):
  """Runs `kernel` with one program per (sequence, head) over float[B, T, H, D] arrays."""
  batch, length, heads, head_dim = arrays[0].shape
  tile = (pl.next_power_of_2(max(length, _MIN_TILE)),
          pl.next_power_of_2(max(head_dim, _MIN_TILE)))
  # Blocks reach past the last token; the kernels' masks keep those rows out.
  spec = pl.BlockSpec((None, tile[0], None, tile[1]), lambda b, h: (b, 0, h, 0))
  outputs = pl.pallas_call(
      functools.partial(kernel, length=length, head_dim=head_dim, causal=causal),
      grid=(batch, heads),
      in_specs=[spec] * len(arrays),
      out_specs=[spec] * num_outputs,
      out_shape=[jax.ShapeDtypeStruct(a.shape, a.dtype) for a in arrays[:num_outputs]],
      compiler_params=plgpu.CompilerParams(num_warps=num_warps, num_stages=1),
      interpret=interpret,
      name=kernel.__name__.strip("_"),
  )(*arrays)
  return outputs[0] if num_outputs == 1 else tuple(outputs)


_FACTORS = "b t h d"


@functools.cache
def _op(kernel, num_inputs: int, num_outputs: int, causal: bool, num_warps: int, interpret: bool):
  """`_call(kernel, ...)` as an op XLA splits over the batch and head axes: each
  device runs it on the sequences and heads it holds; no collectives.

  One op per `interpret` (per target platform): XLA's partitioner traces
  `local` again when it compiles, maybe outside the target's block.
  """
  rule = ", ".join([_FACTORS] * num_inputs) + " -> " + ", ".join([_FACTORS] * num_outputs)
  local = lambda *arrays: _call(kernel, arrays, num_outputs, causal, num_warps, interpret)
  return batch_parallel.batch_parallel(local, rule, parallel="b h")


def _target_op(kernel, num_inputs: int, num_outputs: int, causal: bool, num_warps: int):
  """`_op` for the target platform; UserError on a TPU (`backend.interpret`)."""
  interpret = backend.interpret(f"the attention kernel ({kernel.__name__.strip('_')})")
  return _op(kernel, num_inputs, num_outputs, causal, num_warps, interpret)


def _forward(q, k, v, causal, num_warps):
  return _target_op(_forward_kernel, 3, 1, causal, num_warps)(q, k, v)


# 2 warps per program beat 4 and 8 on an H200 (the kernel's first version; bench/RESULTS.md).
@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def pallas_attention(q, k, v, causal: bool = False, num_warps: int = 2):
  """`xla_attention` as one Pallas kernel (Triton on GPUs, interpreted
  elsewhere), and its gradient as another. Split over devices by batch and
  heads when the inputs are.

  q, k, v: float[B, T, H, D] (one dtype), T up to a few hundred tokens;
  returns the same shape and dtype.
  """
  return _forward(q, k, v, causal, num_warps)


def _forward_with_residuals(q, k, v, causal, num_warps):
  return _forward(q, k, v, causal, num_warps), (q, k, v)


def _backward(causal, num_warps, residuals, grad_out):
  return tuple(_target_op(_backward_kernel, 4, 3, causal, num_warps)(*residuals, grad_out))


pallas_attention.defvjp(_forward_with_residuals, _backward)
