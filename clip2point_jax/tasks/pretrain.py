"""CLIP2Point image-depth contrastive pre-training.

A depth encoder E_D, a trainable copy of CLIP's image tower, learns to map the
depth maps of a shape next to CLIP's features F_I of its RGB rendering (frozen
image tower E_I) and next to each other across two viewing distances:

    F1, F2 = E_D(depth of view k at d1), E_D(depth of view k at d2)
    L = NTXent((F1 + F2) / 2, F_I) + NTXent(F1, F2) / w^2 + log(w + 1)

One jitted step (`training/pretrain.py`) takes the clouds in and gives the
loss out: normalise, project both depth maps, encode, loss over the global
batch, LAMB update. F_I comes from a cache computed once (or from E_I in the
step with `image_features="live"`).

With `encoder="point_transformer"` (supplementary Sec. 4) a Point
Transformer replaces E_D, reading two augmentations of each cloud instead of
two depth maps (`training/point_pretrain.py`); the data, F_I, optimiser,
schedule, checkpoints (which then also hold its BatchNorm statistics) and
evaluations are the same.

Writes to the workdir (a local folder or gs://...): `checkpoints/` (the
latest N and the best by validation accuracy; rerunning the same command
resumes), `metrics.jsonl` (one JSON record per log step and per evaluation),
`learning_curves.png`.
"""

import os
import time

from absl import logging
import jax

from clip2point_jax import validation
from clip2point_jax.core import checkpoints, parallel, paths, rules
from clip2point_jax.data import pipeline, pretrain_data, splits
from clip2point_jax.errors import UserError
from clip2point_jax.loading import depth_encoder, hf_clip, point_encoder, tiny_clip
from clip2point_jax.models import clip as clip_lib
from clip2point_jax.training import loop, point_pretrain, pretrain_evals
from clip2point_jax.training import pretrain as pretraining


def load_clip(config, workdir: str) -> hf_clip.LoadedCLIP:
  """The CLIP of `config.clip`; a tiny random one in <workdir>/tiny_clip if its name is empty."""
  loop.say(f"pretrain: loading CLIP {config.clip.name or '(a tiny random one, made first)'}…")
  tiny_clip.use_if_unnamed(config, workdir, "pretrain", note=", so the encoder learns nothing meaningful")
  return hf_clip.load_configured(config.clip, config.render.image_size)


