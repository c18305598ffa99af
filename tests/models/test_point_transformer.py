"""Point Transformer: the layer, block and transition against numpy transcriptions of the
equations, the missing-neighbour rules, symmetry, padding, gradients and MAC counts."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from clip2point_jax.errors import UserError
from clip2point_jax.models import point_ops
from clip2point_jax.models import point_transformer as pt

EPS = 1e-5


# ---- numpy transcriptions (no JAX, no code shared with the module) ----

def _np_dense(x, p):
  return x @ p["kernel"] + p.get("bias", 0.0)


def _np_bn(x, p, rows=None):
  """Training-mode BatchNorm over every row of x's last axis (or the rows `rows` selects).

  Returns the output and what PyTorch moves its running statistics towards:
  the batch mean and the unbiased batch variance.
  """
  flat = x.reshape(-1, x.shape[-1])
  used = flat if rows is None else flat[rows.reshape(-1)]
  mean, var = used.mean(0), used.var(0)
  return (x - mean) / np.sqrt(var + EPS) * p["scale"] + p["bias"], (mean, used.var(0, ddof=1))


def _relu(x):
  return np.maximum(x, 0.0)


def _np_neighbours(points, k, rule):
  """Per cloud: [N, k] indices (ascending distance) and validity, slots past N per `rule`."""
  n = len(points)
  d2 = ((points[:, None] - points[None]) ** 2).sum(-1)
  order = np.argsort(d2, axis=1, kind="stable")[:, :min(k, n)]
  idx = np.zeros((n, k), int)
  valid = np.zeros((n, k), bool)
  idx[:, :order.shape[1]] = order
  valid[:, :order.shape[1]] = True
  return idx, valid


def _np_layer(p, points, x, k, rule, share=8):
  """The layer for clouds points [B, N, 3], x [B, N, C_in], written out slot by slot."""
  b, n, _ = points.shape
  q, key, val = (_np_dense(x, p[name]) for name in ("linear_q", "linear_k", "linear_v"))
  c = q.shape[-1]
  keys, vals, offsets = (np.zeros((b, n, k, w)) for w in (c, c, 3))
  for cloud in range(b):
    idx, valid = _np_neighbours(points[cloud], k, rule)
    for i in range(n):
      for j in range(k):
        if valid[i, j]:
          src = idx[i, j]
        elif rule == "authors":
          src = 0  # the cloud's first point stands in
        else:
          continue  # Pointcept: zero key, value and offset
        keys[cloud, i, j], vals[cloud, i, j] = key[cloud, src], val[cloud, src]
        offsets[cloud, i, j] = points[cloud, src] - points[cloud, i]
  lp, lw = p["linear_p"], p["linear_w"]
  h, stats_p = _np_bn(_np_dense(offsets, lp["layers_0"]), lp["layers_1"])
  delta = _np_dense(_relu(h), lp["layers_3"])
  r = keys - q[:, :, None, :] + delta
  h, _ = _np_bn(r, lw["layers_0"])
  h, _ = _np_bn(_np_dense(_relu(h), lw["layers_2"]), lw["layers_3"])
  w = _np_dense(_relu(h), lw["layers_5"])
  w = np.exp(w - w.max(2, keepdims=True))
  w /= w.sum(2, keepdims=True)
  groups = c // share
  out = np.zeros((b, n, c))
  for ch in range(c):
    # Weight ch % (C/8) serves channels ch, ch + C/8, ch + 2C/8, ...
    out[..., ch] = (w[..., ch % groups] * (vals + delta)[..., ch]).sum(2)
  return out, stats_p


def _np_bottleneck(p, points, x, k, rule):
  h, _ = _np_bn(x @ p["linear1"]["kernel"], p["bn1"])
  h, _ = _np_layer(p["transformer"], points, _relu(h), k, rule)
  h, _ = _np_bn(_relu(_np_bn(h, p["bn2"])[0]) @ p["linear3"]["kernel"], p["bn3"])
  return _relu(h + x)


def _np_fps(points, s):
  picked, far = [0], np.full(len(points), np.inf)
  for _ in range(s - 1):
    far = np.minimum(far, ((points - points[picked[-1]]) ** 2).sum(-1))
    picked.append(int(np.argmax(far)))
  return np.array(picked)


def _np_transition(p, points, x, stride, k, rule):
  b, n, _ = points.shape
  s = n // stride
  grouped = np.zeros((b, s, k, 3 + x.shape[-1]))
  centres = np.zeros((b, s, 3))
  for cloud in range(b):
    centres[cloud] = points[cloud, _np_fps(points[cloud], s)]
    d2 = ((centres[cloud][:, None] - points[cloud][None]) ** 2).sum(-1)
    order = np.argsort(d2, axis=1, kind="stable")
    for i in range(s):
      for j in range(k):
        if j < n:
          src = order[i, j]
        elif rule == "authors":
          src = 0
        else:
          continue
        grouped[cloud, i, j] = np.concatenate([points[cloud, src] - centres[cloud, i], x[cloud, src]])
  h, _ = _np_bn(grouped @ p["linear"]["kernel"], p["bn"])
  return centres, _relu(h).max(2)


# ---- helpers ----

def _randomise(params, seed):
  """Every parameter drawn anew (BatchNorm scales and biases too), float64 numpy."""
  leaves, tree = jax.tree.flatten(params)
  rng = np.random.default_rng(seed)
  return jax.tree.unflatten(tree, [rng.normal(size=l.shape) * (0.5 if l.ndim else 1) for l in leaves])


def _as32(tree):
  return jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), tree)


def _layer_setup(n, k, c_in=12, planes=16, seed=0, rule="pointcept", b=2):
  rng = np.random.default_rng(seed)
  points = rng.normal(size=(b, n, 3)).astype(np.float32)
  x = rng.normal(size=(b, n, c_in)).astype(np.float32)
  layer = pt.PointTransformerLayer(planes, missing_neighbours=rule)
  idx, valid = point_ops.knn(points, points, k)
  shapes = jax.eval_shape(layer.init, jax.random.key(0), points, x, idx, valid)["params"]
  return layer, _randomise(shapes, seed + 1), points, x, idx, valid


def _apply_train(module, params, *args):
  fn = jax.jit(lambda p, *a: module.apply({"params": p}, *a, train=True, mutable=["batch_stats"]))
  return fn(_as32(params), *args)


# ---- the layer ----

@pytest.mark.parametrize("n,k,rule", [(5, 3, "pointcept"), (4, 16, "pointcept"), (4, 16, "authors")])
def test_layer_matches_the_equations(n, k, rule):
  """Five points with 3 neighbours; four points with 16 (12 missing, under both rules)."""
  layer, params, points, x, idx, valid = _layer_setup(n, k, rule=rule)
  out, state = _apply_train(layer, params, points, x, idx, valid, None)
  expect, (mean_p, var_p) = _np_layer(params, points.astype(np.float64), x.astype(np.float64), k, rule)
  assert out.shape == (2, n, 16)
  np.testing.assert_allclose(np.asarray(out), expect, rtol=2e-4, atol=2e-4)
  # The position encoding's BatchNorm saw every slot, missing ones included (momentum 0.1).
  stats = state["batch_stats"]["linear_p"]["layers_1"]
  np.testing.assert_allclose(np.asarray(stats["mean"]), 0.1 * mean_p, rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.asarray(stats["var"]), 0.9 + 0.1 * var_p, rtol=1e-4, atol=1e-6)


def test_missing_neighbour_rules_differ_only_when_neighbours_are_missing():
  layer, params, points, x, idx, valid = _layer_setup(4, 16)
  authors = layer.clone(missing_neighbours="authors")
  zeros, _ = _apply_train(layer, params, points, x, idx, valid, None)
  firsts, _ = _apply_train(authors, params, points, x, idx, valid, None)
  assert np.abs(np.asarray(zeros) - np.asarray(firsts)).max() > 1e-2
  layer, params, points, x, idx, valid = _layer_setup(6, 4)
  zeros, _ = _apply_train(layer, params, points, x, idx, valid, None)
  authors = layer.clone(missing_neighbours="authors")
  firsts, _ = _apply_train(authors, params, points, x, idx, valid, None)
  np.testing.assert_array_equal(np.asarray(zeros), np.asarray(firsts))


def test_layer_is_permutation_equivariant():
  layer, params, points, x, idx, valid = _layer_setup(20, 8)
  perm = np.random.default_rng(7).permutation(20)
  out, _ = _apply_train(layer, params, points, x, idx, valid, None)
  idx_p, valid_p = point_ops.knn(points[:, perm], points[:, perm], 8)
  out_p, _ = _apply_train(layer, params, points[:, perm], x[:, perm], idx_p, valid_p, None)
  np.testing.assert_allclose(np.asarray(out_p), np.asarray(out)[:, perm], rtol=1e-5, atol=1e-5)


def test_layer_in_bfloat16_keeps_float32_params_and_stays_close():
  layer, params, points, x, idx, valid = _layer_setup(12, 8)
  out, _ = _apply_train(layer, params, points, x, idx, valid, None)
  low, _ = _apply_train(layer.clone(dtype=jnp.bfloat16), params, points, x, idx, valid, None)
  assert low.dtype == jnp.float32
  scale = np.abs(np.asarray(out)).max()
  assert np.abs(np.asarray(low) - np.asarray(out)).max() < 0.05 * scale


# ---- block and transition ----

def test_bottleneck_matches_the_equations():
  rng = np.random.default_rng(11)
  points = rng.normal(size=(2, 6, 3)).astype(np.float32)
  x = rng.normal(size=(2, 6, 16)).astype(np.float32)
  block = pt.Bottleneck(16)
  idx, valid = point_ops.knn(points, points, 8)
  params = _randomise(jax.eval_shape(block.init, jax.random.key(0), points, x, idx, valid)["params"], 12)
  out, _ = _apply_train(block, params, points, x, idx, valid, None)
  expect = _np_bottleneck(params, points.astype(np.float64), x.astype(np.float64), 8, "pointcept")
  np.testing.assert_allclose(np.asarray(out), expect, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("n,k,rule", [(24, 5, "pointcept"), (8, 16, "pointcept"), (8, 16, "authors")])
def test_transition_down_matches_the_equations(n, k, rule):
  rng = np.random.default_rng(13)
  points = rng.normal(size=(2, n, 3)).astype(np.float32)
  x = rng.normal(size=(2, n, 6)).astype(np.float32)
  td = pt.TransitionDown(16, stride=4, neighbours=k, missing_neighbours=rule)
  params = _randomise(jax.eval_shape(td.init, jax.random.key(0), points, x)["params"], 14)
  (centres, out, mask), _ = _apply_train(td, params, points, x, None)
  want_centres, expect = _np_transition(params, points.astype(np.float64), x.astype(np.float64),
                                        4, k, rule)
  assert mask is None and out.shape == (2, n // 4, 16)
  np.testing.assert_allclose(np.asarray(centres), want_centres, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(out), expect, rtol=2e-4, atol=2e-4)


# ---- the whole network ----

TINY = dict(blocks=(1, 1, 2), planes=(16, 16, 16), strides=(1, 4, 4), neighbours=(4, 8, 8),
            embed_dim=8)


def _tiny(**fields):
  return pt.PointTransformer(**{**TINY, **fields})


def _model_variables(model, seed=0):
  """Random parameters and running statistics of the shapes `init` gives (no init compile)."""
  shapes = jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))
  return {"params": _as32(_randomise(shapes["params"], seed)),
          "batch_stats": jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes["batch_stats"])}


def _forward(model, train=True):
  return jax.jit(lambda v, p, m=None: model.apply(v, p, mask=m, train=train, mutable=["batch_stats"]))


def test_pooled_feature_is_invariant_to_permutations_that_keep_the_first_point():
  """FPS starts from the first point, so only permutations fixing it leave the output alone."""
  model = _tiny(head="none")
  variables = _model_variables(model)
  points = np.random.default_rng(20).normal(size=(2, 48, 3)).astype(np.float32)
  perm = np.concatenate([[0], 1 + np.random.default_rng(21).permutation(47)])
  forward = _forward(model)
  out, _ = forward(variables, points)
  out_p, _ = forward(variables, points[:, perm])
  assert out.shape == (2, 16)
  np.testing.assert_allclose(np.asarray(out_p), np.asarray(out), rtol=1e-4, atol=1e-5)


def test_padded_clouds_give_what_the_unpadded_ones_give():
  """Real points in the same order, padding scattered among them: the same features and statistics."""
  model = _tiny(head="clip")
  variables = _model_variables(model)
  rng = np.random.default_rng(22)
  points = rng.normal(size=(2, 48, 3)).astype(np.float32)
  total = 64
  mask = np.zeros((2, total), bool)
  padded = (rng.normal(size=(2, total, 3)) * 3).astype(np.float32)
  for cloud in range(2):
    where = np.sort(rng.choice(np.arange(1, total), 48, replace=False))  # index 0 is padding
    mask[cloud, where] = True
    padded[cloud, where] = points[cloud]
  forward = _forward(model)
  out, state = forward(variables, points)
  out_m, state_m = forward(variables, padded, mask)
  np.testing.assert_allclose(np.asarray(out_m), np.asarray(out), rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(state_m)):
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-6)


def test_batch_norm_axis_name_gives_global_batch_statistics():
  """Two shards under a named axis (vmap stands in for shard_map) normalise like one batch."""
  model = _tiny(head="none")
  variables = _model_variables(model)
  points = np.random.default_rng(25).normal(size=(4, 48, 3)).astype(np.float32)
  whole, state = _forward(model)(variables, points)
  sharded = model.clone(batch_norm_axis_name="batch")
  apply = lambda p: sharded.apply(variables, p, train=True, mutable=["batch_stats"])
  parts, state_parts = jax.jit(jax.vmap(apply, axis_name="batch"))(points.reshape(2, 2, 48, 3))
  np.testing.assert_allclose(np.asarray(parts).reshape(4, -1), np.asarray(whole), rtol=1e-4, atol=1e-5)
  for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(state_parts)):
    np.testing.assert_allclose(np.asarray(b)[1], np.asarray(a), rtol=1e-4, atol=1e-6)


def test_heads_and_shapes():
  points = jnp.asarray(np.random.default_rng(23).normal(size=(3, 16, 3)), jnp.float32)
  features = jnp.asarray(np.random.default_rng(24).normal(size=(3, 16, 3)), jnp.float32)
  model = _tiny(head="cls", num_classes=5, in_channels=6)
  variables = _model_variables(model)
  params = variables["params"]
  assert params["enc1"]["layers_0"]["linear"]["kernel"].shape == (6, 16)
  assert params["enc2"]["layers_0"]["linear"]["kernel"].shape == (3 + 16, 16)
  assert set(params["cls"]) == {"layers_0", "layers_1", "layers_4", "layers_5", "layers_8"}
  logits, _ = jax.jit(lambda v, p, f: model.apply(v, p, f, train=True, mutable=["batch_stats"],
                                                  rngs={"dropout": jax.random.key(1)}))(
      variables, points, features)
  assert logits.shape == (3, 5) and np.isfinite(np.asarray(logits)).all()
  with pytest.raises(UserError, match="features"):
    jax.eval_shape(lambda: model.apply(variables, points))
  with pytest.raises(UserError, match="in_channels=6"):
    jax.eval_shape(lambda: _tiny().init(jax.random.key(0), points, features))
  with pytest.raises(UserError, match="subsampled"):
    jax.eval_shape(lambda: _tiny().init(jax.random.key(0), points[:, :8]))
  with pytest.raises(UserError, match="head"):
    jax.eval_shape(lambda: _tiny(head="mlp").init(jax.random.key(0), points))


def test_presets_are_pointcepts_block_counts():
  assert pt.preset("cls26").blocks == (1, 1, 1, 1, 1)
  assert pt.preset("cls38").blocks == (1, 2, 2, 2, 2)
  assert pt.preset("cls50").blocks == (1, 2, 3, 5, 2)
  assert pt.PointTransformer().blocks == (2, 3, 4, 6, 3)
  with pytest.raises(UserError, match="cls101"):
    pt.preset("cls101")


# ---- gradients ----

def _directional_check(f, args, seed, eps=1e-6, rtol=1e-6):
  """Reverse-mode gradient . a random direction against a central difference, float64."""
  leaves, tree = jax.tree.flatten(args)
  rng = np.random.default_rng(seed)
  direction = jax.tree.unflatten(tree, [rng.normal(size=np.shape(l)) for l in leaves])
  grad = jax.jit(jax.grad(f))(args)
  f = jax.jit(f)
  analytic = sum(float(jnp.vdot(g, d))
                 for g, d in zip(jax.tree.leaves(grad), jax.tree.leaves(direction)))
  shift = lambda s: jax.tree.map(lambda a, d: a + s * eps * d, args, direction)
  numeric = (float(f(shift(1.0))) - float(f(shift(-1.0)))) / (2 * eps)
  assert abs(analytic) > 1e-3
  assert abs(analytic - numeric) <= rtol * max(1.0, abs(numeric)), (analytic, numeric)


def test_layer_gradients_match_finite_differences_in_float64():
  with jax.enable_x64(True):
    layer, params, points, x, idx, valid = _layer_setup(6, 8)  # 2 neighbours missing per point
    layer = layer.clone(dtype=jnp.float64)
    weights = np.random.default_rng(30).normal(size=(2, 6, 16))

    def loss(args):
      p, pts, feats = args
      out, _ = layer.apply({"params": p}, pts, feats, idx, valid, train=True, mutable=["batch_stats"])
      return jnp.sum(out * weights)

    args = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), (params, points, x))
    _directional_check(loss, args, seed=31)


def test_network_gradients_match_finite_differences_in_float64():
  with jax.enable_x64(True):
    model = _tiny(head="clip", dtype=jnp.float64, neighbours=(4, 8, 16))  # last stage: 1 point, k 16
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), _model_variables(model, 32)["params"])
    points = jnp.asarray(np.random.default_rng(33).normal(size=(2, 32, 3)))
    weights = np.random.default_rng(34).normal(size=(2, 8))

    def loss(args):
      p, pts = args
      out, _ = model.apply({"params": p}, pts, train=True, mutable=["batch_stats"])
      return jnp.sum(out * weights)

    _directional_check(loss, (params, points), seed=35)


# ---- cost ----

def _jaxpr_macs(jaxpr) -> int:
  """Multiply-accumulates of every dot_general in a jaxpr, sub-jaxprs included."""
  total = 0
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "dot_general":
      (contract, _), _ = eqn.params["dimension_numbers"]
      lhs = eqn.invars[0].aval.shape
      total += math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)
    for value in eqn.params.values():
      for sub in (value if isinstance(value, (tuple, list)) else [value]):
        if isinstance(sub, jax.extend.core.ClosedJaxpr):
          total += _jaxpr_macs(sub.jaxpr)
        elif isinstance(sub, jax.extend.core.Jaxpr):
          total += _jaxpr_macs(sub)
  return total


@pytest.mark.parametrize("head", ["clip", "cls"])
def test_dense_macs_counts_every_matmul_of_the_traced_network(head):
  model = pt.PointTransformer(head=head)
  shapes = jax.eval_shape(lambda: pt.init_variables(model, jax.random.key(0)))
  points = jax.ShapeDtypeStruct((1, 1024, 3), jnp.float32)
  jaxpr = jax.make_jaxpr(lambda v, p: model.apply(v, p))(shapes, points)
  assert _jaxpr_macs(jaxpr.jaxpr) == pt.dense_macs(model, 1024)
