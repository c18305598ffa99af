"""The bit-pattern scatters equal the float scatters, values and derivatives."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import export

from renderers import points as pj
from renderers import scatter

EXTREMA = {"min": (scatter.nonnegative_min, float("inf")), "max": (scatter.nonnegative_max, 0.0)}


def _candidates(seed, b=3, m=700, size=50, levels=6):
  """(flat int32[B, M], values float32[B, M]): few distinct values (ties everywhere), some
  cells never written, and dropped entries whose values are NaN, negative or huge."""
  rng = np.random.default_rng(seed)
  flat = rng.integers(0, size - 5, (b, m)).astype(np.int32)  # cells size-5.. stay empty
  values = (rng.integers(0, levels, (b, m)) / (levels - 1) * rng.uniform(0.5, 3.0)).astype(np.float32)
  values[:, ::7] = rng.uniform(0.0, 5.0, values[:, ::7].shape)  # and some distinct ones
  dropped = rng.random((b, m)) < 0.2
  flat[dropped] = size + rng.integers(0, 3, dropped.sum())  # `size` or beyond
  values[dropped] = rng.choice([np.nan, -1.5, -0.0, 1e30], dropped.sum())
  return jnp.asarray(flat), jnp.asarray(values), size


@pytest.mark.parametrize("method", sorted(EXTREMA))
def test_values_equal_the_float_scatter_bit_for_bit(method):
  on_bits, fill = EXTREMA[method]
  for seed in range(3):
    flat, values, size = _candidates(seed)
    got = np.asarray(on_bits(flat, values, size))
    want = np.asarray(scatter.per_cloud(method, fill, size, flat, values))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
    assert np.all(got[:, -5:] == fill)  # cells nothing reached keep the fill


@pytest.mark.parametrize("method", sorted(EXTREMA))
def test_derivatives_equal_the_float_scatters(method):
  on_bits, fill = EXTREMA[method]
  flat, values, size = _candidates(seed=11)
  tangent = jnp.asarray(np.random.default_rng(12).normal(size=values.shape), jnp.float32)
  float_scatter = functools.partial(scatter.per_cloud, method, fill, size, flat)
  bit_scatter = lambda v: on_bits(flat, v, size)
  want_out, want_dot = jax.jvp(float_scatter, (values,), (tangent,))
  got_out, got_dot = jax.jvp(bit_scatter, (values,), (tangent,))
  np.testing.assert_array_equal(np.asarray(got_out), np.asarray(want_out))
  # Ties split the tangent (a mean of several), so rounding differs in the last bit.
  np.testing.assert_allclose(np.asarray(got_dot), np.asarray(want_dot), rtol=1e-6, atol=1e-7)
  assert np.any(np.asarray(want_dot) != 0)
  # Reverse mode (the transpose of the same linear map), through a weighted sum of kept cells.
  weights = jnp.asarray(np.random.default_rng(13).normal(size=(size - 5,)), jnp.float32)
  loss = lambda f: lambda v: jnp.sum(f(v)[:, :size - 5] * weights)
  np.testing.assert_allclose(np.asarray(jax.grad(loss(bit_scatter))(values)),
                             np.asarray(jax.grad(loss(float_scatter))(values)), rtol=1e-6, atol=1e-7)


def test_bad_values_or_fill_are_refused():
  flat = jnp.zeros((1, 4), jnp.int32)
  with pytest.raises(TypeError, match="float32"):
    scatter.nonnegative_min(flat, jnp.ones((1, 4), jnp.bfloat16), 8)
  with pytest.raises(ValueError, match="fill >= 0"):
    scatter.nonnegative_max(flat, jnp.ones((1, 4), jnp.float32), 8, fill=-1.0)


def test_the_gpu_z_buffer_scatters_int32_bits():
  """What the change is for: exported for GPUs, the hard projector's scatter-min runs on int32
  (integer atomics), not on float32 (a compare-and-swap loop per update)."""
  render = functools.partial(pj.render_depth, views=np.zeros((2, 2), np.float32), image_size=16,
                             zbuffer="scatter")
  text = export.export(jax.jit(render), platforms=("cuda",))(
      jax.ShapeDtypeStruct((2, 64, 3), jnp.float32)).mlir_module()
  scatters = re.findall(r'"stablehlo\.scatter".*?->\s*tensor<[^>]*>', text, flags=re.S)
  assert scatters and all("xi32>" in s.rsplit("->", 1)[-1] for s in scatters), scatters
