"""One seed of a GDPA run: its shots, checkpoint resume, epoch loop and test metrics.

A linear probe (`config.model.kind="linear_probe"`) runs the same way and
writes the same files.

`tasks/fewshot.py` builds what every seed shares once (mesh, frozen
encoders, cached features, model, optimiser, compiled steps) and bundles it
in a `Run`; each seed then goes through `train_one_seed`:

    run = gdpa_run.Run(config=config, workdir=workdir, mesh=mesh, model=model, tx=tx,
                       steps=steps, text=text, paths=paths, encoders=encoders,
                       class_names=class_names, train=train, test=test)
    per_seed = {str(s): gdpa_run.train_one_seed(run, s) for s in config.seeds}

Per seed it writes `seed_<s>/checkpoints/` (orbax: {"train": state,
"frozen": frozen GDPA params, "best": best-validation record if any}) and
`seed_<s>/gdpa.json` (`model_description`, what `loading/trained_gdpa.py`
rebuilds the classifier from).
"""

import dataclasses
import json
import os
import time
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from clip2point_jax.core import checkpoints, parallel, throughput
from clip2point_jax.core import paths as storage  # `paths` names the dual-path encoders here
from clip2point_jax.core import settings as settings_diff
from clip2point_jax.data import pipeline, shots as shots_lib
from clip2point_jax.errors import UserError
from clip2point_jax.loading import trained_gdpa
from clip2point_jax.models import gdpa
from clip2point_jax.projection import dual_path
from clip2point_jax.projection import settings as render_settings
from clip2point_jax.training import gdpa as training, loop, metrics


class Split(NamedTuple):
  """One split's examples and their cached per-view features."""
  source: Any  # random access to {"points", "label"}; the live (augmented) step re-renders from it
  data: dict  # {"depth", "clip": float32[M, V, D], "label": int32[M]}, replicated over the mesh
  labels: np.ndarray  # int32[M], on the host


@dataclasses.dataclass(frozen=True)
class Run:
  """What every seed of a run shares (phases 1-4 of `tasks/fewshot.py`)."""
  config: Any  # the few-shot / fine-tuning ConfigDict
  workdir: str
  mesh: jax.sharding.Mesh
  model: gdpa.GDPA
  tx: optax.GradientTransformation
  steps: dict  # `training.make_steps`: {"cached", "live" (or None), "predict"}
  text: jax.Array  # float32[C, D], unit class-prompt features, replicated
  paths: dual_path.FrozenPaths
  encoders: dict  # both paths' vision params on the devices (`dual_path.put_encoders`)
  class_names: Sequence[str]
  train: Split
  test: Split

  @property
  def eval_chunk(self) -> int:
    """Examples per evaluation call: config.eval_batch_size, at most what the largest split needs."""
    largest = max(len(self.train.labels), len(self.test.labels))  # Validation is a part of train.
    return pipeline.eval_batch_size(self.config.eval_batch_size, largest, self.mesh.devices.size)


def effective_batch_size(requested: int, num_examples: int, mesh) -> int:
  """The requested batch, at most the training set, a multiple of the device count."""
  devices = mesh.devices.size
  size = min(requested, num_examples) // devices * devices
  if size < 1:
    raise UserError(f"the training set has {num_examples} clouds, fewer than the {devices} devices; "
                    "use more shots or fewer devices")
  return size


def batch_note(requested: int, used: int, num_examples: int) -> str:
  """One line saying the training batch was cut to the training set, or "" when it was not."""
  if requested <= num_examples:
    return ""
  return (f"config.batch_size={requested}, but the training set has {num_examples} clouds: each step "
          f"trains on {used} (recorded as batch_size in metrics.json)")


def run_key(config, seed: int, num_train: int, fingerprints) -> dict:
  """What a checkpoint must agree on to be resumed (JSON-plain: lists, not tuples).

  The render block enters as `settings.identity`, so checkpoints written
  before the projector gained fields still resume; `model.kind` enters only
  when it is not "gdpa", for the same reason (GDPA runs before it existed).
  """
  model = config.model.to_dict()
  if gdpa.kind_of(model) == "gdpa":
    model.pop("kind", None)
  return settings_diff.canonical({
      "dataset": config.data.name, "shots": config.shots, "seed": seed, "num_train": num_train,
      "epochs": config.epochs, "batch_size": config.batch_size, "augment": config.augment,
      "val_fraction": config.val_fraction, "model": model,
      "optim": config.optim.to_dict(), "views": config.views, "fingerprints": fingerprints,
      "num_points": config.data.num_points, "render": render_settings.identity(config.render)})


