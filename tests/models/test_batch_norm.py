"""The shared BatchNorm against PyTorch's BatchNorm1d: outputs, running statistics, masks, shards."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.models.batch_norm import BatchNorm

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

FEATURES = 6


def _variables(seed):
  rng = np.random.default_rng(seed)
  return {"params": {"scale": rng.uniform(0.5, 2, FEATURES).astype(np.float32),
                     "bias": rng.normal(size=FEATURES).astype(np.float32)},
          "batch_stats": {"mean": rng.normal(size=FEATURES).astype(np.float32),
                          "var": rng.uniform(0.5, 2, FEATURES).astype(np.float32)}}


def _torch_bn(variables):
  bn = torch.nn.BatchNorm1d(FEATURES, momentum=0.1, eps=1e-5).double()
  with torch.no_grad():
    bn.weight.copy_(torch.tensor(variables["params"]["scale"]))
    bn.bias.copy_(torch.tensor(variables["params"]["bias"]))
    bn.running_mean.copy_(torch.tensor(variables["batch_stats"]["mean"]))
    bn.running_var.copy_(torch.tensor(variables["batch_stats"]["var"]))
  return bn


@jax.jit
def _train(variables, x, mask=None):
  return BatchNorm().apply(variables, x, False, mask=mask, mutable=["batch_stats"])


def test_three_training_steps_then_evaluation_match_pytorch():
  rng = np.random.default_rng(0)
  variables = _variables(1)
  bn = _torch_bn(variables)
  for step in range(3):
    # Rank 3 input: statistics over both leading axes, as Point Transformer's [B, N, C].
    x = (rng.normal(size=(4, 5, FEATURES)) * 3 + step).astype(np.float32)
    out, state = _train(variables, x)
    variables = {"params": variables["params"], **state}
    want = bn.train()(torch.tensor(x, dtype=torch.float64).reshape(-1, FEATURES)).detach().numpy()
    np.testing.assert_allclose(np.asarray(out).reshape(-1, FEATURES), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(variables["batch_stats"]["mean"], bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
    # PyTorch's running variance moves towards the unbiased batch variance (n / (n - 1)).
    np.testing.assert_allclose(variables["batch_stats"]["var"], bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
  x = rng.normal(size=(7, FEATURES)).astype(np.float32)
  out = jax.jit(lambda v, x: BatchNorm().apply(v, x, True))(variables, x)
  want = bn.eval()(torch.tensor(x, dtype=torch.float64)).detach().numpy()
  np.testing.assert_allclose(np.asarray(out), want, rtol=1e-5, atol=1e-5)


def test_masked_rows_stay_out_of_the_statistics_even_when_not_finite():
  rng = np.random.default_rng(2)
  variables = _variables(3)
  x = rng.normal(size=(3, 8, FEATURES)).astype(np.float32)
  mask = rng.uniform(size=(3, 8, 1)) < 0.6
  x_bad = np.where(mask, x, np.float32(np.nan))
  x_bad[~mask[..., 0]] = np.inf  # padding may hold anything
  out, state = _train(variables, x_bad, mask)
  bn = _torch_bn(variables)
  kept = torch.tensor(x[mask[..., 0]], dtype=torch.float64)
  want = bn.train()(kept).detach().numpy()
  np.testing.assert_allclose(np.asarray(out)[mask[..., 0]], want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(state["batch_stats"]["var"], bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state["batch_stats"]["mean"], bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)


def test_an_axis_name_gives_the_global_batch_even_with_uneven_shards():
  """Two shards under a mapped axis (vmap stands in for shard_map), 9 and 2 real rows."""
  rng = np.random.default_rng(4)
  variables = _variables(5)
  x = rng.normal(size=(2, 12, FEATURES)).astype(np.float32) * 2
  mask = np.zeros((2, 12, 1), bool)
  mask[0, :9] = mask[1, :2] = True
  apply = lambda x, m: BatchNorm(axis_name="shards").apply(variables, x, False, mask=m,
                                                           mutable=["batch_stats"])
  parts, state = jax.jit(jax.vmap(apply, axis_name="shards"))(x, mask)
  whole, whole_state = _train(variables, x[mask[..., 0]])
  np.testing.assert_allclose(np.asarray(parts)[mask[..., 0]], np.asarray(whole), rtol=1e-5, atol=1e-6)
  for name in ("mean", "var"):
    for shard in range(2):
      np.testing.assert_allclose(state["batch_stats"][name][shard], whole_state["batch_stats"][name],
                                 rtol=1e-6, atol=1e-7)


def test_bfloat16_input_keeps_float32_statistics_and_an_empty_batch_stays_finite():
  rng = np.random.default_rng(6)
  variables = _variables(7)
  x = jnp.asarray(rng.normal(size=(16, FEATURES)), jnp.bfloat16)
  out, state = _train(variables, x)
  assert out.dtype == jnp.float32 and state["batch_stats"]["var"].dtype == jnp.float32
  _, empty = _train(variables, np.asarray(x, np.float32), np.zeros((16, 1), bool))
  assert all(np.isfinite(v).all() for v in jax.tree.leaves(empty))
