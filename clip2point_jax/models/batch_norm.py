"""PyTorch's `nn.BatchNorm1d` in flax, with masks and a mapped batch axis.

Both adapters (GDPA, models/gdpa.py) and the 3D encoder (Point Transformer,
models/point_transformer.py) reproduce results trained in PyTorch, so their
BatchNorm follows PyTorch where `flax.linen.BatchNorm` does not:
  - the running variance moves towards the *unbiased* batch variance
    (times n / (n - 1), n the count of normalised rows), while normalising
    uses the biased one;
  - `momentum` is PyTorch's: the weight of the new value (0.1).
The variance is two-pass (E[(x - mean)^2]): E[x^2] - E[x]^2 loses digits
that PyTorch keeps. Statistics are at least float32.

`mask` keeps rows (padded points) out of the statistics. Under `jax.jit` with
the batch sharded, XLA already reduces over the global batch; `axis_name` is
for `shard_map`/`vmap`, where each instance sees its shard: sums and counts are
then `psum`-ed over it, so the statistics are the global batch's exactly,
however the real rows are spread over the shards.

Variables: params "scale", "bias"; "batch_stats" "mean", "var" (flax's
names, so checkpoints and the Pointcept name map are unchanged).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

MOMENTUM = 0.1  # PyTorch's default: the weight of the new batch's statistics
EPSILON = 1e-5


class BatchNorm(nn.Module):
  """BatchNorm over the last axis, statistics over all others.

  Attributes:
    momentum: PyTorch's convention (the new value's weight).
    epsilon: added to the variance.
    dtype: statistics and output dtype, promoted to at least float32
      (None: the input's).
    axis_name: a mapped axis whose instances together hold the batch.
  """
  momentum: float = MOMENTUM
  epsilon: float = EPSILON
  dtype: jnp.dtype | None = None
  axis_name: str | None = None

  @nn.compact
  def __call__(self, x, use_running_average: bool, *, mask=None):
    """x: float[..., D] -> float[..., D] (the statistics dtype).

    mask: bool broadcastable to x[..., :1] (True: the row counts), or None.
    """
    dtype = jnp.promote_types(self.dtype or x.dtype, jnp.float32)
    features = x.shape[-1]
    scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
    running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,), jnp.float32)
    running_var = self.variable("batch_stats", "var", jnp.ones, (features,), jnp.float32)
    x = x.astype(dtype)
    if use_running_average:
      mean, var = running_mean.value.astype(dtype), running_var.value.astype(dtype)
    else:
      mean, var, count = self._batch_statistics(x, mask)
      if not self.is_initializing():
        unbiased = var * count / jnp.maximum(count - 1, 1)
        running_mean.value = ((1 - self.momentum) * running_mean.value
                              + self.momentum * mean.astype(jnp.float32))
        running_var.value = ((1 - self.momentum) * running_var.value
                             + self.momentum * unbiased.astype(jnp.float32))
    return (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias

  def _batch_statistics(self, x, mask):
    """(mean [D], biased var [D], count []) over every row the mask keeps."""
    axes = tuple(range(x.ndim - 1))
    # flax initialises outside the mapped axis, so only an apply may name it.
    axis_name = None if self.is_initializing() else self.axis_name
    total = lambda v: v if axis_name is None else jax.lax.psum(v, axis_name)
    if mask is None:
      keep = None
      count = x.size // x.shape[-1]
    else:
      keep = jnp.broadcast_to(jnp.asarray(mask, bool), x.shape[:-1] + (1,))
      count = keep.sum(dtype=jnp.int32)  # exact past 2**24 rows, unlike a float sum
    # where, not a product: padded rows may hold inf or NaN.
    rows = lambda v: v.sum(axes) if keep is None else jnp.where(keep, v, 0).sum(axes)
    count = total(jnp.asarray(count, jnp.int32)).astype(x.dtype)
    # An empty batch (every row masked) leaves the statistics at 0 rather than NaN.
    safe_count = jnp.maximum(count, 1)
    mean = total(rows(x)) / safe_count
    var = total(rows(jnp.square(x - mean))) / safe_count
    return mean, var, count