def model_description(config, paths: dual_path.FrozenPaths, class_names, key, has_best: bool) -> dict:
  """What `loading/trained_gdpa.py` needs to rebuild the classifier from a checkpoint."""
  return {"run": key, "config": json.loads(config.to_json_best_effort()),
          "class_names": list(class_names), "feature_dim": paths.feature_dim,
          "fingerprints": paths.fingerprints, "has_best": has_best}


def train_throughput(timer: throughput.Timer) -> dict:
  """A seed's `train_throughput`, from its timer of epochs.

  Returns:
    {"compile_seconds": the first epoch's wall time (it compiles the steps for
    the run's first seed; None where no epoch ran, a finished run resumed),
    "steps_per_second", "samples_per_second", "epochs_per_second": steady,
    over the epochs after the first (None where one epoch ran)}. Validation
    and checkpoints are left out of both.
  """
  rates = timer.rates()
  return {"compile_seconds": timer.compile_seconds,
          **{k: rates.get(k) for k in ("steps_per_second", "samples_per_second", "epochs_per_second")}}


def train_one_seed(run: Run, seed: int) -> dict:
  """Phases 5-7 for one seed: restore, train, evaluate; returns that seed's test metrics.

  The seed draws the shots (and the validation split, if any), the GDPA's
  initialisation, dropout and the batch order.
  """
  config, mesh = run.config, run.mesh
  pool, val = shots_lib.carve_validation(run.train.labels, config.val_fraction, seed)
  subset = pool[shots_lib.sample_shots(run.train.labels[pool], config.shots, seed)]
  per_class = np.bincount(run.train.labels[subset], minlength=len(run.class_names))
  batch_size = effective_batch_size(config.batch_size, len(subset), mesh)
  if seed == int(config.seeds[0]):  # Once per run: every seed draws the same counts.
    for note in (shots_lib.shortfall(per_class, config.shots, run.class_names),
                 batch_note(config.batch_size, batch_size, len(subset))):
      if note:
        loop.say(f"warning: {note}")
  orders = training.epoch_orders(subset, batch_size, seed, config.epochs)
  per_epoch = orders.shape[1]
  orders = jax.device_put(orders, parallel.replicated(mesh))
  state, frozen_gdpa = training.init_state(
      run.model, run.tx, mesh, seed=seed, num_views=len(config.views), features=run.paths.feature_dim,
      trainable_patterns=config.optim.trainable, num_classes=len(run.class_names))
  has_val = len(val) > 0
  best = training.best_slot(state, frozen_gdpa) if has_val else None
  key = run_key(config, seed, len(subset), run.paths.fingerprints)
  description = model_description(config, run.paths, run.class_names, key, has_val)

  # 5. Checkpoint restore: resume a run of the same settings, refuse any other.
  seed_dir = os.path.join(run.workdir, f"seed_{seed}")
  ckpt = checkpoints.Checkpointer(os.path.join(seed_dir, "checkpoints"), keep=1)
  curves = {"loss": [], "train_top1": [], "val_top1": []}
  if ckpt.latest_step() is not None:
    layout = checkpoints.abstract_like(training.checkpoint_tree(state, frozen_gdpa, best))
    restored, meta = ckpt.restore(layout)
    if meta.get("run") != key:
      raise UserError(f"{ckpt.directory} holds a run with other settings "
                      f"({settings_diff.describe_diff(meta.get('run'), key, limit=500)}); "
                      "use a fresh workdir or the same config")
    state, frozen_gdpa, best = restored["train"], restored["frozen"], restored.get("best")
    curves = meta["curves"]
  start_epoch = int(state["step"]) // per_epoch

  def save(epoch):
    ckpt.save(int(state["step"]), training.checkpoint_tree(state, frozen_gdpa, best),
              meta={"run": key, "epoch": epoch, "curves": curves})
    if loop.is_host0():
      storage.write_json(os.path.join(seed_dir, trained_gdpa.MODEL_FILE), description, indent=2)

  # 6. Evals: validation (if any) every epoch, test once at the end.
  def logits_of(variables, split: Split, indices):
    return training.evaluate(run.steps["predict"], variables, run.text, split.data, indices, run.eval_chunk)

  def val_top1(state):
    logits = logits_of(training.variables_of(state, frozen_gdpa), run.train, val)
    return float(np.mean(logits.argmax(-1) == run.train.labels[val]))

  # 7. Loop over epochs; cached features, or clouds re-rendered every step (augment).
  live_source = shots_lib.SubsetSource(run.train.source, subset) if config.augment else None
  start = time.time()
  # The first epoch (which compiles the steps, for the first seed) timed apart; validation
  # and checkpoints are left out of the steady rates.
  timer = throughput.Timer()
  bar = loop.progress(iterable=range(start_epoch, config.epochs), desc=f"seed {seed}", unit="epoch",
                      initial=start_epoch, total=config.epochs)
  # An interrupted loop still finishes the save it started: a restart must find it whole.
  try:
    for epoch in bar:
      if config.augment:
        per_step = []
        for batch in pipeline.prefetch_to_device(training.resampled_batches(
            live_source, batch_size=batch_size, num_points=config.data.num_points, seed=seed,
            start_step=epoch * per_epoch, num_steps=per_epoch), mesh):
          state, m = run.steps["live"](state, frozen_gdpa, run.text, run.encoders, batch["points"],
                                       batch["label"])
          per_step.append(m)
        step_metrics = jax.tree.map(lambda *steps: jnp.stack(steps), *per_step)  # as the scan stacks them
      else:
        state, step_metrics = run.steps["cached_epoch"](state, frozen_gdpa, run.text, run.train.data,
                                                        orders[epoch])
      fetched = jax.device_get(step_metrics)  # One transfer per epoch.
      timer.done(fetched, epochs=1, steps=per_epoch, samples=per_epoch * batch_size)
      timer.lap()  # The epoch's last step is done: device_get waited for it.
      loss = float(np.mean(fetched["loss"]))
      accuracy = float(np.sum(fetched["correct"]) / (per_epoch * batch_size))
      curves["loss"].append([epoch + 1, loss])
      curves["train_top1"].append([epoch + 1, accuracy])
      postfix = {"loss": f"{loss:.3f}", "train": f"{100 * accuracy:.1f}%"}
      if has_val:
        top1 = val_top1(state)
        curves["val_top1"].append([epoch + 1, top1])
        postfix["val"] = f"{100 * top1:.1f}%"
        if top1 > float(best["val_top1"]):
          best = training.best_slot(state, frozen_gdpa, top1, epoch + 1)
      bar.set_postfix(postfix)
      every = config.checkpoint_every_epochs
      if every and (epoch + 1) % every == 0 and epoch + 1 < config.epochs:
        save(epoch + 1)
      timer.resume()
    seconds = time.time() - start
    # A finished run resumed again keeps its checkpoint as it is.
    if start_epoch < config.epochs or ckpt.latest_step() is None:
      save(config.epochs)
  finally:
    bar.close()
    ckpt.close()

  everything = np.arange(len(run.test.labels))
  test_logits = logits_of(training.variables_of(state, frozen_gdpa), run.test, everything)
  result = metrics.classification_metrics(test_logits, run.test.labels, run.class_names)
  result.update(seed=seed, num_train=int(len(subset)), num_val=int(len(val)), batch_size=batch_size,
                shots_per_class={name: int(n) for name, n in zip(run.class_names, per_class)},
                steps=int(state["step"]), train_seconds=seconds, selected="final epoch", curves=curves,
                trainable_params=gdpa.count_params(state["params"]), train_throughput=train_throughput(timer))
  if has_val:
    best_logits = logits_of(best["variables"], run.test, everything)
    result["best_val_epoch"] = {
        "epoch": int(best["epoch"]), "val_top1_accuracy": float(best["val_top1"]),
        "test_top1_accuracy": float(np.mean(best_logits.argmax(-1) == run.test.labels)),
        "note": "the epoch picked on the validation split carved out of train, never on test"}
  return result
