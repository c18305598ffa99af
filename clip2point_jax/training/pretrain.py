"""The pre-training step and the state it updates (the task `tasks/pretrain.py` runs them).

    trainable, frozen = rules.split(initial_params(loaded, w_init), config.optim.trainable)
    state, tx, schedule = initial_state(config, trainable, period_steps)
    step = jitted_train_step(config, encoder, tx, schedule, live=False, period=period_steps,
                             mesh=mesh, state=state, frozen=frozen, shardings=...,
                             frozen_shardings=...)
    state, metrics = step(state, frozen, batch, image_source)

The state is {"step": int32[], "params": the trainable params (layers stacked
with `config.optim.stack_layers`), "opt_state": LAMB's moments}; checkpoints
hold exactly this tree. Frozen params travel apart and get no optimiser state.
"""

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clip2point_jax.core import layer_stack, parallel, rules, throughput
from clip2point_jax.core import settings as settings_diff
from clip2point_jax.data import pretrain_data
from clip2point_jax.errors import UserError
from clip2point_jax.features import image_features
from clip2point_jax.loading import depth_encoder, hf_clip
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.projection import encode
from clip2point_jax.projection import settings as render_settings
from clip2point_jax.training import loop, losses, optim
from renderers import cameras

IMAGE_FEATURE_MODES = ("cache", "live")
# Averaged over the steps between two log records; w and lr are taken from the last.
AVERAGED = ("loss", "l_intra", "l_cross", "grad_norm")


def check_batch_size(config, num_examples: int, devices: int) -> None:
  """UserError if the global batch is larger than the training set (every step needs a full one).

  Called once the data is read and before CLIP is loaded or anything compiled.
  """
  if config.batch_size <= num_examples:
    return
  fits = num_examples // devices * devices
  advice = (f"use --config.batch_size={fits} or less (a multiple of the {devices} devices)" if fits else
            f"that is fewer than the {devices} devices: use more data or fewer devices")
  raise UserError(f"config.batch_size={config.batch_size} is larger than the {num_examples} shapes with "
                  f"renderings in {config.data.name}/{config.data.split}; {advice}")


# ---------------------------------------------------------- state and optimiser


def initial_params(loaded: hf_clip.LoadedCLIP, w_init: float) -> dict[str, Any]:
  """{"depth_encoder": a copy of CLIP's image tower (+ projection), "w": float32[]}."""
  return {depth_encoder.ENCODER: depth_encoder.initial_params(loaded.params),
          depth_encoder.BALANCE_WEIGHT: np.float32(w_init)}


def _state_layout(config):
  """How the train state holds the trainable params: stacked layers or as given."""
  return layer_stack.stack if config.optim.stack_layers else (lambda tree: tree)


def make_optimizer(config, trainable, period_steps: int):
  """(tx, schedule): LAMB with warm-restart cosine annealing and the config's lr multipliers.

  `trainable` is in the model's layout (`layers_0`, ...): the rules match
  those paths. The transformation updates the train state's layout (see
  `initial_state`). `schedule(step int32[]) -> float32[]` is the learning rate.
  """
  layout = _state_layout(config)
  schedule = optim.cosine_warm_restarts(config.optim.learning_rate, period_steps, config.optim.eta_min)
  tx = optim.lamb(schedule, b1=config.optim.b1, b2=config.optim.b2, eps=config.optim.eps,
                  weight_decay=config.optim.weight_decay, clamp_value=config.optim.clamp_value,
                  stacked=layer_stack.stacked_mask(layout(layer_stack.abstract(trainable))))
  return optim.with_lr_mults(tx, trainable, config.optim.lr_mults, layout=layout), schedule


def initial_state(config, trainable, period_steps: int, batch_stats=None):
  """(state, tx, schedule): step 0, the trainable params and LAMB's zero moments.

  With `config.optim.stack_layers` the state holds the encoder's layers
  stacked (`layer_stack`), so LAMB updates each kind of tensor for all layers
  in a few kernels; checkpoints then hold that layout too. `batch_stats`
  (the 3D encoder's BatchNorm statistics, `training/point_pretrain.py`) joins
  the state where given; the depth encoder's state has none, as before.
  """
  tx, schedule = make_optimizer(config, trainable, period_steps)
  params = _state_layout(config)(trainable)
  state = {"step": np.int32(0), "params": params, "opt_state": tx.init(params)}
  if batch_stats is not None:
    state["batch_stats"] = batch_stats
  return state, tx, schedule


