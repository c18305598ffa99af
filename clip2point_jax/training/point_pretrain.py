"""Pre-training a 3D encoder the way CLIP2Point pre-trains its depth encoder (supplementary Sec. 4).

`configs/pretrain.py:encoder=point_transformer`. A Point Transformer E_P
(`models/point_transformer.py`, "clip" head, trained from scratch) reads each
cloud under two random augmentations a1, a2 and learns CLIP2Point's loss
with E_P in place of the depth encoder:

    F1, F2 = E_P(a1(cloud)), E_P(a2(cloud))
    L = NTXent((F1 + F2) / 2, F_I) + NTXent(F1, F2) / w^2 + log(w + 1)

F_I is CLIP's feature of the RGB rendering of view k, the view the data
stream draws for the sample (uniform over the ten, from (seed, step,
position) as for the depth encoder): the same cached features and the same
draws. The depth encoder sees view k's depth maps, so its pairs agree in
pose; E_P sees no camera, so view k is a random target that, over the
epochs, pairs each cloud with all ten of its renderings.

The augmentations (`config.point_transformer.augment`, after the cloud is
centred in the unit ball as every task does) stand in for the depth path's
two camera distances: a per-axis scale, jitter, a rotation about the up (y)
axis; drawn inside the step from (seed, step), so a resumed run redraws
them. Both augmentations go through the network as one batch of 2B clouds:
BatchNorm's statistics are over both, and the state's running statistics
move once per step.

The state is pre-training's ({"step", "params", "opt_state"}, `training/
pretrain.py`) plus "batch_stats", the network's BatchNorm statistics:
checkpointed and restored with the rest. The step functions mirror
`training/pretrain.py`'s and share its optimiser, schedule and jit cache.
"""

from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from clip2point_jax.core import rules
from clip2point_jax.errors import UserError
from clip2point_jax.loading import depth_encoder, hf_clip, point_encoder
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.models import point_transformer as pt
from clip2point_jax.projection import point_encode
from clip2point_jax.training import losses

BATCH_STATS = point_encoder.BATCH_STATS


class Encoders(NamedTuple):
  """What the step runs: the 3D encoder, and CLIP's image tower for live F_I (hashable)."""
  point: pt.PointTransformer
  image: clip_lib.CLIPVisionEncoder


def encoders(config, loaded: hf_clip.LoadedCLIP) -> Encoders:
  """The network of `config.point_transformer`, its head as wide as CLIP's embedding."""
  model = point_encoder.model_from_config(config.point_transformer,
                                          loaded.model.config.projection_dim)
  return Encoders(model, clip_lib.vision_tower(loaded.model))


def initial_variables(config, model: pt.PointTransformer) -> tuple[dict[str, Any], dict[str, Any]]:
  """({"point_encoder": params, "w": float32[]}, batch_stats), params drawn from config.seed.

  Raises:
    UserError if `config.optim.trainable` leaves any of the network frozen:
    it starts from random weights, so a frozen part would stay random.
  """
  init = jax.jit(lambda key: pt.init_variables(model, key))
  shapes = jax.eval_shape(init, jax.random.key(config.seed))
  trains = flax.traverse_util.flatten_dict(
      rules.trainable_mask({point_encoder.PARAMS_KEY: shapes["params"]}, config.optim.trainable),
      sep=rules.SEPARATOR)
  left = sorted(path for path, trained in trains.items() if not trained)
  if left:
    raise UserError(f"config.optim.trainable={tuple(config.optim.trainable)!r} leaves {len(left)} "
                    f"parameters of the Point Transformer frozen at their random values, e.g. "
                    f"{left[0]}; with encoder=point_transformer train all of them: use "
                    "configs/pretrain.py:encoder=point_transformer, or "
                    "--config.optim.trainable='(\"point_encoder/.*\", \"w\")'")
  variables = jax.device_get(init(jax.random.key(config.seed)))
  params = {point_encoder.PARAMS_KEY: variables["params"],
            depth_encoder.BALANCE_WEIGHT: np.float32(config.w_init)}
  return params, variables[BATCH_STATS]


def encoder_variables(state, frozen) -> dict[str, Any]:
  """{"params", "batch_stats"} of the network from the train state (and frozen params, if any)."""
  params = rules.merge(state["params"], frozen)[point_encoder.PARAMS_KEY]
  return {"params": params, BATCH_STATS: state[BATCH_STATS]}


# ------------------------------------------------------------------ augmentation


