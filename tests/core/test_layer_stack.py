"""Stacked layers: the layout round-trips, gradients come back stacked, LAMB's updates stay per tensor."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clip2point_jax.core import layer_stack
from clip2point_jax.training import optim


def _encoder_like(rng, num_layers=3):
  """A CLIP-shaped tree: per-layer dicts beside non-layer params, random values."""
  layer = lambda: {"mlp": {"fc1": {"kernel": rng.normal(size=(4, 6)).astype(np.float32),
                                   "bias": rng.normal(size=(6,)).astype(np.float32)}},
                   "layer_norm1": {"scale": rng.normal(1.0, 0.1, (4,)).astype(np.float32)}}
  encoder = {f"layers_{i}": layer() for i in range(num_layers)}
  return {"depth_encoder": {"encoder": encoder,
                            "post_layernorm": {"scale": rng.normal(size=(4,)).astype(np.float32)}},
          "w": np.float32(1.3)}


def test_stack_and_unstack_round_trip():
  tree = _encoder_like(np.random.default_rng(0))
  stacked = layer_stack.stack(tree)
  assert set(stacked["depth_encoder"]["encoder"]) == {"layers"}
  fc1 = stacked["depth_encoder"]["encoder"]["layers"]["mlp"]["fc1"]["kernel"]
  assert fc1.shape == (3, 4, 6)
  np.testing.assert_array_equal(fc1[2], tree["depth_encoder"]["encoder"]["layers_2"]["mlp"]["fc1"]["kernel"])
  mask = layer_stack.stacked_mask(stacked)
  assert mask["depth_encoder"]["encoder"]["layers"]["mlp"]["fc1"]["kernel"]
  assert not mask["depth_encoder"]["post_layernorm"]["scale"] and not mask["w"]
  back = layer_stack.unstack(stacked)
  assert jax.tree.structure(back) == jax.tree.structure(tree)
  jax.tree.map(np.testing.assert_array_equal, back, tree)
  # Abstract leaves stack to abstract leaves of the stacked shape.
  abstract = layer_stack.stack(layer_stack.abstract(tree))
  assert abstract["depth_encoder"]["encoder"]["layers"]["mlp"]["fc1"]["kernel"].shape == (3, 4, 6)


def test_partial_or_unequal_layer_sets_are_left_alone():
  rng = np.random.default_rng(1)
  tree = _encoder_like(rng)["depth_encoder"]["encoder"]
  gap = {k: v for k, v in tree.items() if k != "layers_1"}  # layers_0 and layers_2 only
  assert set(layer_stack.stack(gap)) == {"layers_0", "layers_2"}
  unequal = dict(tree, layers_2={"other": np.ones(2, np.float32)})
  assert set(layer_stack.stack(unequal)) == {"layers_0", "layers_1", "layers_2"}
  assert layer_stack.unstack(gap).keys() == gap.keys()


def test_gradient_through_unstack_is_the_stacked_per_layer_gradient():
  rng = np.random.default_rng(2)
  tree = jax.tree.map(jnp.asarray, _encoder_like(rng))
  weights = [jnp.asarray(rng.normal(size=np.shape(x)), jnp.float32) for x in jax.tree.leaves(tree)]
  loss = lambda t: sum(jnp.sum(jnp.sin(x) * w) for x, w in zip(jax.tree.leaves(t), weights))
  expected = layer_stack.stack(jax.device_get(jax.grad(loss)(tree)))
  got = jax.jit(jax.grad(lambda s: loss(layer_stack.unstack(s))))(layer_stack.stack(tree))
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, expected)


def test_lamb_over_stacked_layers_matches_lamb_per_tensor():
  """Three updates with lr multipliers that differ per layer: the same parameters both ways."""
  rng = np.random.default_rng(3)
  params = jax.tree.map(jnp.asarray, _encoder_like(rng, num_layers=4))
  # Layer 1 at half the rate, layer 3's biases frozen in place (multiplier 0).
  rules = ((r".*/layers_1/.*", 0.5), (r".*/layers_3/.*bias", 0.0), (r"w", 3.0))
  schedule = lambda count: 1e-2 / (1.0 + count)

  def make(stacked):
    layout = layer_stack.stack if stacked else None
    mask = layer_stack.stacked_mask(layer_stack.stack(params)) if stacked else None
    tx = optim.lamb(schedule, weight_decay=0.1, stacked=mask)
    return optim.with_lr_mults(tx, params, rules, layout=layout)

  per_tensor, stacked_tx = make(False), make(True)
  flat, stacked = params, layer_stack.stack(params)
  flat_state, stacked_state = per_tensor.init(flat), stacked_tx.init(stacked)
  for _ in range(3):
    grads = jax.tree.map(lambda x: jnp.asarray(rng.normal(size=x.shape), jnp.float32), flat)
    updates, flat_state = jax.jit(per_tensor.update)(grads, flat_state, flat)
    flat = optax.apply_updates(flat, updates)
    updates, stacked_state = jax.jit(stacked_tx.update)(layer_stack.stack(grads), stacked_state, stacked)
    stacked = optax.apply_updates(stacked, updates)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7),
               layer_stack.unstack(jax.device_get(stacked)), jax.device_get(flat))
  layer3 = lambda t: t["depth_encoder"]["encoder"]["layers_3"]["mlp"]["fc1"]["bias"]
  np.testing.assert_array_equal(layer3(flat), layer3(params))
  # Different layers got different trust ratios: each moved by its own norm.
  moved = [np.linalg.norm(flat["depth_encoder"]["encoder"][f"layers_{i}"]["mlp"]["fc1"]["kernel"]
                          - params["depth_encoder"]["encoder"][f"layers_{i}"]["mlp"]["fc1"]["kernel"])
           for i in range(4)]
  assert len({round(float(m), 6) for m in moved}) == 4
