"""A block's layer norm as one Pallas kernel (interpreted on the CPU) against numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.kernels import dispatch
from clip2point_jax.kernels import fused_layer_norm
from clip2point_jax.models import clip


def _numpy_layer_norm(x, scale, bias, epsilon):
  x = x.astype(np.float64)
  mean = x.mean(-1, keepdims=True)
  variance = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(variance + epsilon) * scale + bias


@pytest.mark.parametrize("rows, width", [(64, 96), (61, 128)])  # 61: a partial last block
def test_kernel_matches_numpy(rows, width):
  rng = np.random.default_rng(rows)
  # An offset mean and a spread like a residual stream's.
  x = (rng.normal(size=(rows, width)) * 3 + rng.normal(size=(rows, 1)) * 2).astype(np.float32)
  scale, bias = rng.normal(size=(width,)).astype(np.float32), rng.normal(size=(width,)).astype(np.float32)
  want = _numpy_layer_norm(x, scale, bias, 1e-5)
  out = fused_layer_norm.pallas_layer_norm(jnp.asarray(x), scale, bias, 1e-5, jnp.float32)
  np.testing.assert_allclose(np.asarray(out), want, rtol=1e-4, atol=1e-4)
  # bf16 in, bf16 out: one rounding of the input and one of the output.
  x16 = jnp.asarray(x, jnp.bfloat16)
  out16 = fused_layer_norm.pallas_layer_norm(x16, scale, bias, 1e-5, jnp.bfloat16)
  assert out16.dtype == jnp.bfloat16
  want16 = _numpy_layer_norm(np.asarray(x16, np.float32), scale, bias, 1e-5)
  np.testing.assert_allclose(np.asarray(out16, np.float32), want16, rtol=1e-2, atol=2e-2)


def test_gradient_is_flax_layer_norms_gradient():
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 50, 64)) * 2, jnp.bfloat16)
  scale = jnp.asarray(rng.normal(size=(64,)), jnp.float32)
  bias = jnp.asarray(rng.normal(size=(64,)), jnp.float32)
  target = jnp.asarray(rng.normal(size=(2, 50, 64)), jnp.float32)

  def loss(fn):
    return lambda *args: jnp.sum(fn(*args, 1e-5, jnp.bfloat16).astype(jnp.float32) * target)

  fused = jax.grad(loss(fused_layer_norm.layer_norm), argnums=(0, 1, 2))(x, scale, bias)
  flax = jax.grad(loss(fused_layer_norm.flax_layer_norm), argnums=(0, 1, 2))(x, scale, bias)
  for got, want in zip(fused, flax):
    np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want, np.float32))


def test_tower_with_the_pallas_passes_matches_the_tower_without_them():
  config = clip.CLIPVisionConfig(image_size=16, patch_size=8, hidden_size=32,
                                 intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
  images = np.random.default_rng(4).normal(size=(2, 16, 16, 3)).astype(np.float32)
  tower = clip.CLIPVisionTransformer(config, dtype=jnp.bfloat16, kernels=dispatch.resolve("pallas"))
  params = jax.jit(tower.init)(jax.random.key(0), images[:1])
  # Non-trivial norms: the kernel must apply scale and bias.
  leaves = jax.tree_util.tree_flatten_with_path(params)[0]
  rng = np.random.default_rng(5)
  params = jax.tree_util.tree_unflatten(jax.tree.structure(params), [
      leaf + 0.3 * rng.normal(size=leaf.shape).astype(np.float32)
      if "layer_norm" in jax.tree_util.keystr(path) else leaf for path, leaf in leaves])
  # The Pallas attention alone: layer norms and quick-GELU as XLA's passes.
  plain_tower = tower.clone(kernels=dispatch.resolve("pallas", layer_norm="xla", activation="xla"))
  plain_params = jax.eval_shape(plain_tower.init, jax.random.key(0), images[:1])
  assert jax.tree.structure(plain_params) == jax.tree.structure(params)
  without_passes = jax.jit(lambda p, x: plain_tower.apply(p, x))
  plain_hlo = without_passes.lower(params, images).as_text()
  plain = without_passes(params, images)
  with_passes = jax.jit(lambda p, x: tower.apply(p, x))
  hlo = with_passes.lower(params, images).as_text()
  for kernel in ("layer_norm", "quick_gelu"):  # the Pallas passes' names
    assert kernel in hlo and kernel not in plain_hlo, kernel
  np.testing.assert_allclose(with_passes(params, images), plain, rtol=3e-2, atol=3e-2)
  # Each pass on its own: only its kernel appears.
  for field, kernel, other in (("layer_norm", "layer_norm", "quick_gelu"),
                               ("activation", "quick_gelu", "layer_norm")):
    alone = plain_tower.clone(kernels=dispatch.KernelSettings("pallas", **{field: "pallas"}))
    alone_hlo = jax.jit(lambda p, x, t=alone: t.apply(p, x)).lower(params, images).as_text()
    assert kernel in alone_hlo and other not in alone_hlo, field