def run(config, workdir: str) -> dict:
  """Pre-trains (or resumes); returns a summary dict."""
  validation.check_task(config)
  paths.path(workdir).mkdir(parents=True, exist_ok=True)
  # 1. Mesh: one data axis over every device of every host.
  mesh = parallel.make_mesh()
  validation.check_devices(config, mesh.devices.size)

  # 2. Data: the training split's clouds, where their image features come from, the eval sets.
  source, _ = splits.load(config.data, config.data.split, workdir)
  pretrain_data.check_has_renderings(source, config.data.name)
  rows, points = pretrain_data.training_points(config.data, workdir, source)
  pretraining.check_batch_size(config, len(rows), mesh.devices.size)  # before CLIP loads or anything compiles
  loaded = load_clip(config, workdir)
  image_source = pretraining.image_source(config, workdir, source, loaded, mesh)
  steps_per_epoch = pipeline.num_batches(len(rows), config.batch_size, True)
  if not steps_per_epoch:
    raise UserError(f"{len(rows)} shapes with renderings in {config.data.name}/{config.data.split}, "
                    f"fewer than the batch size {config.batch_size}")
  num_steps = config.num_steps or config.num_epochs * steps_per_epoch
  eval_every = config.eval_every_steps or config.eval_every_epochs * steps_per_epoch
  period = config.optim.restart_steps or config.optim.restart_epochs * steps_per_epoch
  # The evaluation sets too, before anything in the workdir is written: a bad one fails here.
  loop.say("pretrain: preparing the evaluation sets and the optimiser…")
  point = config.encoder == point_encoder.POINT_TRANSFORMER
  encoder = point_pretrain.encoders(config, loaded) if point else clip_lib.vision_tower(loaded.model)
  evals = pretrain_evals.ZeroShotEvals(config, workdir, loaded, mesh,
                                       point_model=encoder.point if point else None)

  # 3. Model and optimiser: the trainable params (and BatchNorm statistics) and LAMB's state, on the mesh.
  if point:
    params, batch_stats = point_pretrain.initial_variables(config, encoder.point)
  else:
    params, batch_stats = pretraining.initial_params(loaded, config.w_init), None
  trainable, frozen = rules.split(params, config.optim.trainable)
  state, tx, schedule = pretraining.initial_state(config, trainable, period, batch_stats)
  shardings = pretraining.state_shardings(mesh, state, config.sharding_rules)
  frozen_shardings = pretraining.state_shardings(mesh, frozen, config.sharding_rules)
  state = jax.device_put(state, shardings)
  frozen = jax.device_put(frozen, frozen_shardings)

  # 4. Step function: one jit, train state donated.
  live = config.image_features == "live"
  train_step = pretraining.jitted_train_step(
      config, encoder, tx, schedule, live=live, period=period, mesh=mesh, state=state, frozen=frozen,
      shardings=shardings, frozen_shardings=frozen_shardings,
      make_step=point_pretrain.make_train_step if point else pretraining.make_train_step)

  # 5. Checkpoint restore: rerunning the same command resumes.
  best_metric = depth_encoder.BEST_METRIC if "val" in evals.names else None
  ckpt = checkpoints.Checkpointer(os.path.join(workdir, depth_encoder.CHECKPOINTS),
                                  keep=config.checkpoint.keep, best_metric=best_metric,
                                  async_save=config.checkpoint.async_save)
  start = 0
  if ckpt.latest_step() is not None:
    state, meta = ckpt.restore(checkpoints.abstract_like(state, shardings))
    start = int(state["step"])
    pretraining.check_resumable(meta.get("data", {}), len(rows), config, ckpt.directory)
    loop.say(f"pretrain: resuming from step {start} ({ckpt.directory})")
  log = loop.MetricsLog(workdir, start)

  def save(step, eval_metrics=None):
    chosen = {best_metric: eval_metrics[best_metric]} if eval_metrics and best_metric else None
    ckpt.save(step, state, meta=pretraining.checkpoint_meta(step, len(rows), config), metrics=chosen)

  # 6. Evals: zero-shot every `eval_every` steps and at the end, each followed by a checkpoint;
  # their programs compile in the background while the first steps run.
  def encoder_now():
    return (point_pretrain.encoder_variables(state, frozen) if point
            else pretraining.encoder_params(state["params"], frozen))

  if start < num_steps:
    evals.start_compiling(encoder_now())

  def run_evals(done, bar):
    started = time.perf_counter()
    result = evals(encoder_now())
    evaluated = time.perf_counter()
    save(done, result)
    # How long training paused for each (in one process a save only queues a device copy of the state).
    log.write({"step": done, **result, "eval_seconds": evaluated - started,
               "checkpoint_seconds": time.perf_counter() - evaluated})
    if done < num_steps:  # The last one is drawn after the loop; this one while training goes on.
      log.plot(f"pre-training, step {done}", background=True)
    bar.write(f"step {done}: " + "  ".join(f"{k} {100 * v:.2f}%" for k, v in result.items()
                                            if k.endswith("_top1")))

  # 7. Loop: the host waits for the device only every log_every steps.
  logging.info("pretrain: %d shapes, %d steps per epoch, %d steps", len(rows), steps_per_epoch, num_steps)
  loop.say(f"pretrain: {len(rows)} shapes with renderings, batch {config.batch_size}, "
           f"{steps_per_epoch} steps per epoch, steps {start} -> {num_steps}")
  # Read and sent to the devices `config.prefetch` batches ahead, in a background thread.
  batches = pipeline.prefetch_to_device(pretrain_data.batches(
      source, rows, global_batch_size=config.batch_size, num_points=config.data.num_points,
      seed=config.seed, start_step=start, num_steps=max(num_steps - start, 0), points=points,
      live_images=live, image_size=config.render.image_size, workers=config.workers),
      mesh, size=config.prefetch)
  bar = loop.progress(total=num_steps, initial=start, desc="pretrain", unit="step")
  pending, timer = [], pretraining.StepTimer()
  with loop.frozen_heap():  # no full garbage collection walks the setup's objects mid-run
    try:
      for step in range(start, num_steps):
        state, step_metrics = timer.step(train_step, state, frozen, next(batches), image_source)
        pending.append((step + 1, step_metrics))
        bar.update(1)
        done = step + 1
        is_eval = done == num_steps or (eval_every and done % eval_every == 0)
        is_ckpt = done % config.checkpoint.every_steps == 0
        if not (done % config.log_every == 0 or is_eval or is_ckpt):
          continue
        fetched = jax.device_get(pending)  # The only wait for the device, every log_every steps.
        for fetched_step, fetched_metrics in fetched:
          loop.check_finite(fetched_step, float(fetched_metrics["loss"]), ckpt)
        record = {**pretraining.interval_record(fetched, done, steps_per_epoch),
                  **timer.fields(config.batch_size)}
        log.write(record)
        bar.set_postfix(loss=f"{record['loss']:.4f}", w=f"{record['w']:.3f}")
        pending = []
        if is_eval and evals.names:
          run_evals(done, bar)
        elif is_eval or is_ckpt:
          save(done)
        timer.restart()
    finally:
      bar.close()
      ckpt.close()
      log.close()
  log.plot(f"pre-training, step {num_steps}")
  return pretraining.summary(log.records, ckpt, workdir, num_steps)
