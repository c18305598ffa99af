"""fc1 + quick-GELU as one Pallas kernel (interpreted on the CPU) against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.models import clip
from clip2point_jax.models import fused_mlp


def _numpy_quick_gelu_dense(x, kernel, bias):
  h = x.astype(np.float64) @ kernel.astype(np.float64) + bias
  return h / (1.0 + np.exp(-1.702 * h))


def _bf16(a):
  return np.asarray(jnp.asarray(a, jnp.bfloat16).astype(jnp.float32))


@pytest.mark.parametrize("rows", [256, 200])  # 200: a partial last row block
def test_kernel_matches_numpy(rows):
  rng = np.random.default_rng(rows)
  x = _bf16(rng.normal(size=(rows, 64)))
  kernel = _bf16(rng.normal(size=(64, 128)) * 0.3)
  bias = _bf16(rng.normal(size=(128,)))
  out = fused_mlp.pallas_dense_quick_gelu(jnp.asarray(x, jnp.bfloat16), jnp.asarray(kernel),
                                          jnp.asarray(bias), block_m=64, block_n=64, block_k=32)
  want = _numpy_quick_gelu_dense(x, kernel, bias)
  assert out.shape == (rows, 128) and out.dtype == jnp.bfloat16
  # One bf16 rounding of the output (float32 accumulation inside).
  np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=8e-3, atol=8e-3)
  assert np.abs(want).max() > 2  # the activation's non-linear range is exercised


def test_gradient_is_xla_paths_gradient():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(2, 50, 64)), jnp.bfloat16)
  kernel = jnp.asarray(rng.normal(size=(64, 128)) * 0.3, jnp.float32)
  bias = jnp.asarray(rng.normal(size=(128,)), jnp.float32)
  target = jnp.asarray(rng.normal(size=(2, 50, 128)), jnp.float32)

  def loss(fn):
    return lambda *args: jnp.sum(fn(*args).astype(jnp.float32) * target)

  fused = jax.grad(loss(fused_mlp.dense_quick_gelu), argnums=(0, 1, 2))(x, kernel, bias)
  xla = jax.grad(loss(fused_mlp.xla_dense_quick_gelu), argnums=(0, 1, 2))(x, kernel, bias)
  for got, want in zip(fused, xla):
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))
  # And the plain call is the kernel, close to XLA's result.
  np.testing.assert_allclose(
      np.asarray(fused_mlp.dense_quick_gelu(x, kernel, bias), np.float32),
      np.asarray(fused_mlp.xla_dense_quick_gelu(x, kernel, bias), np.float32), rtol=2e-2, atol=2e-2)


def test_tower_with_the_fused_mlp_has_the_same_parameters_and_outputs():
  config = clip.CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=64,
                                 intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)
  images = np.random.default_rng(2).normal(size=(2, 32, 32, 3)).astype(np.float32)
  fused = clip.CLIPVisionTransformer(config, dtype=jnp.bfloat16, attention="pallas")
  params = fused.init(jax.random.key(0), images[:1])
  with clip.fused_kernels(mlp=False, layer_norm=False):
    unfused_params = fused.init(jax.random.key(0), images[:1])
    unfused_out = fused.apply(jax.tree.map(lambda t: t * 3, params), images)
  # Same names, shapes and initial values: checkpoints load either way.
  jax.tree.map(np.testing.assert_array_equal, params, unfused_params)
  hlo = jax.jit(fused.apply).lower(params, images).as_text()
  assert "dense_quick_gelu" in hlo
  out = fused.apply(jax.tree.map(lambda t: t * 3, params), images)
  np.testing.assert_allclose(out, unfused_out, rtol=3e-2, atol=3e-2)
  assert np.abs(unfused_out).max() > 0.5


def test_activation_kernel_matches_numpy_and_its_gradient_is_xlas():
  rng = np.random.default_rng(6)
  h = jnp.asarray(rng.normal(size=(3, 50, 96)) * 3, jnp.bfloat16)  # 14,400: a partial last block
  out = fused_mlp.quick_gelu_kernel(h)
  x = np.asarray(h, np.float64)
  want = x / (1.0 + np.exp(-1.702 * x))
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), want, rtol=8e-3, atol=8e-3)
  target = jnp.asarray(rng.normal(size=h.shape), jnp.float32)
  loss = lambda fn: lambda h: jnp.sum(fn(h).astype(jnp.float32) * target)
  np.testing.assert_array_equal(np.asarray(jax.grad(loss(fused_mlp.quick_gelu_kernel))(h), np.float32),
                                np.asarray(jax.grad(loss(fused_mlp.quick_gelu))(h), np.float32))
