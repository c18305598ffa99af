"""NT-Xent and the pre-training loss against the supplementary's equations 1-4, in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.training import losses


def _e(a, b, tau):
  return np.exp(np.dot(a, b) / tau)


def _anchor_losses(x, y, tau):
  """Eq. 1-2 (or 3-4) for every anchor i of side x against side y, float64."""
  n = len(x)
  out = []
  for i in range(n):
    s = sum(_e(x[i], x[k], tau) + _e(x[i], y[k], tau) for k in range(n))
    out.append(-np.log(_e(x[i], y[i], tau) / (s - _e(x[i], x[i], tau))))
  return np.asarray(out)


def _unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=1, keepdims=True)


def reference_nt_xent(a, b, tau):
  """The mean over the 2N anchors of both sides."""
  a, b = _unit(a), _unit(b)
  return np.concatenate([_anchor_losses(a, b, tau), _anchor_losses(b, a, tau)]).mean()


def reference_total(f1, f2, fi, w, tau):
  l_intra = reference_nt_xent(f1, f2, tau)
  l_cross = reference_nt_xent((np.asarray(f1, np.float64) + f2) / 2, fi, tau)
  return l_cross + l_intra / w**2 + np.log(w + 1), l_intra, l_cross


@pytest.mark.parametrize("tau", [0.7, 0.07])
def test_nt_xent_matches_equations_in_both_orders(tau):
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 6, 5)).astype(np.float32)
  want = reference_nt_xent(a, b, tau)
  got_ab = float(losses.nt_xent(jnp.asarray(a), jnp.asarray(b), temperature=tau))
  got_ba = float(losses.nt_xent(jnp.asarray(b), jnp.asarray(a), temperature=tau))
  np.testing.assert_allclose(got_ab, want, rtol=1e-5)
  np.testing.assert_allclose(got_ba, want, rtol=1e-5)
  # Not symmetric anchor by anchor: only the average over both sides is.
  one_side = _anchor_losses(_unit(a), _unit(b), tau).mean()
  assert abs(one_side - want) > 1e-4


def test_nt_xent_is_invariant_to_row_scales():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(2, 5, 7)).astype(np.float32)
  scale_a = rng.uniform(0.1, 30.0, (5, 1)).astype(np.float32)
  scale_b = rng.uniform(0.1, 30.0, (5, 1)).astype(np.float32)
  plain = losses.nt_xent(jnp.asarray(a), jnp.asarray(b), temperature=0.1)
  scaled = losses.nt_xent(jnp.asarray(a * scale_a), jnp.asarray(b * scale_b), temperature=0.1)
  np.testing.assert_allclose(float(scaled), float(plain), rtol=1e-5)


def test_pretrain_loss_total_and_terms():
  rng = np.random.default_rng(2)
  f1, f2, fi = rng.normal(size=(3, 8, 6)).astype(np.float32)
  w = 1.3
  total, terms = jax.jit(lambda *x: losses.pretrain_loss(*x, temperature=0.7))(
      jnp.asarray(f1), jnp.asarray(f2), jnp.asarray(fi), jnp.float32(w))
  want_total, want_intra, want_cross = reference_total(f1, f2, fi, w, 0.7)
  np.testing.assert_allclose(float(terms["l_intra"]), want_intra, rtol=1e-5)
  np.testing.assert_allclose(float(terms["l_cross"]), want_cross, rtol=1e-5)
  np.testing.assert_allclose(float(total), want_total, rtol=1e-5)
  # dL/dw = -2 L_intra / w^3 + 1 / (w + 1).
  grad_w = jax.grad(lambda w: losses.pretrain_loss(
      jnp.asarray(f1), jnp.asarray(f2), jnp.asarray(fi), w, temperature=0.7)[0])(jnp.float32(w))
  np.testing.assert_allclose(float(grad_w), -2 * want_intra / w**3 + 1 / (w + 1), rtol=1e-5)


@pytest.mark.parametrize("group", [2, 4])
def test_negatives_group_is_the_mean_of_per_group_losses(group):
  rng = np.random.default_rng(3)
  f1, f2, fi = rng.normal(size=(3, 8, 6)).astype(np.float32)
  w = 0.8
  total, terms = losses.pretrain_loss(jnp.asarray(f1), jnp.asarray(f2), jnp.asarray(fi),
                                      jnp.float32(w), temperature=0.07, negatives_group=group)
  per_group = [reference_total(f1[s], f2[s], fi[s], w, 0.07)
               for s in (slice(g, g + group) for g in range(0, 8, group))]
  want = np.mean(per_group, axis=0)
  np.testing.assert_allclose(float(total), want[0], rtol=1e-5)
  np.testing.assert_allclose(float(terms["l_intra"]), want[1], rtol=1e-5)
  np.testing.assert_allclose(float(terms["l_cross"]), want[2], rtol=1e-5)
  # Fewer negatives: not the global-batch loss.
  assert abs(float(total) - reference_total(f1, f2, fi, w, 0.07)[0]) > 1e-3
  with pytest.raises(ValueError, match="does not divide"):
    losses.nt_xent(jnp.asarray(f1), jnp.asarray(f2), temperature=0.07, negatives_group=3)
