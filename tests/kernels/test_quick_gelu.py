"""quick-GELU as one Pallas pass (interpreted on the CPU) against numpy and XLA."""

import jax
import jax.numpy as jnp
import numpy as np

from clip2point_jax.kernels import quick_gelu


def test_kernel_matches_numpy_and_its_gradient_is_xlas():
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.normal(size=(3, 50, 96)) * 3, jnp.bfloat16)  # 14,400: a partial last block
  out = quick_gelu.quick_gelu_kernel(x)
  exact = np.asarray(x, np.float64)
  want = exact / (1.0 + np.exp(-1.702 * exact))
  assert out.dtype == jnp.bfloat16 and np.abs(want).max() > 3
  np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=8e-3, atol=8e-3)
  # Under differentiation the op is XLA's, bit for bit.
  target = jnp.asarray(rng.normal(size=x.shape), jnp.float32)
  loss = lambda fn: lambda x: jnp.sum(fn(x).astype(jnp.float32) * target)
  np.testing.assert_array_equal(
      np.asarray(jax.grad(loss(quick_gelu.quick_gelu_kernel))(x), np.float32),
      np.asarray(jax.grad(loss(quick_gelu.quick_gelu))(x), np.float32))


def test_partial_blocks_of_a_flat_array():
  x = jnp.asarray(np.random.default_rng(7).normal(size=(1000,)), jnp.float32)
  out = quick_gelu.pallas_quick_gelu(x, block=256, num_warps=4)
  np.testing.assert_allclose(out, quick_gelu.quick_gelu(x), rtol=1e-6, atol=1e-6)
