"""CLIP2Point image-depth contrastive pre-training.

A depth encoder E_D, a trainable copy of CLIP's image tower, learns to map the
depth maps of a shape next to CLIP's features F_I of its RGB rendering (frozen
image tower E_I) and next to each other across two viewing distances:

    F1, F2 = E_D(depth of view k at d1), E_D(depth of view k at d2)
    L = NTXent((F1 + F2) / 2, F_I) + NTXent(F1, F2) / w^2 + log(w + 1)

One jitted step takes the clouds in and gives the loss out: normalise,
project both depth maps, encode, loss over the global batch, LAMB update.
F_I comes from a cache computed once (or from E_I in the step with
`image_features="live"`).

Writes to the workdir: `checkpoints/` (the latest N and the best by
validation accuracy; rerunning the same command resumes), `metrics.jsonl`
(one JSON record per log step and per evaluation), `learning_curves.png`.
"""

import json
import os
import time

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from tqdm import tqdm

from clip2point_jax.core import checkpoints, feature_cache, layer_stack, parallel, rules
from clip2point_jax.features import image_features
from clip2point_jax.training import losses, metrics, optim
from clip2point_jax.data import pipeline, pretrain_data, registry, splits
from clip2point_jax.errors import UserError
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.loading import depth_encoder, hf_clip
from clip2point_jax.loading import classifier
from clip2point_jax.training import evaluate
from clip2point_jax.tools import make_tiny_clip
from clip2point_jax.core import plots
from renderers import cameras
from renderers import points as projector

IMAGE_FEATURE_MODES = ("cache", "live")
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "learning_curves.png"


# ---------------------------------------------------------------- model pieces


def _say(message: str) -> None:
  """Prints on host 0 only."""
  if jax.process_index() == 0:
    print(message)


def load_clip(config, workdir: str) -> hf_clip.LoadedCLIP:
  """The CLIP of `config.clip`; a tiny random one in <workdir>/tiny_clip if its name is empty."""
  if not config.clip.name:
    clip_dir = make_tiny_clip.ensure_tiny_clip(
        os.path.join(workdir, "tiny_clip"), seed=config.seed, vision_config={
            "image_size": config.render.image_size, "patch_size": config.clip.tiny_patch_size})
    with config.unlocked():
      config.clip.name = clip_dir
    _say(f"pretrain: using a tiny CLIP with RANDOM weights ({clip_dir}); set --config.clip.name "
          "to a real CLIP (e.g. openai/clip-vit-base-patch32) for a meaningful encoder.")
  return hf_clip.load_configured(config.clip, config.render.image_size)


def encoder_of(loaded: hf_clip.LoadedCLIP) -> clip_lib.CLIPVisionEncoder:
  """The image tower (+ projection) alone, computing as the loaded CLIP does."""
  model = loaded.model
  return clip_lib.CLIPVisionEncoder(loaded.config, model.dtype, model.attention, model.residual_dtype)


def initial_params(loaded: hf_clip.LoadedCLIP, w_init: float):
  """{"depth_encoder": a copy of CLIP's image tower, "w": float32[]}."""
  return {depth_encoder.ENCODER: depth_encoder.initial_params(loaded.params),
          depth_encoder.BALANCE_WEIGHT: np.float32(w_init)}


def _state_layout(config):
  """How the train state holds the trainable params: stacked layers or as given."""
  return layer_stack.stack if config.optim.stack_layers else (lambda tree: tree)


def make_optimizer(config, trainable, period_steps: int):
  """LAMB with warm-restart cosine annealing and the config's lr multipliers.

  `trainable` is in the model's layout (`layers_0`, ...): the rules match
  those paths. The transformation updates the train state's layout (see
  `initial_state`).
  """
  layout = _state_layout(config)
  schedule = optim.cosine_warm_restarts(config.optim.learning_rate, period_steps, config.optim.eta_min)
  tx = optim.lamb(schedule, b1=config.optim.b1, b2=config.optim.b2, eps=config.optim.eps,
                  weight_decay=config.optim.weight_decay, clamp_value=config.optim.clamp_value,
                  stacked=layer_stack.stacked_mask(layout(layer_stack.abstract(trainable))))
  return optim.with_lr_mults(tx, trainable, config.optim.lr_mults, layout=layout), schedule