def state_shardings(mesh, state, sharding_rules):
  """Shardings of the train state: each rule applies to a parameter and its optimiser state."""
  suffix_rules = [(f"(?:.*/)?(?:{pattern})", spec) for pattern, spec in sharding_rules]
  return parallel.param_shardings(mesh, state, suffix_rules)


def encoder_params(state_params, frozen) -> dict[str, Any]:
  """The depth encoder's whole param tree (model layout) from the state's params and the frozen ones."""
  return rules.merge(layer_stack.unstack(state_params), frozen)[depth_encoder.ENCODER]


# ------------------------------------------------------------------------ step


def make_loss_fn(config, encoder: clip_lib.CLIPVisionEncoder, *, live: bool):
  """Points in, loss out: the forward pass of a train step, not yet jitted.

  Both depth maps of a sample are of its view k, through `projection.encode`
  with every projector setting of `config.render`, at the distances
  `render.distance * (1 + jitter (2U - 1))`.

  Returns:
    `loss_fn(trainable, frozen, batch, image_source, step) -> (total, aux)`:
    trainable and frozen together are {"depth_encoder": ..., "w": ...};
    batch = {"points": float32[B, N, 3], "view": int32[B], "row": int32[B]}
    (+ "image": uint8[B, S, S, 3] when live); image_source is the cached
    F_I, float[M, V, D] (when live: the frozen image tower's params); step
    int32[] seeds the two camera distances. total is float32[]; aux holds
    "l_intra", "l_cross", "w" (float32[]) and "features" (F1, F2, F_I:
    float32[B, D] each).
  """
  settings = render_settings.from_config(config.render, views=pretrain_data.VIEWS)
  views = jnp.asarray(cameras.views_array(settings.views))
  seed, jitter = config.seed, config.render.distance_jitter
  kwargs = dict(temperature=config.loss.temperature, negatives_group=config.loss.negatives_group or None)
  # The encoder folds the grey-to-RGB copy and CLIP's normalisation into its patch embedding.
  encode_depth = lambda params, depth: encoder.apply({"params": params}, grey=depth)

  def loss_fn(trainable, frozen, batch, image_source, step):
    b = batch["points"].shape[0]
    # Both distances of every sample come from (seed, step): a resumed run redraws them.
    key = jax.random.fold_in(jax.random.key(seed), step)
    distance = settings.distance * (1.0 + jitter * (2.0 * jax.random.uniform(key, (b, 2)) - 1.0))
    sample_views = jnp.broadcast_to(views[batch["view"]][:, None], (b, 2, 2))
    if live:
      rgb = clip_lib.normalize_images(batch["image"].astype(jnp.float32) / 255.0)
      f_image = jax.lax.stop_gradient(encoder.apply({"params": image_source}, rgb))
    else:
      f_image = image_source[batch["row"], batch["view"]].astype(jnp.float32)
    params = rules.merge(layer_stack.unstack(trainable), frozen)
    features = encode.points_to_features(encode_depth, params[depth_encoder.ENCODER], batch["points"],
                                         settings, views=sample_views, distance=distance)
    w = params[depth_encoder.BALANCE_WEIGHT]
    total, terms = losses.pretrain_loss(features[:, 0], features[:, 1], f_image, w, **kwargs)
    return total, {**terms, "w": w, "features": (features[:, 0], features[:, 1], f_image)}

  return loss_fn


