"""CLIP2Point's optimisers: `lamb` (torch_optimizer's LAMB), `cosine_warm_restarts`
(torch's CosineAnnealingWarmRestarts) and per-parameter learning-rate multipliers.

Parameters are chosen by the regex rules of `core/rules.py`:

    trainable, frozen = rules.split(params, config.optim.trainable)
    tx = optim.with_lr_mults(optax.adamw(1e-3), trainable, config.optim.lr_mults)
"""

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import optax

from clip2point_jax.core.rules import match_rules
from clip2point_jax.errors import UserError

def scale_by_tree(multipliers) -> optax.GradientTransformation:
  """Multiplies each update by its leaf of `multipliers` (a float per parameter)."""

  def scale(u, m):
    m = jnp.asarray(m, u.dtype)  # float[] or, for stacked layers (`layer_stack`), float[L]
    return u * m.reshape(m.shape + (1,) * (u.ndim - m.ndim))

  def update(updates, state, params=None):
    del params
    return jax.tree.map(scale, updates, multipliers), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def with_lr_mults(tx: optax.GradientTransformation, params,
                  rules: Sequence[tuple[str, float]],
                  what: str = "config.optim.lr_mults", layout=None) -> optax.GradientTransformation:
  """`tx` with each parameter's update scaled by its learning-rate multiplier.

  Multipliers come from `rules` (default 1), matched against the paths of
  `params`. For Adam-, AdamW- and LAMB-style transformations, scaling the
  final update is scaling the learning rate. `layout` (e.g. `layer_stack.stack`)
  maps the multipliers' tree to the layout `tx` updates, when that differs.
  """
  if not rules:
    return tx
  multipliers = match_rules(params, [(p, float(m)) for p, m in rules], 1.0, what)
  return optax.chain(tx, scale_by_tree(layout(multipliers) if layout else multipliers))


class LambState(NamedTuple):
  count: jax.Array  # int32[]: updates applied so far
  mu: Any  # first moments, like params
  nu: Any  # second moments, like params


def lamb(learning_rate, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-6,
         weight_decay: float = 0.0, clamp_value: float = 10.0,
         stacked: Any = None) -> optax.GradientTransformation:
  """LAMB as `torch_optimizer.Lamb` implements it (which `optax.lamb` does not).

  Per parameter tensor p with gradient g, at update t = 0, 1, ...:

      m = b1 m + (1 - b1) g;   v = b2 v + (1 - b2) g^2       (no bias correction)
      r = m / (sqrt(v) + eps) + weight_decay p
      trust = min(|p|, clamp_value) / |r|, or 1 where either norm is 0
      p <- p - lr(t) * trust * r

  Args:
    learning_rate: a float, or a schedule `count -> lr` called with t.
    b1, b2, eps, weight_decay, clamp_value: as in torch_optimizer.Lamb.
    stacked: None, or a bool tree like the params: True where a leaf
      float[L, ...] holds L tensors (`layer_stack`), each with its own norms
      and trust ratio.

  Returns:
    An optax transformation; `update` needs `params`.
  """

  def init(params):
    zeros = lambda p: jnp.zeros_like(p, jnp.float32)
    return LambState(jnp.zeros([], jnp.int32), jax.tree.map(zeros, params),
                     jax.tree.map(zeros, params))

  def update(grads, state, params=None):
    if params is None:
      raise ValueError("lamb needs the params in update(grads, state, params)")
    lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g.astype(jnp.float32), state.mu, grads)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g.astype(jnp.float32)),
                      state.nu, grads)

    def step(m, v, p, is_stacked):
      p = p.astype(jnp.float32)
      r = m / (jnp.sqrt(v) + eps) + weight_decay * p
      axes = tuple(range(1 if is_stacked else 0, p.ndim))
      norm = lambda x: jnp.sqrt(jnp.sum(jnp.square(x), axis=axes, keepdims=True))
      p_norm = jnp.minimum(norm(p), clamp_value)
      r_norm = norm(r)
      trust = jnp.where((p_norm > 0) & (r_norm > 0), p_norm / jnp.where(r_norm > 0, r_norm, 1.0), 1.0)
      return -lr * trust * r

    is_stacked = stacked if stacked is not None else jax.tree.map(lambda _: False, params)
    updates = jax.tree.map(step, mu, nu, params, is_stacked)
    updates = jax.tree.map(lambda u, g: u.astype(g.dtype), updates, grads)
    return updates, LambState(optax.safe_int32_increment(state.count), mu, nu)

  return optax.GradientTransformation(init, update)


def cosine_warm_restarts(base_lr: float, period_steps: int, eta_min: float = 0.0) -> optax.Schedule:
  """`torch.optim.lr_scheduler.CosineAnnealingWarmRestarts` with T_mult=1, stepped per update.

      lr(t) = eta_min + (base_lr - eta_min) (1 + cos(pi (t mod T) / T)) / 2,  T = period_steps
  """
  if period_steps < 1:
    raise UserError(f"cosine_warm_restarts: period_steps={period_steps}; it must be >= 1")

  def schedule(count):
    phase = jnp.mod(jnp.asarray(count, jnp.int32), period_steps).astype(jnp.float32) / period_steps
    return eta_min + (base_lr - eta_min) * (1 + jnp.cos(jnp.pi * phase)) / 2

  return schedule
