"""GDPA: parameter counts, the adapters against PyTorch layers, the fusion switch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.models import gdpa

torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def _shapes(model, views=10, features=512):
  return jax.eval_shape(lambda: gdpa.init_variables(model, jax.random.key(0), views, features))


# Jitted (eager flax init/apply would compile op by op), with "rbg" keys, which compile
# far faster than threefry on CPU.
def _init(model, seed, views, features):
  return jax.jit(lambda s: gdpa.init_variables(model, jax.random.key(s, impl="rbg"), views, features))(seed)


def _apply(model, variables, *args, **kwargs):
  return jax.jit(lambda v, *a: model.apply(v, *a, **kwargs))(variables, *args)


@pytest.mark.parametrize("fusion,expected", [("gate", 5_775_382), ("mean", 5_773_332)])
def test_parameter_counts_match_the_paper(fusion, expected):
  shapes = _shapes(gdpa.GDPA(num_views=10, fusion=fusion))
  params = shapes["params"]
  assert gdpa.count_params(params) == expected
  adapter = params["adapter_depth"]
  assert adapter["view_weights"].shape == (10,)
  assert adapter["fc1"]["kernel"].shape == (5120, 512) and adapter["fc2"]["kernel"].shape == (512, 512)
  assert adapter["norm_views"]["scale"].shape == (512,)  # one BatchNorm shared by the 10 views
  assert ("gate" in params) == (fusion == "gate")
  if fusion == "gate":
    assert params["gate"]["kernel"].shape == (1024, 2)
  # Running statistics are not parameters.
  assert set(shapes["batch_stats"]["adapter_clip"]) == {"norm_views", "norm_hidden"}


def _torch_adapter(params, views, features):
  """The adapter as the issue describes it, in plain PyTorch layers, with our weights."""
  p = jax.tree.map(lambda x: torch.tensor(np.asarray(x)), params)
  bn_views, bn_hidden = torch.nn.BatchNorm1d(features), torch.nn.BatchNorm1d(features)
  fc1, fc2 = torch.nn.Linear(views * features, features), torch.nn.Linear(features, features)
  with torch.no_grad():
    for bn, name in ((bn_views, "norm_views"), (bn_hidden, "norm_hidden")):
      bn.weight.copy_(p[name]["scale"])
      bn.bias.copy_(p[name]["bias"])
    for fc, name in ((fc1, "fc1"), (fc2, "fc2")):
      fc.weight.copy_(p[name]["kernel"].T)
      fc.bias.copy_(p[name]["bias"])

  def forward(x):
    b = x.shape[0]
    x = x * p["view_weights"].reshape(1, -1, 1)
    x = bn_views(x.reshape(b * views, features)).reshape(b, views * features)
    return fc2(torch.relu(bn_hidden(fc1(x))))

  modules = torch.nn.ModuleList([bn_views, bn_hidden, fc1, fc2])
  return forward, modules, {"norm_views": bn_views, "norm_hidden": bn_hidden}


def test_adapter_matches_pytorch_layers_in_training_and_evaluation():
  views, features, batch = 4, 6, 5
  rng = np.random.default_rng(0)
  adapter = gdpa.ViewAdapter(num_views=views, dropout=0.0)
  x = rng.normal(1.0, 2.0, size=(batch, views, features)).astype(np.float32)
  variables = jax.jit(lambda: adapter.init(jax.random.key(1, impl="rbg"), jnp.asarray(x), train=False))()
  # Non-trivial view weights and BatchNorm affine parameters.
  params = jax.tree.map(lambda a: a + jnp.asarray(rng.normal(0, 0.3, a.shape), jnp.float32),
                        variables["params"])
  forward, modules, norms = _torch_adapter(params, views, features)

  ours, mutated = _apply(adapter, {"params": params, "batch_stats": variables["batch_stats"]},
                         jnp.asarray(x), train=True, mutable=["batch_stats"])
  modules.train()
  with torch.no_grad():
    ref = forward(torch.tensor(x)).numpy()
  np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-5)
  for name, bn in norms.items():  # momentum 0.1, unbiased running variance
    np.testing.assert_allclose(mutated["batch_stats"][name]["mean"], bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mutated["batch_stats"][name]["var"], bn.running_var.numpy(), rtol=1e-5, atol=1e-6)

  x2 = rng.normal(size=(3, views, features)).astype(np.float32)
  ours_eval = _apply(adapter, {"params": params, "batch_stats": mutated["batch_stats"]}, jnp.asarray(x2), train=False)
  modules.eval()
  with torch.no_grad():
    ref_eval = forward(torch.tensor(x2)).numpy()
  np.testing.assert_allclose(np.asarray(ours_eval), ref_eval, rtol=1e-4, atol=1e-5)


def _adapted(model, variables, depth, clip):
  """Both adapter outputs, from the module itself."""
  both = jax.jit(lambda v, d, c: model.apply(
      v, d, c, method=lambda m, d, c: (m.adapter_depth(d, False), m.adapter_clip(c, False))))
  return tuple(np.asarray(a, np.float64) for a in both(variables, depth, clip))


def test_gated_and_mean_fusion_follow_their_formulas():
  rng = np.random.default_rng(2)
  views, features, classes = 3, 8, 5
  depth = jnp.asarray(rng.normal(size=(4, views, features)), jnp.float32)
  clip = jnp.asarray(rng.normal(size=(4, views, features)), jnp.float32)
  text = rng.normal(size=(classes, features))
  text = jnp.asarray(text / np.linalg.norm(text, axis=-1, keepdims=True), jnp.float32)

  gated = gdpa.GDPA(num_views=views, fusion="gate")
  variables = _init(gated, 3, views, features)
  a_p, a_c = _adapted(gated, variables, depth, clip)
  gate = variables["params"]["gate"]
  scores = np.concatenate([a_p, a_c], -1) @ np.asarray(gate["kernel"], np.float64) + np.asarray(gate["bias"])
  g = np.exp(scores - scores.max(-1, keepdims=True))
  g /= g.sum(-1, keepdims=True)
  fused = g[:, :1] * a_p + g[:, 1:] * a_c
  fused /= np.linalg.norm(fused, axis=-1, keepdims=True)
  logits = _apply(gated, variables, depth, clip, text)
  np.testing.assert_allclose(np.asarray(logits), fused @ np.asarray(text, np.float64).T, rtol=1e-4, atol=1e-5)
  assert not np.allclose(g, 0.5, atol=1e-3)  # the gate really weighs the paths

  mean = gdpa.GDPA(num_views=views, fusion="mean")
  mean_vars = {"params": {k: v for k, v in variables["params"].items() if k != "gate"},
               "batch_stats": variables["batch_stats"]}
  averaged = 0.5 * (a_p + a_c)
  averaged /= np.linalg.norm(averaged, axis=-1, keepdims=True)
  mean_logits = _apply(mean, mean_vars, depth, clip, text)
  np.testing.assert_allclose(np.asarray(mean_logits), averaged @ np.asarray(text, np.float64).T, rtol=1e-4, atol=1e-5)
  # A gate with zero weights weighs both paths 0.5: the two fusions then agree.
  zero_gate = jax.tree.map(jnp.zeros_like, variables["params"]["gate"])
  balanced = {"params": dict(variables["params"], gate=zero_gate), "batch_stats": variables["batch_stats"]}
  np.testing.assert_allclose(np.asarray(_apply(gated, balanced, depth, clip, text)),
                             np.asarray(mean_logits), rtol=1e-5, atol=1e-6)


def test_init_logit_scale_and_dropout():
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.normal(size=(6, 10, 16)), jnp.float32)
  text = jnp.asarray(np.eye(4, 16), jnp.float32)
  plain = gdpa.GDPA(num_views=10)
  variables = _init(plain, 0, 10, 16)
  # PyTorch nn.Linear's init: U(+-1/sqrt(fan_in)) for weights and biases; view weights 0.5.
  fc1 = variables["params"]["adapter_clip"]["fc1"]
  bound = 1.0 / np.sqrt(160)
  for leaf in (fc1["kernel"], fc1["bias"]):
    assert 0.9 * bound < np.abs(leaf).max() <= bound
  np.testing.assert_array_equal(variables["params"]["adapter_clip"]["view_weights"], np.full(10, 0.5))
  base = np.asarray(_apply(plain, variables, x, x, text))
  assert np.abs(base).max() <= 1.0 + 1e-6  # unit features . unit texts, no scale
  learned = gdpa.GDPA(num_views=10, logit_scale=20.0, learn_logit_scale=True)
  learned_vars = _init(learned, 0, 10, 16)
  assert float(learned_vars["params"]["logit_scale"]) == pytest.approx(np.log(20.0))
  np.testing.assert_allclose(np.asarray(_apply(learned, learned_vars, x, x, text)), 20.0 * base, rtol=1e-5)
  assert float(gdpa.GDPA(num_views=10, logit_scale=20.0).scale()) == 20.0  # fixed: a constant

  train = jax.jit(lambda seed: plain.apply(variables, x, x, text, train=True, mutable=["batch_stats"],
                                           rngs={"dropout": jax.random.key(seed, impl="rbg")})[0])
  run = lambda seed: train(seed)
  assert not np.allclose(run(0), run(1))
  np.testing.assert_array_equal(run(0), run(0))


def test_bad_model_settings_are_user_errors():
  x = jnp.ones((2, 10, 8))
  with pytest.raises(UserError, match="config.model.fusion='sum'"):
    jax.eval_shape(lambda: gdpa.init_variables(gdpa.GDPA(num_views=10, fusion="sum"), jax.random.key(0), 10, 8))
  with pytest.raises(UserError, match="logit_scale"):
    jax.eval_shape(lambda: gdpa.GDPA(num_views=10, logit_scale=0.0).init(jax.random.key(0), x, x, jnp.ones((2, 8))))


def test_the_3d_path_adapts_one_feature_and_gates_it_with_the_clip_views():
  # Path P: one 3D feature per cloud; no view weights, fc1 reads D instead of V*D.
  params = _shapes(gdpa.GDPA(num_views=10, point_path=True))["params"]
  assert gdpa.count_params(params) == 5_775_382 - 9 * 512 * 512 - 10 == 3_416_076
  assert "view_weights" not in params["adapter_depth"] and params["adapter_clip"]["view_weights"].shape == (10,)
  assert params["adapter_depth"]["fc1"]["kernel"].shape == (512, 512)
  assert params["gate"]["kernel"].shape == (1024, 2)
  # The forward pass: the 3D feature through its adapter, the views through theirs, the same gate.
  rng = np.random.default_rng(5)
  views, features, classes = 3, 8, 4
  model = gdpa.GDPA(num_views=views, point_path=True)
  variables = _init(model, 1, views, features)
  point = jnp.asarray(rng.normal(size=(6, 1, features)), jnp.float32)
  clip = jnp.asarray(rng.normal(size=(6, views, features)), jnp.float32)
  text = rng.normal(size=(classes, features))
  text = jnp.asarray(text / np.linalg.norm(text, axis=-1, keepdims=True), jnp.float32)
  a_p, a_c = _adapted(model, variables, point, clip)
  p = jax.tree.map(lambda x: np.asarray(x, np.float64), variables)
  bn = lambda x, name: ((x - p["batch_stats"]["adapter_depth"][name]["mean"])
                        / np.sqrt(p["batch_stats"]["adapter_depth"][name]["var"] + 1e-5)
                        * p["params"]["adapter_depth"][name]["scale"] + p["params"]["adapter_depth"][name]["bias"])
  dense = lambda x, name: x @ p["params"]["adapter_depth"][name]["kernel"] + p["params"]["adapter_depth"][name]["bias"]
  by_hand = dense(np.maximum(bn(dense(bn(np.asarray(point, np.float64)[:, 0], "norm_views"), "fc1"),
                                "norm_hidden"), 0), "fc2")
  np.testing.assert_allclose(a_p, by_hand, rtol=1e-4, atol=1e-5)
  gate = p["params"]["gate"]
  scores = np.concatenate([a_p, a_c], -1) @ gate["kernel"] + gate["bias"]
  g = np.exp(scores - scores.max(-1, keepdims=True))
  g /= g.sum(-1, keepdims=True)
  fused = g[:, :1] * a_p + g[:, 1:] * a_c
  fused /= np.linalg.norm(fused, axis=-1, keepdims=True)
  np.testing.assert_allclose(np.asarray(_apply(model, variables, point, clip, text)),
                             fused @ np.asarray(text, np.float64).T, rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="built for 1 views, got 3"):
    _apply(model, variables, clip, clip, text)