def initial_state(config, trainable, period_steps: int):
  """(state, tx, schedule): step 0, the trainable params and LAMB's zero moments.

  With `config.optim.stack_layers` the state holds the encoder's layers
  stacked (`layer_stack`), so LAMB updates each kind of tensor for all layers
  in a few kernels; checkpoints then hold that layout too.
  """
  tx, schedule = make_optimizer(config, trainable, period_steps)
  params = _state_layout(config)(trainable)
  return {"step": np.int32(0), "params": params, "opt_state": tx.init(params)}, tx, schedule


def state_shardings(mesh, state, rules):
  """Shardings of the train state: each rule applies to a parameter and its optimiser state."""
  suffix_rules = [(f"(?:.*/)?(?:{pattern})", spec) for pattern, spec in rules]
  return parallel.param_shardings(mesh, state, suffix_rules)


def make_loss_fn(config, encoder: clip_lib.CLIPVisionEncoder, *, live: bool):
  """Points in, loss out: the forward pass of a train step, not yet jitted.

  Returns:
    `loss_fn(trainable, frozen, batch, image_source, step) -> (total, aux)`:
    trainable and frozen together are {"depth_encoder": ..., "w": ...};
    batch = {"points": float32[B, N, 3], "view": int32[B], "row": int32[B]}
    (+ "image": uint8[B, S, S, 3] when live); image_source is the cached
    F_I, float[M, V, D] (when live: the frozen image tower's params); step
    int32[] seeds the two camera distances. aux holds "l_intra", "l_cross",
    "w" and "features" (F1, F2, F_I: float32[B, D] each).
  """
  views = jnp.asarray(cameras.views_array(pretrain_data.VIEWS))
  image_encoder = clip_lib.CLIPVisionEncoder(encoder.config, encoder.dtype, encoder.attention,
                                             encoder.residual_dtype)
  seed, jitter = config.seed, config.render.distance_jitter
  kwargs = dict(temperature=config.loss.temperature, negatives_group=config.loss.negatives_group or None)

  def loss_fn(trainable, frozen, batch, image_source, step):
    b = batch["points"].shape[0]
    # Both distances of every sample come from (seed, step): a resumed run redraws them.
    key = jax.random.fold_in(jax.random.key(seed), step)
    distance = 1.0 + jitter * (2.0 * jax.random.uniform(key, (b, 2)) - 1.0)
    sample_views = jnp.broadcast_to(views[batch["view"]][:, None], (b, 2, 2))
    points = projector.normalize_points(batch["points"])
    depth = projector.render_depth(points, sample_views, image_size=config.render.image_size,
                                   radius=config.render.radius, distance=distance)
    # The encoder folds the grey-to-RGB copy and CLIP's normalisation into its patch embedding.
    depth = depth.reshape((2 * b,) + depth.shape[2:])
    if live:
      rgb = clip_lib.normalize_images(batch["image"].astype(jnp.float32) / 255.0)
      f_image = jax.lax.stop_gradient(image_encoder.apply({"params": image_source}, rgb))
    else:
      f_image = image_source[batch["row"], batch["view"]].astype(jnp.float32)
    params = rules.merge(layer_stack.unstack(trainable), frozen)
    features = encoder.apply({"params": params[depth_encoder.ENCODER]}, grey=depth).reshape(b, 2, -1)
    w = params[depth_encoder.BALANCE_WEIGHT]
    total, terms = losses.pretrain_loss(features[:, 0], features[:, 1], f_image, w, **kwargs)
    return total, {**terms, "w": w, "features": (features[:, 0], features[:, 1], f_image)}

  return loss_fn


