"""Training pieces of the GDPA: optimiser, state, jitted steps, evaluation on cached features.

The same pieces train the linear probe (`config.model.kind="linear_probe"`,
models/linear_probe.py): "GDPA" below is whichever model the config names.

Used by the few-shot / fine-tuning task (`training/gdpa_run.py`) and the
benchmark. The state is a dict pytree holding only what trains:

    {"step": int32[], "seed": int32[], "params": trainable GDPA params,
     "batch_stats": BatchNorm statistics, "opt_state": the optimiser's state}

GDPA parameters frozen by `config.optim.trainable` travel apart
("frozen_gdpa") and get no optimiser state; the encoders are never part of
it. A validation split's best epoch is tracked apart too ("best"), so the
step compiles once with or without one.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clip2point_jax.core import parallel, rules
from clip2point_jax.data import pipeline
from clip2point_jax.errors import UserError
from clip2point_jax.models import gdpa
from clip2point_jax.training import loop, optim

FEATURE_KEYS = ("depth", "clip")


def make_optimizer(config, trainable_params) -> optax.GradientTransformation:
  """AdamW (PyTorch's defaults otherwise), constant learning rate, per-rule multipliers."""
  tx = optax.adamw(config.optim.learning_rate, weight_decay=config.optim.weight_decay)
  return optim.with_lr_mults(tx, trainable_params, [tuple(r) for r in config.optim.lr_mults])


def build(config, feature_dim: int, num_classes: int = 2, point_path: bool = False):
  """The GDPA, its optimiser and the shapes of its trainable parameters, from a config.

  `num_classes` sizes a linear probe's output layer in `trainable_shapes`
  (the GDPA's do not depend on it; the optimiser is the same for any count).
  `point_path`: `config.depth_encoder` is a 3D encoder (`FrozenPaths.point_path`),
  one feature per cloud on path P.

  The same settings give the same objects, so the jitted functions built on
  them (`init_state`, `make_steps`) compile once per process.

  Returns:
    (model, tx, trainable_shapes): `trainable_shapes` is the subtree of
    `jax.ShapeDtypeStruct`s that `config.optim.trainable` selects.
  """
  depth_encoder = config.get("depth_encoder", "")
  key = loop.config_key(config.model, config.optim, len(config.views), feature_dim, num_classes,
                        bool(depth_encoder), point_path)
  return _BUILT.get(key, lambda: _build_new(config, feature_dim, num_classes, point_path))


# Models, optimisers and compiled functions by what determines them, so that
# every seed and run of a process shares one compiled program.
_BUILT = loop.JitCache(size=8)
_INITIALIZERS = loop.JitCache(size=8)
_STEPS = loop.JitCache(size=8)


def _build_new(config, feature_dim: int, num_classes: int, point_path: bool):
  num_views = len(config.views)
  model = gdpa.from_config(config.model, num_views, config.get("depth_encoder", ""), point_path)
  shapes = jax.eval_shape(lambda: gdpa.init_variables(model, jax.random.key(0), num_views, feature_dim,
                                                      num_classes))
  trainable_shapes, _ = rules.split(shapes["params"], tuple(config.optim.trainable))
  return model, make_optimizer(config, trainable_shapes), trainable_shapes


def best_slot(state, frozen_gdpa, val_top1: float = -1.0, epoch: int = 0):
  """The best-validation record: a copy of the current variables, its val top-1 and epoch."""
  # Copies: the state is donated, and must not alias the record.
  return {"variables": jax.tree.map(jnp.copy, variables_of(state, frozen_gdpa)),
          "val_top1": jnp.asarray(val_top1, jnp.float32), "epoch": jnp.asarray(epoch, jnp.int32)}


def checkpoint_tree(state, frozen_gdpa, best=None):
  """What a checkpoint holds: the train state, the frozen GDPA params and the best record."""
  tree = {"train": state, "frozen": frozen_gdpa}
  if best is not None:
    tree["best"] = best
  return tree


def init_state(model: gdpa.GDPA, tx, mesh, *, seed: int, num_views: int, features: int,
               trainable_patterns, num_classes: int = 2):
  """(train state, frozen GDPA params) for one seed, replicated over `mesh`.

  `num_classes` sizes a linear probe's output layer (the GDPA ignores it).

  The state holds only what trains: {"step", "seed", "params" (the trainable
  subtree), "batch_stats", "opt_state"}; parameters that the rules freeze are
  returned apart and get no optimiser state.
  """
  key = (model, tx, mesh, num_views, features, tuple(trainable_patterns), num_classes)
  init = _INITIALIZERS.get(key, lambda: _initializer(*key))
  return init(jnp.asarray(seed, jnp.int32))


def _initializer(model, tx, mesh, num_views, features, trainable_patterns, num_classes):
  """One jitted initialisation per model: eager `init` would compile op by op."""

  def init(seed):
    # "rbg" keys compile far faster than threefry on CPU; the streams need not match PyTorch's.
    variables = gdpa.init_variables(model, jax.random.key(seed, impl="rbg"), num_views, features,
                                    num_classes)
    trainable, frozen = rules.split(variables["params"], trainable_patterns)
    state = {"step": jnp.zeros((), jnp.int32), "seed": seed, "params": trainable,
             "batch_stats": variables["batch_stats"], "opt_state": tx.init(trainable)}
    return state, frozen

  # Placed as the step's outputs are, so the step compiles once.
  return jax.jit(init, out_shardings=parallel.replicated(mesh))


def variables_of(state, frozen_gdpa):
  """The GDPA's {"params", "batch_stats"} for evaluation."""
  return {"params": rules.merge(state["params"], frozen_gdpa), "batch_stats": state["batch_stats"]}


def make_steps(model: gdpa.GDPA, tx, mesh, encode=None):
  """The jitted training and evaluation functions.

  Returns a dict of:
    cached(state, frozen_gdpa, text, data, indices) -> (state, metrics): one
      step on cached features; `data` holds {"depth", "clip": float32[M, V, D]
      ("depth" [M, 1, D] on the 3D path), "label": int32[M]} on the devices and `indices` int32[B] (on the
      device too, a row of `epoch_orders`) picks the batch there.
    cached_epoch(state, frozen_gdpa, text, data, epoch_indices) -> (state,
      metrics): `cached` over the rows of `epoch_indices` int32[S, B] (an
      epoch of `epoch_orders`) in one jitted `lax.scan`, the same floats;
      metrics stacked: {"loss": float32[S], "correct": int32[S]}.
    live(state, frozen_gdpa, text, encoders, points, labels) -> (state,
      metrics): one step that renders and encodes `points` float32[B, N, 3]
      first (needs `encode`).
    predict(variables, text, data, indices int32[M']) -> float32[M', C]
      logits in evaluation mode.
  The state is donated; dropout keys are fold_in(key(seed), step). Cached
  per (model, tx, mesh, encode), so every seed and run of a process shares
  the compiled steps.
  """
  return _STEPS.get((model, tx, mesh, encode), lambda: _new_steps(model, tx, mesh, encode))


def _new_steps(model: gdpa.GDPA, tx, mesh, encode):
  sharded = parallel.data_sharding(mesh)
  constrain = lambda x: jax.lax.with_sharding_constraint(x, sharded)

  def loss_fn(trainable, frozen_gdpa, batch_stats, text, features, labels, rng):
    variables = {"params": rules.merge(trainable, frozen_gdpa), "batch_stats": batch_stats}
    logits, mutated = model.apply(variables, features["depth"], features["clip"], text, train=True,
                                  rngs={"dropout": rng}, mutable=["batch_stats"])
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
    # A model without BatchNorm (the linear probe) mutates nothing.
    return loss, (mutated.get("batch_stats", {}), logits)

  def update(state, frozen_gdpa, text, features, labels):
    rng = jax.random.fold_in(jax.random.key(state["seed"], impl="rbg"), state["step"])
    (loss, (batch_stats, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"], frozen_gdpa, state["batch_stats"], text, features, labels, rng)
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    state = dict(state, step=state["step"] + 1, params=optax.apply_updates(state["params"], updates),
                 batch_stats=batch_stats, opt_state=opt_state)
    return state, {"loss": loss, "correct": jnp.sum(jnp.argmax(logits, -1) == labels)}

  def gather(data, indices):
    return {k: constrain(data[k][indices]) for k in FEATURE_KEYS}, constrain(data["label"][indices])

  def cached_step(state, frozen_gdpa, text, data, indices):
    features, labels = gather(data, indices)
    return update(state, frozen_gdpa, text, features, labels)

  cached = jax.jit(cached_step, donate_argnums=0)

  @functools.partial(jax.jit, donate_argnums=0)
  def cached_epoch(state, frozen_gdpa, text, data, epoch_indices):
    # One dispatch for the epoch: an adapter step is small, so dispatching each from Python
    # is a visible share of its time (tiny CPU run: 1,216 -> 1,509 steps/s).
    return jax.lax.scan(lambda state, indices: cached_step(state, frozen_gdpa, text, data, indices),
                        state, epoch_indices)

  @functools.partial(jax.jit, donate_argnums=0)
  def live(state, frozen_gdpa, text, encoders, points, labels):
    features = jax.lax.stop_gradient(encode(encoders, points, None))
    return update(state, frozen_gdpa, text, features, labels)

  @jax.jit
  def predict(variables, text, data, indices):
    features, _ = gather(data, indices)
    return model.apply(variables, features["depth"], features["clip"], text, train=False)

  return {"cached": cached, "cached_epoch": cached_epoch, "live": live if encode is not None else None,
          "predict": predict}


def evaluate(predict, variables, text, data, indices: np.ndarray, chunk: int) -> np.ndarray:
  """Logits float32[len(indices), C] of the examples `indices` of `data`, in chunks of `chunk`."""
  indices = np.asarray(indices, np.int32)
  padded = np.zeros(-(-len(indices) // chunk) * chunk, np.int32)
  padded[:len(indices)] = indices
  outputs = [predict(variables, text, data, jnp.asarray(c)) for c in padded.reshape(-1, chunk)]
  return parallel.concat_to_host(outputs)[:len(indices)]


def to_device(features: dict, mesh) -> dict:
  """Cached features, replicated on every device (shared paths stay one array)."""
  replicated = parallel.replicated(mesh)
  clip = jax.device_put(np.asarray(features["clip"]), replicated)
  depth = clip if features["depth"] is features["clip"] else jax.device_put(
      np.asarray(features["depth"]), replicated)
  return {"clip": clip, "depth": depth,
          "label": jax.device_put(np.asarray(features["label"], np.int32), replicated)}


def epoch_orders(subset: np.ndarray, batch_size: int, seed: int, epochs: int) -> np.ndarray:
  """int32[epochs, steps, batch_size]: the training examples of every step.

  Epoch e visits `subset` in the order `pipeline.epoch_order` gives, as the
  live (augmented) pipeline does, and drops the remainder.
  """
  steps = len(subset) // batch_size
  return np.stack([subset[pipeline.epoch_order(len(subset), seed, e)[:steps * batch_size]]
                   for e in range(epochs)]).reshape(epochs, steps, batch_size).astype(np.int32)


def check_resampling(source, num_points: int, order_matters: bool = False) -> int:
  """The stored points per cloud, if `num_points`-point subsets of them are augmentations.

  A subset of every stored point is the cloud itself in another order, and the
  projection does not depend on the order: training would see the cached
  features again, slower. So `config.augment` needs fewer points than stored,
  unless an encoder reads the order (`order_matters`: a 3D encoder's
  farthest-point sampling starts from the first point).
  """
  stored = np.shape(source[0]["points"])[0]
  if num_points > stored:
    raise UserError(f"config.data.num_points={num_points}, but the dataset stores {stored} points per cloud")
  if num_points == stored and not order_matters:
    raise UserError(
        f"config.augment=True re-renders random subsets of each cloud's {stored} stored points, but "
        f"config.data.num_points={num_points} takes them all: every subset renders the same maps "
        f"(the projection ignores point order), so nothing would be augmented; set "
        f"config.data.num_points below {stored}, or config.augment=False")
  return stored


def resampled_batches(source, *, batch_size: int, num_points: int, seed: int, start_step: int,
                      num_steps: int):
  """Training batches whose clouds are a fresh random subset of their stored points.

  The example order is `pipeline.batches`' (so it matches `epoch_orders`);
  the subset of each step is drawn from (seed, step, host).
  """
  stored = check_resampling(source, num_points, order_matters=True)  # the task checked the setting
  batches = pipeline.batches(source, global_batch_size=batch_size, num_points=stored, training=True,
                             seed=seed, start_step=start_step, num_steps=num_steps, normalize_points=False)
  for step, local in enumerate(batches, start_step):
    rng = np.random.default_rng([seed, step, jax.process_index()])
    keep = np.argsort(rng.random(local["points"].shape[:2]), axis=1)[:, :num_points]
    local["points"] = np.take_along_axis(local["points"], keep[..., None], axis=1)
    yield local
