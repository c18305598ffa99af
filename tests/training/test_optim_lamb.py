"""LAMB (torch_optimizer semantics) against hand-computed steps; the warm-restart schedule."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from clip2point_jax.training import optim
from clip2point_jax.errors import UserError


def _torch_optimizer_lamb_step(p, g, m, v, lr, wd, b1=0.9, b2=0.999, eps=1e-6):
  """One step of torch_optimizer.Lamb for one tensor, written out in float64."""
  m = b1 * m + (1 - b1) * g
  v = b2 * v + (1 - b2) * g * g
  r = m / (np.sqrt(v) + eps) + wd * p
  p_norm = min(np.sqrt(np.sum(p * p)), 10.0)
  r_norm = np.sqrt(np.sum(r * r))
  trust = 1.0 if p_norm == 0 or r_norm == 0 else p_norm / r_norm
  return p - lr * trust * r, m, v


def test_scalar_step_by_hand():
  # p = 2, g = 0.5: m = 0.05, v = 0.00025, r = 0.05 / (0.0158114 + 1e-6) > 0 and
  # trust = 2 / r, so the step is exactly lr * |p| = 0.2 downhill.
  tx = optim.lamb(0.1)
  p = {"w": jnp.float32(2.0)}
  updates, _ = tx.update({"w": jnp.float32(0.5)}, tx.init(p), p)
  np.testing.assert_allclose(float(updates["w"]), -0.2, rtol=1e-6)
  # A zero tensor has trust ratio 1: the plain Adam step, lr * m / (sqrt(v) + eps).
  z = {"z": jnp.zeros(2)}
  updates, _ = tx.update({"z": jnp.asarray([0.5, -2.0])}, tx.init(z), z)
  np.testing.assert_allclose(updates["z"], [-0.1 * 0.05 / (math.sqrt(0.00025) + 1e-6),
                                            0.1 * 0.2 / (math.sqrt(0.004) + 1e-6)], rtol=1e-5)


def test_three_steps_match_torch_optimizer_semantics_with_weight_decay_and_schedule():
  rng = np.random.default_rng(0)
  params = {
      "big": rng.normal(5.0, 1.0, (4, 3)),     # norm ~17: clamped to 10
      "zero": np.zeros(3),                      # trust ratio 1
      "small": rng.normal(0.0, 0.1, (2, 2)),
      "long": rng.normal(0.0, 0.05, (45, 101)),
      "w": np.float64(1.0),
  }
  assert np.linalg.norm(params["big"]) > 10
  lrs = [6e-3, 4e-3, 1e-3]
  schedule = lambda count: jnp.asarray(lrs, jnp.float32)[count]
  tx = optim.lamb(schedule, weight_decay=0.1)
  state = tx.init(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params))
  current = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), params)
  expected = dict(params)
  moments = {k: (np.zeros_like(v), np.zeros_like(v)) for k, v in params.items()}
  update = jax.jit(tx.update)
  for t in range(3):
    grads = {k: rng.normal(size=np.shape(v)) for k, v in params.items()}
    updates, state = update(jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), grads), state, current)
    current = optax.apply_updates(current, updates)
    for k in params:
      expected[k], m, v = _torch_optimizer_lamb_step(expected[k], grads[k], *moments[k], lrs[t], 0.1)
      moments[k] = (m, v)
    for k in params:
      np.testing.assert_allclose(current[k], expected[k], rtol=2e-6, atol=1e-7, err_msg=f"{k} step {t}")
  assert int(state.count) == 3
  # The zero tensor moved (by pure Adam steps); the clamped one by at most lr * 10 per step.
  assert np.all(np.asarray(current["zero"]) != 0)


def test_lamb_needs_params():
  tx = optim.lamb(0.1)
  with pytest.raises(ValueError, match="needs the params"):
    tx.update({"a": jnp.ones(2)}, tx.init({"a": jnp.ones(2)}))


def test_cosine_warm_restarts_matches_closed_form_and_torch():
  import torch

  base, period, eta_min = 6e-3, 7, 1e-5
  schedule = optim.cosine_warm_restarts(base, period, eta_min)
  got = np.asarray(jax.jit(jax.vmap(schedule))(jnp.arange(25)))
  closed = [eta_min + (base - eta_min) * (1 + math.cos(math.pi * (t % period) / period)) / 2
            for t in range(25)]
  np.testing.assert_allclose(got, closed, rtol=1e-6)
  assert got[0] == pytest.approx(base) and got[period] == pytest.approx(base)
  # torch: the lr of update t is read before the t-th scheduler.step().
  param = torch.nn.Parameter(torch.zeros(1))
  opt = torch.optim.SGD([param], lr=base)
  sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=period, T_mult=1, eta_min=eta_min)
  reference = []
  for _ in range(25):
    reference.append(opt.param_groups[0]["lr"])
    opt.step()
    sched.step()
  np.testing.assert_allclose(got, reference, rtol=1e-6)
  with pytest.raises(UserError, match="period_steps=0"):
    optim.cosine_warm_restarts(base, 0, eta_min)