def make_train_step(config, encoder: clip_lib.CLIPVisionEncoder, tx, schedule, *, live: bool):
  """The train step, not yet jitted.

  Returns:
    `step(state, frozen, batch, image_source) -> (state, metrics)`, with
    state = {"step": int32[], "params": trainable, "opt_state": ...} and the
    other arguments as for `make_loss_fn`. Metrics are float32[] each: loss,
    l_intra, l_cross, w, lr, grad_norm.
  """
  loss_fn = make_loss_fn(config, encoder, live=live)

  def step(state, frozen, batch, image_source):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
        state["params"], frozen, batch, image_source, state["step"])
    updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
    new_state = {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
                 "opt_state": opt_state}
    out = {"loss": loss, "l_intra": aux["l_intra"], "l_cross": aux["l_cross"], "w": aux["w"],
           "lr": schedule(state["step"]), "grad_norm": optax.tree.norm(grads)}
    return new_state, out

  return step


STEPS = loop.JitCache()


def jitted_train_step(config, encoder, tx, schedule, *, live, period, mesh, state, frozen, shardings,
                      frozen_shardings, make_step=make_train_step):
  """`make_step` (default `make_train_step`) in one jit: train state donated, batch sharded.

  Compiled once per process for the same config blocks, encoder, mesh and
  state shapes (`STEPS`), so running the task again compiles nothing new.

  Args:
    encoder: what `make_step` runs (hashable): the depth encoder's module, or
      `point_pretrain.Encoders` with `make_step=point_pretrain.make_train_step`.
    live: F_I from the image tower inside the step (else from the cache).
    period: the schedule's restart period in steps (tx and schedule close over it).
    state, frozen: the step's first two arguments (their shapes key the cache).
    shardings, frozen_shardings: their shardings (`state_shardings`).

  Returns:
    The jitted `step(state, frozen, batch, image_source) -> (state, metrics)`.
  """
  shapes = lambda tree: (str(jax.tree.structure(tree)),
                         tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(tree)))
  # The encoder module is a hashable dataclass: its config, dtypes and kernels.
  key = (loop.config_key(config.seed, config.render, config.loss, config.optim, config.sharding_rules,
                         config.get("point_transformer")),
         make_step, encoder, live, period, mesh, shapes(state), shapes(frozen))
  replicated = parallel.replicated(mesh)
  return STEPS.get(key, lambda: jax.jit(
      make_step(config, encoder, tx, schedule, live=live), donate_argnums=(0,),
      in_shardings=(shardings, frozen_shardings, parallel.data_sharding(mesh), replicated),
      out_shardings=(shardings, replicated)))


# ------------------------------------------------------------------------ data


def image_source(config, workdir: str, source, loaded: hf_clip.LoadedCLIP, mesh):
  """What the step reads F_I from, replicated on the mesh.

  Cache mode: F_I of every (shape, view), float16[M, V, D] (or the cache's
  dtype; `image_features.for_split`); live mode: the frozen image tower's
  params, for the step to run it.
  """
  replicated = parallel.replicated(mesh)
  if config.image_features == "live":
    loop.say("pretrain: image features computed in every step (image_features=live)")
    return jax.device_put(clip_lib.vision_params(loaded.params), replicated)
  cached, directory = image_features.for_split(config, workdir, source, loaded, mesh)
  loop.say(f"pretrain: CLIP image features of {int(cached[image_features.HAS_IMAGES].sum())} shapes x "
           f"{pretrain_data.NUM_VIEWS} views from {directory}")
  return jax.device_put(np.asarray(cached[image_features.FEATURES]), replicated)


# ---------------------------------------------------------- checkpoints and logs


def checkpoint_meta(step: int, num_examples: int, config) -> dict[str, Any]:
  """What a checkpoint records beside the state: where the data stream stands, and the config."""
  return {"data": pretrain_data.data_state(step, num_examples, config.batch_size, config.seed),
          "config": json.loads(config.to_json_best_effort())}


def check_resumable(data_state: dict, num_examples: int, config, directory: str) -> None:
  """UserError if the checkpoint's data stream is not the one this config draws.

  Args:
    data_state: `checkpoint_meta(...)["data"]` of the checkpoint; settings it
      did not record are not compared.
  """
  now = {"num_examples": num_examples, "global_batch_size": config.batch_size, "seed": config.seed}
  recorded = {k: data_state[k] for k in now if data_state.get(k) is not None}
  now = {k: now[k] for k in recorded}
  if settings_diff.differing_keys(recorded, now):
    details = settings_diff.describe_diff(recorded, now, template="{key}: checkpoint {old}, now {new}",
                                          sep=", ")
    raise UserError(f"{directory} holds a run with other data settings ({details}); resuming it "
                    "would not continue the same run. Use a fresh --workdir, or the same settings")


