"""Short-sequence attention against a numpy transcription of softmax attention."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.kernels import short_attention


def _numpy_attention(q, k, v, causal):
  """softmax(q k^T / sqrt(d)) v per head, in float64."""
  q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
  logits = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
  if causal:
    length = q.shape[1]
    logits = np.where(np.tril(np.ones((length, length), bool)), logits, -np.inf)
  weights = np.exp(logits - logits.max(-1, keepdims=True))
  weights /= weights.sum(-1, keepdims=True)
  return np.einsum("bhqk,bkhd->bqhd", weights, v)


def _qkv(shape, seed=0):
  rng = np.random.default_rng(seed)
  return [jnp.asarray(rng.normal(size=shape).astype(np.float32)) for _ in range(3)]


# 50 tokens of 64 (ViT-B/32's heads); 7 tokens of 24 pad both tile sides.
@pytest.mark.parametrize("shape", [(2, 50, 3, 64), (3, 7, 2, 24)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("attend", [short_attention.xla_attention,
                                    short_attention.pallas_attention])
def test_matches_numpy(shape, causal, attend):
  q, k, v = _qkv(shape)
  out = attend(q, k, v, causal)
  assert out.shape == shape and out.dtype == jnp.float32
  np.testing.assert_allclose(out, _numpy_attention(q, k, v, causal), atol=2e-5, rtol=0)


def test_causal_differs_from_full():
  q, k, v = _qkv((1, 9, 2, 16))
  full = short_attention.pallas_attention(q, k, v, False)
  causal = short_attention.pallas_attention(q, k, v, True)
  assert np.abs(np.asarray(full - causal)[:, :-1]).max() > 1e-2
  np.testing.assert_allclose(full[:, -1], causal[:, -1], atol=1e-5)  # the last token sees all


def test_bfloat16_inputs_stay_bfloat16():
  q, k, v = (t.astype(jnp.bfloat16) for t in _qkv((2, 50, 2, 64), seed=1))
  out = short_attention.pallas_attention(q, k, v)
  assert out.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(out, np.float32), _numpy_attention(q, k, v, False),
                             atol=2e-2, rtol=0)


@pytest.mark.parametrize("shape", [(2, 11, 2, 16), (2, 50, 3, 24)])
@pytest.mark.parametrize("causal", [False, True])
def test_gradient_equals_xla_attention_gradient(shape, causal):
  q, k, v = _qkv(shape, seed=2)
  target = jnp.asarray(np.random.default_rng(3).normal(size=shape).astype(np.float32))

  def loss(attend):
    return lambda q, k, v: jnp.sum(attend(q, k, v, causal) * target)

  ours = jax.grad(loss(short_attention.pallas_attention), argnums=(0, 1, 2))(q, k, v)
  reference = jax.grad(loss(short_attention.xla_attention), argnums=(0, 1, 2))(q, k, v)
  for a, b in zip(ours, reference):
    assert np.abs(np.asarray(b)).max() > 1e-2
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