def make_train_step(config, encoder: clip_lib.CLIPVisionEncoder, tx, schedule, *, live: bool):
  """The train step, not yet jitted.

  Returns:
    `step(state, frozen, batch, image_source) -> (state, metrics)`, with
    state = {"step": int32[], "params": trainable, "opt_state": ...} and the
    other arguments as for `make_loss_fn`. Metrics are float32 scalars: loss,
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


# Jitted train steps by what determines their program, so running the task
# again in one process (a notebook, the tests) does not compile again.
_JITTED_STEPS = {}


def jitted_train_step(config, encoder, tx, schedule, *, live, period, mesh, state, frozen, shardings,
                      frozen_shardings):
  """`make_train_step` in one jit: train state donated, batch sharded over the data axis."""
  fields = {k: config[k].to_dict() if hasattr(config[k], "to_dict") else config[k]
            for k in ("seed", "render", "loss", "optim", "sharding_rules")}
  shapes = lambda tree: (str(jax.tree.structure(tree)),
                         tuple((x.shape, str(x.dtype)) for x in jax.tree.leaves(tree)))
  key = (json.dumps(fields, sort_keys=True, default=str), encoder.config, str(encoder.dtype),
         encoder.attention, str(encoder.residual_dtype), live,
         period, tuple(d.id for d in mesh.devices.flat), shapes(state), shapes(frozen))
  if key not in _JITTED_STEPS:
    _JITTED_STEPS.clear()  # Keep one: compiled programs hold memory.
    replicated = parallel.replicated(mesh)
    _JITTED_STEPS[key] = jax.jit(
        make_train_step(config, encoder, tx, schedule, live=live), donate_argnums=(0,),
        in_shardings=(shardings, frozen_shardings, parallel.data_sharding(mesh), replicated),
        out_shardings=(shardings, replicated))
  return _JITTED_STEPS[key]


# ---------------------------------------------------------------------- data


def _dataset_identity(name: str, data_dir: str, split: str) -> dict:
  """The prepared data a feature cache was made from: options and record files."""
  folder = registry.dataset_dir(name, data_dir)
  records = sorted((f, os.path.getsize(os.path.join(folder, f))) for f in os.listdir(folder)
                   if f"-{split}." in f)
  return {"options": registry.metadata(name, data_dir).get("options"),
          "records": [list(r) for r in records]}


def _train_arrays(config, workdir, source):
  """(rows with renderings, the stored points float32[M, S, 3]) of the training split."""
  data_dir = splits.data_dir(config.data, workdir)
  dataset_dir = registry.dataset_dir(config.data.name, data_dir)
  ident = {"dataset": config.data.name, "split": config.data.split, "num_examples": len(source),
           "dataset_options": _dataset_identity(config.data.name, data_dir, config.data.split)}
  points, has_images = pretrain_data.stored_points(
      source, os.path.join(dataset_dir, "stored_points", config.data.split), ident)
  return np.flatnonzero(has_images), points


def _image_source(config, workdir, source, loaded, mesh):
  """What the step reads F_I from, on the mesh.

  Cache mode: F_I of every (shape, view), float16[M, V, D] (or the cache's
  dtype), replicated; live mode: the frozen image tower's params.
  """
  replicated = parallel.replicated(mesh)
  vision = clip_lib.vision_params(loaded.params)
  if config.image_features == "live":
    _say("pretrain: image features computed in every step (image_features=live)")
    return jax.device_put(vision, replicated)
  data_dir = splits.data_dir(config.data, workdir)
  directory = config.image_cache.dir or image_features.default_dir(
      registry.dataset_dir(config.data.name, data_dir), config.clip.name, config.data.split,
      config.image_cache.dtype)
  ident = image_features.identity(
      clip_fingerprint=feature_cache.fingerprint(vision), dataset=config.data.name,
      split=config.data.split, num_examples=len(source),
      dataset_options=_dataset_identity(config.data.name, data_dir, config.data.split),
      image_size=config.render.image_size, dtype=config.image_cache.dtype)
  encoder = encoder_of(loaded)
  encode = lambda p, images: encoder.apply({"params": p}, images)
  compute = lambda: image_features.compute(
      source, encode, jax.device_put(vision, replicated), mesh,
      image_size=config.render.image_size, batch_size=config.image_cache.batch_size,
      dtype=config.image_cache.dtype, workers=config.workers)
  cached = image_features.load_or_compute(directory, ident, compute)
  _say(f"pretrain: CLIP image features of {int(cached['has_images'].sum())} shapes x "
        f"{pretrain_data.NUM_VIEWS} views from {directory}")
  return jax.device_put(np.asarray(cached["features"]), replicated)


# --------------------------------------------------------------------- evals


class ZeroShotEvals:
  """Zero-shot accuracy of the current depth encoder on each `config.evals` set."""

  def __init__(self, config, workdir, loaded, mesh):
    self.mesh, self.evals = mesh, []
    for name, e in config.evals.items():
      if not e.data.name:
        continue
      cfg = ml_collections.ConfigDict(e.to_dict())
      cfg.clip = ml_collections.ConfigDict(config.clip.to_dict())
      cfg.render = ml_collections.ConfigDict(dict(
          image_size=config.render.image_size, radius=config.render.radius, distance=1.0))
      if not cfg.data.data_dir:
        cfg.data.data_dir = config.data.data_dir
      source, class_names = splits.load(cfg.data, cfg.data.split, workdir)
      classify, clip_params, text = classifier.load_classifier(cfg, class_names, mesh, loaded=loaded)
      self.evals.append((name, cfg, source, class_names, classify, clip_params, text))

  @property
  def names(self):
    return [e[0] for e in self.evals]

  def __call__(self, encoder_params) -> dict[str, float]:
    """{"<name>_top1": ..., "<name>_mean_class": ...} for every evaluation set."""
    out = {}
    for name, cfg, source, class_names, classify, clip_params, text in self.evals:
      params = depth_encoder.with_encoder(clip_params, encoder_params)
      logits, labels, _ = evaluate.predict(classify, params, text, source, cfg, self.mesh,
                                                desc=f"eval {name}")
      result = metrics.classification_metrics(logits, labels, class_names)
      out[f"{name}_top1"] = result["top1_accuracy"]
      out[f"{name}_mean_class"] = result["mean_class_accuracy"]
    return out


# ------------------------------------------------------------------- outputs


class MetricsLog:
  """metrics.jsonl and learning_curves.png, written by host 0."""

  def __init__(self, workdir, resume_step, writer=None):
    self.path = os.path.join(workdir, METRICS_FILE)
    self.curves = os.path.join(workdir, CURVES_FILE)
    self.writer = writer
    self.records = []
    self.main = jax.process_index() == 0
    if resume_step and os.path.exists(self.path):
      with open(self.path) as f:
        self.records = [r for r in map(json.loads, filter(str.strip, f)) if r["step"] <= resume_step]
    if self.main:  # Records past the restored step came from a run that did not finish them.
      with open(self.path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in self.records)

  def write(self, record):
    self.records.append(record)
    if not self.main:
      return
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if self.writer is not None:
      self.writer.write_scalars(record["step"], {k: v for k, v in record.items()
                                                 if k != "step" and isinstance(v, (int, float))})

  def plot(self, title):
    if self.main and self.records:
      plots.save_learning_curves(self.records, self.curves, title=title)

  def close(self):
    if self.writer is not None:
      self.writer.close()


def _event_writer(workdir):
  """clu's TensorBoard writer where clu is installed, else None."""
  try:
    from clu import metric_writers  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  return metric_writers.create_default_writer(workdir, just_logging=jax.process_index() != 0)