def interval_record(fetched, step: int, steps_per_epoch: int) -> dict[str, float]:
  """The log record of the steps since the last one.

  Args:
    fetched: [(step, metrics of `make_train_step`, on the host)], oldest first.
  """
  return {"step": step, "epoch": step / steps_per_epoch,
          **{k: float(np.mean([m[k] for _, m in fetched])) for k in AVERAGED},
          "w": float(fetched[-1][1]["w"]), "lr": float(fetched[-1][1]["lr"])}


class StepTimer:
  """metrics.jsonl's timing fields from a `throughput.Timer`: the process's first (compiling) step apart.

    state, metrics = timer.step(train_step, state, frozen, batch, image_source)
    record.update(timer.fields(batch_size))   # after fetching the interval's metrics
    timer.restart()                           # after evaluations and checkpoints
  """

  def __init__(self):
    self.timer, self.compile_logged = throughput.Timer(), False

  def step(self, train_step, *args):
    """`train_step(*args)`; waits for the device only on the first step."""
    return self.timer.call(train_step, *args, steps=1)

  def fields(self, batch_size: int) -> dict[str, float]:
    """step_seconds and samples_per_second since the last `restart`; compile_seconds in the first record.

    Called once the interval's metrics are fetched, so the device has
    finished its last step when the clock is read.
    """
    lap, out = self.timer.lap(), {}
    if lap.counts.get("steps"):
      out.update(step_seconds=lap.seconds / lap.counts["steps"],
                 samples_per_second=batch_size * lap.counts["steps"] / max(lap.seconds, 1e-9))
    if not self.compile_logged:
      out["compile_seconds"], self.compile_logged = self.timer.compile_seconds, True
    return out

  def restart(self) -> None:
    """Starts the next interval (after evaluations and checkpoints, which are not step time)."""
    self.timer.resume()


def summary(records: list[dict], ckpt, workdir: str, num_steps: int) -> dict[str, Any]:
  """The run's summary (losses, best validation) from its log records; printed by host 0.

  The best step named is one whose checkpoint is on disk: among evaluations
  tied at the best value the manager keeps one (the latest), and the
  summary names that one.
  """
  losses_seen = [r["loss"] for r in records if "loss" in r]
  vals = [r for r in records if "val_top1" in r]
  kept = set(ckpt.all_steps())
  best_step = ckpt.best_step()
  out = {"steps": num_steps, "final_loss": losses_seen[-1] if losses_seen else None,
         "first_loss": losses_seen[0] if losses_seen else None,
         "checkpoints": ckpt.directory, "best_step": best_step if best_step in kept else None}
  if vals:
    top = max(r["val_top1"] for r in vals)
    tied = [r["step"] for r in vals if r["val_top1"] == top]
    on_disk = [s for s in tied if s in kept]
    step = out["best_step"] if out["best_step"] in on_disk else (on_disk[-1] if on_disk else None)
    out.update(best_val_top1=top, best_val_step=step if step is not None else tied[-1],
               best_val_checkpoint_kept=step is not None,
               final_evals={k: v for k, v in vals[-1].items() if k != "step"})
  loop.say(f"\npretrain: {num_steps} steps; loss {out['first_loss']} -> {out['final_loss']}")
  if vals:
    where = "" if out["best_val_checkpoint_kept"] else " (its checkpoint was not kept)"
    loop.say(f"  best validation top-1 {100 * out['best_val_top1']:.2f}% at step {out['best_val_step']}{where}")
  loop.say(f"  wrote {loop.METRICS_FILE}, {loop.CURVES_FILE} and checkpoints/ to {workdir}; zero-shot "
           f"with it: --config.depth_encoder={workdir}")
  return out