def augment(key, points: jax.Array, settings) -> jax.Array:
  """One random augmentation per cloud: per-axis scale, then rotation about y, then jitter.

  Args:
    key: a PRNG key.
    points: float32[B, N, 3], y-up, centred in the unit ball.
    settings: `config.point_transformer.augment` (scale (low, high),
      jitter_sigma, jitter_clip, rotate).

  Returns:
    float32[B, N, 3].
  """
  b = points.shape[0]
  scale_key, angle_key, jitter_key = jax.random.split(key, 3)
  low, high = (float(v) for v in settings.scale)
  scale = jax.random.uniform(scale_key, (b, 1, 3), minval=low, maxval=high)
  points = points * scale
  if settings.rotate:
    angle = jax.random.uniform(angle_key, (b,), maxval=2 * np.pi)
    cos, sin = jnp.cos(angle)[:, None], jnp.sin(angle)[:, None]
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    points = jnp.stack([cos * x + sin * z, y, -sin * x + cos * z], axis=-1)
  if settings.jitter_sigma:
    noise = settings.jitter_sigma * jax.random.normal(jitter_key, points.shape)
    points = points + jnp.clip(noise, -settings.jitter_clip, settings.jitter_clip)
  return points


# ------------------------------------------------------------------------ step


def make_loss_fn(config, models: Encoders, *, live: bool):
  """Points in, loss out: the 3D encoder's forward pass of a train step, not yet jitted.

  Returns:
    `loss_fn(trainable, frozen, batch_stats, batch, image_source, step) ->
    (total, aux)`: trainable and frozen together are {"point_encoder": ...,
    "w": ...}; batch, image_source and step as for
    `training.pretrain.make_loss_fn`. aux holds "l_intra", "l_cross", "w"
    (float32[]), "features" (F1, F2, F_I: float32[B, D] each) and
    "batch_stats" (the updated statistics).
  """
  kwargs = dict(temperature=config.loss.temperature, negatives_group=config.loss.negatives_group or None)
  settings = config.point_transformer.augment
  seed = config.seed

  def loss_fn(trainable, frozen, batch_stats, batch, image_source, step):
    b, n, _ = batch["points"].shape
    if live:
      rgb = clip_lib.normalize_images(batch["image"].astype(jnp.float32) / 255.0)
      f_image = jax.lax.stop_gradient(models.image.apply({"params": image_source}, rgb))
    else:
      f_image = image_source[batch["row"], batch["view"]].astype(jnp.float32)
    params = rules.merge(trainable, frozen)
    # Both augmentations of every sample come from (seed, step): a resumed run redraws them.
    keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), step), 2)
    points = point_encode.prepare_points(batch["points"])
    pairs = jnp.stack([augment(k, points, settings) for k in keys], axis=1)  # [B, 2, N, 3]
    # Sample-major, so each device's clouds stay on it; BatchNorm sees all 2B.
    features, updated = models.point.apply(
        {"params": params[point_encoder.PARAMS_KEY], BATCH_STATS: batch_stats},
        pairs.reshape(2 * b, n, 3), train=True, mutable=[BATCH_STATS])
    features = features.reshape(b, 2, -1)
    w = params[depth_encoder.BALANCE_WEIGHT]
    total, terms = losses.pretrain_loss(features[:, 0], features[:, 1], f_image, w, **kwargs)
    return total, {**terms, "w": w, "features": (features[:, 0], features[:, 1], f_image),
                   BATCH_STATS: updated[BATCH_STATS]}

  return loss_fn


def make_train_step(config, models: Encoders, tx, schedule, *, live: bool):
  """The train step, not yet jitted: `training.pretrain.make_train_step`'s, plus BatchNorm statistics.

  Returns:
    `step(state, frozen, batch, image_source) -> (state, metrics)`, state =
    {"step", "params", "opt_state", "batch_stats"}; metrics as the depth
    encoder's (loss, l_intra, l_cross, w, lr, grad_norm).
  """
  loss_fn = make_loss_fn(config, models, live=live)

  def step(state, frozen, batch, image_source):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"], frozen, state[BATCH_STATS], batch, image_source, state["step"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
                 "opt_state": opt_state, BATCH_STATS: aux[BATCH_STATS]}
    out = {"loss": loss, "l_intra": aux["l_intra"], "l_cross": aux["l_cross"], "w": aux["w"],
           "lr": schedule(state["step"]), "grad_norm": optax.tree.norm(grads)}
    return new_state, out

  return step