def _check_finite(pending, ckpt):
  """Raises UserError naming the first step whose loss is not finite."""
  for step, m in pending:
    loss = float(m["loss"])
    if not np.isfinite(loss):
      last = ckpt.latest_step()
      kept = (f"the last good checkpoint, step {last}, is kept in {ckpt.directory}" if last is not None
              else "no checkpoint was saved before it")
      raise UserError(f"the loss became {loss} at step {step}; training stopped and {kept}. "
                      "Lower config.optim.learning_rate (or use clip.dtype=float32) and rerun; a "
                      "rerun resumes from the last checkpoint")


# ---------------------------------------------------------------------- run


def _validate(config):
  if config.image_features not in IMAGE_FEATURE_MODES:
    raise UserError(f"config.image_features={config.image_features!r}; use one of "
                    f"{', '.join(IMAGE_FEATURE_MODES)}")
  group = config.loss.negatives_group
  if group < 0 or (group and config.batch_size % group):
    raise UserError(f"config.loss.negatives_group={group} must divide config.batch_size="
                    f"{config.batch_size} (0: the whole batch)")
  if config.loss.temperature <= 0:
    raise UserError(f"config.loss.temperature={config.loss.temperature} must be positive")
  if not 0 <= config.render.distance_jitter < 1:
    raise UserError(f"config.render.distance_jitter={config.render.distance_jitter}; use [0, 1)")


def run(config, workdir: str) -> dict:
  """Pre-trains (or resumes); returns a summary dict."""
  os.makedirs(workdir, exist_ok=True)
  _validate(config)
  # 1. Mesh.
  mesh = parallel.make_mesh()
  if config.batch_size % mesh.devices.size:
    raise UserError(f"config.batch_size={config.batch_size} is not a multiple of the "
                    f"{mesh.devices.size} devices")

  # 2. Data: the training split and where its image features come from.
  loaded = load_clip(config, workdir)
  source, _ = splits.load(config.data, config.data.split, workdir)
  pretrain_data.check_has_renderings(source, config.data.name)
  rows, points = _train_arrays(config, workdir, source)
  image_source = _image_source(config, workdir, source, loaded, mesh)
  steps_per_epoch = pipeline.num_batches(len(rows), config.batch_size, True)
  if not steps_per_epoch:
    raise UserError(f"{len(rows)} shapes with renderings in {config.data.name}/{config.data.split}, "
                    f"fewer than the batch size {config.batch_size}")
  num_steps = config.num_steps or config.num_epochs * steps_per_epoch
  eval_every = config.eval_every_steps or config.eval_every_epochs * steps_per_epoch
  period = config.optim.restart_steps or config.optim.restart_epochs * steps_per_epoch

  # 3. Model and optimiser.
  encoder = encoder_of(loaded)
  trainable, frozen = rules.split(initial_params(loaded, config.w_init), config.optim.trainable)
  state, tx, schedule = initial_state(config, trainable, period)
  shardings = state_shardings(mesh, state, config.sharding_rules)
  frozen_shardings = state_shardings(mesh, frozen, config.sharding_rules)
  state = jax.device_put(state, shardings)
  frozen = jax.device_put(frozen, frozen_shardings)

  # 4. Step function: one jit, train state donated.
  live = config.image_features == "live"
  train_step = jitted_train_step(config, encoder, tx, schedule, live=live, period=period, mesh=mesh,
                                 state=state, frozen=frozen, shardings=shardings,
                                 frozen_shardings=frozen_shardings)

  # 5. Checkpoint restore: rerunning the same command resumes.
  evals = ZeroShotEvals(config, workdir, loaded, mesh)
  best_metric = depth_encoder.BEST_METRIC if "val" in evals.names else None
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, depth_encoder.CHECKPOINTS),
                                  keep=config.checkpoint.keep, best_metric=best_metric,
                                  async_save=config.checkpoint.async_save)
  start = 0
  if ckpt.latest_step() is not None:
    state, meta = ckpt.restore(checkpoints.abstract_like(state, shardings))
    start = int(state["step"])
    _check_resumable(meta.get("data", {}), len(rows), config, ckpt.directory)
    _say(f"pretrain: resuming from step {start} ({ckpt.directory})")
  log = MetricsLog(workdir, start, _event_writer(workdir))

  def save(step, eval_metrics=None):
    meta = {"data": pretrain_data.data_state(step, len(rows), config.batch_size, config.seed),
            "config": json.loads(config.to_json_best_effort())}
    chosen = {best_metric: eval_metrics[best_metric]} if eval_metrics and best_metric else None
    ckpt.save(step, state, meta=meta, metrics=chosen)

  def encoder_params():
    return rules.merge(layer_stack.unstack(state["params"]), frozen)[depth_encoder.ENCODER]

  # 6. Evals happen in the loop, every `eval_every` steps and at the end.
  # 7. Loop.
  logging.info("pretrain: %d shapes, %d steps per epoch, %d steps", len(rows), steps_per_epoch, num_steps)
  _say(f"pretrain: {len(rows)} shapes with renderings, batch {config.batch_size}, "
        f"{steps_per_epoch} steps per epoch, steps {start} -> {num_steps}")
  batches = pipeline.prefetch(pretrain_data.batches(
      source, rows, global_batch_size=config.batch_size, num_points=config.data.num_points,
      seed=config.seed, start_step=start, num_steps=max(num_steps - start, 0), points=points,
      live_images=live,
      image_size=config.render.image_size, workers=config.workers), size=config.prefetch)
  bar = tqdm(total=num_steps, initial=start, desc="pretrain", unit="step",
             disable=jax.process_index() != 0)
  pending, timed, compile_seconds, compile_logged = [], 0, None, False
  interval_start = time.time()
  try:
    for step in range(start, num_steps):
      batch = parallel.global_batch(mesh, next(batches))
      state, step_metrics = train_step(state, frozen, batch, image_source)
      if compile_seconds is None:  # This process's first step compiles: timed apart.
        jax.block_until_ready(step_metrics)
        compile_seconds = time.time() - interval_start
        interval_start = time.time()
      else:
        timed += 1
      pending.append((step + 1, step_metrics))
      bar.update(1)
      done = step + 1
      is_eval = done == num_steps or (eval_every and done % eval_every == 0)
      is_ckpt = done % config.checkpoint.every_steps == 0
      if not (done % config.log_every == 0 or is_eval or is_ckpt):
        continue
      fetched = jax.device_get(pending)  # The only wait for the device, every log_every steps.
      _check_finite(fetched, ckpt)
      seconds = time.time() - interval_start
      record = {"step": done, "epoch": done / steps_per_epoch,
                **{k: float(np.mean([m[k] for _, m in fetched]))
                   for k in ("loss", "l_intra", "l_cross", "grad_norm")},
                "w": float(fetched[-1][1]["w"]), "lr": float(fetched[-1][1]["lr"])}
      if timed:
        record.update(step_seconds=seconds / timed,
                      samples_per_second=config.batch_size * timed / max(seconds, 1e-9))
      if not compile_logged:
        record["compile_seconds"], compile_logged = compile_seconds, True
      log.write(record)
      bar.set_postfix(loss=f"{record['loss']:.4f}", w=f"{record['w']:.3f}")
      pending = []
      if is_eval and evals.names:
        result = evals(encoder_params())
        log.write({"step": done, **result})
        save(done, result)
        if done < num_steps:  # The last one is drawn after the loop.
          log.plot(f"pre-training, step {done}")
        bar.write(f"step {done}: " + "  ".join(f"{k} {100 * v:.2f}%" for k, v in result.items()
                                                if k.endswith("_top1")))
      elif is_eval or is_ckpt:
        save(done)
      interval_start, timed = time.time(), 0
  finally:
    bar.close()
    ckpt.close()
    log.close()
  log.plot(f"pre-training, step {num_steps}")
  return _summary(log, ckpt, workdir, num_steps)


def _check_resumable(data_state, num_examples, config, directory):
  now = {"num_examples": num_examples, "global_batch_size": config.batch_size, "seed": config.seed}
  differing = {k: (data_state.get(k), v) for k, v in now.items() if data_state.get(k) not in (None, v)}
  if differing:
    details = ", ".join(f"{k}: checkpoint {a}, now {b}" for k, (a, b) in differing.items())
    raise UserError(f"{directory} holds a run with other data settings ({details}); resuming it "
                    "would not continue the same run. Use a fresh --workdir, or the same settings")


def _summary(log, ckpt, workdir, num_steps):
  losses_seen = [r["loss"] for r in log.records if "loss" in r]
  vals = [r for r in log.records if "val_top1" in r]
  summary = {"steps": num_steps, "final_loss": losses_seen[-1] if losses_seen else None,
             "first_loss": losses_seen[0] if losses_seen else None,
             "checkpoints": ckpt.directory, "best_step": ckpt.best_step()}
  if vals:
    best = max(vals, key=lambda r: r["val_top1"])
    summary.update(best_val_top1=best["val_top1"], best_val_step=best["step"],
                   final_evals={k: v for k, v in vals[-1].items() if k != "step"})
  if jax.process_index() == 0:
    print(f"\npretrain: {num_steps} steps; loss {summary['first_loss']} -> {summary['final_loss']}")
    if vals:
      print(f"  best validation top-1 {100 * summary['best_val_top1']:.2f}% at step "
            f"{summary['best_val_step']}")
    print(f"  wrote {METRICS_FILE}, {CURVES_FILE} and checkpoints/ to {workdir}; zero-shot with it: "
          f"--config.depth_encoder={workdir}")
  return summary
