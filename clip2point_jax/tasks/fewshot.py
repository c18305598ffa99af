"""GDPA classification: K-shot (configs/fewshot.py) or the whole split (configs/finetune.py).

Both encoders are frozen, so a caching pass computes the 10-view features of
every training and test cloud once (`view_features`), and the adapters train
on the cache: the features stay on the devices, every step gathers its batch
there, and one jitted step (state donated) does the rest. With
`config.augment=True` the training clouds are instead re-rendered every step
from a fresh random subset of their stored points.

No test-set model selection: the reported test accuracy is the final
epoch's. With `config.val_fraction > 0` a stratified validation split is
carved out of the training split first, and the test accuracy at the best
validation epoch is reported too, labelled as such.

Writes to the workdir: `metrics.json` (per seed and aggregated over seeds:
top-1, top-5, mean class and per-class accuracy, confusion matrices, learning
curves), `confusion_matrix.png` (summed over seeds), `learning_curves.png`
and, per seed, `seed_<s>/checkpoints/` (orbax: adapters, BatchNorm
statistics, optimiser state). `configs/zeroshot.py --config.gdpa=<workdir>`
evaluates a trained GDPA on any split or your own files.
"""

import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from clip2point_jax.core import checkpoints, parallel
from clip2point_jax.features import view_features
from clip2point_jax.training import gdpa as training, metrics
from clip2point_jax.data import pipeline, shots as shots_lib, splits
from clip2point_jax.errors import UserError
from clip2point_jax.loading import hf_clip, trained_gdpa
from clip2point_jax.models import gdpa
from clip2point_jax.projection import dual_path, zeroshot
from clip2point_jax.core import plots


def effective_batch_size(requested: int, num_examples: int, mesh) -> int:
  """The requested batch, at most the training set, a multiple of the device count."""
  devices = mesh.devices.size
  size = min(requested, num_examples) // devices * devices
  if size < 1:
    raise UserError(f"the training set has {num_examples} clouds, fewer than the {devices} devices; "
                    "use more shots or fewer devices")
  return size


def run_key(config, seed: int, num_train: int, fingerprints) -> dict:
  """What a checkpoint must agree on to be resumed."""
  return json.loads(json.dumps({
      "dataset": config.data.name, "shots": config.shots, "seed": seed, "num_train": num_train,
      "epochs": config.epochs, "batch_size": config.batch_size, "augment": config.augment,
      "val_fraction": config.val_fraction, "model": config.model.to_dict(),
      "optim": config.optim.to_dict(), "views": config.views, "fingerprints": fingerprints,
      "num_points": config.data.num_points, "render": config.render.to_dict()}))


def model_description(config, paths: dual_path.FrozenPaths, class_names, key, has_best: bool) -> dict:
  """What `models/trained_gdpa.py` needs to rebuild the classifier from a checkpoint."""
  return {"run": key, "config": json.loads(config.to_json_best_effort()),
          "class_names": list(class_names), "feature_dim": paths.feature_dim,
          "fingerprints": paths.fingerprints, "has_best": has_best}


def run(config, workdir: str) -> dict:
  """Trains and evaluates a GDPA per seed; returns the metrics dict it writes."""
  os.makedirs(workdir, exist_ok=True)
  if config.data.name == "files":
    raise UserError("config.data.name='files' has no train/test splits; GDPA training needs a "
                    "prepared dataset (see the README's Datasets section)")
  if not config.seeds:
    raise UserError("config.seeds is empty; give at least one, e.g. --config.seeds='(0,)'")
  if config.shots < 0 or config.epochs < 1:
    raise UserError(f"config.shots={config.shots} and config.epochs={config.epochs}: shots must be "
                    ">= 0 (0 = every training cloud) and epochs >= 1")
  # 1. Mesh.
  mesh = parallel.make_mesh()

  # 2. Data: both splits, and every cloud's per-view features from the frozen
  #    encoders, computed once and cached.
  train_source, class_names = splits.load(config.data, config.data.train_split, workdir)
  test_source, _ = splits.load(config.data, config.data.test_split, workdir)
  paths = dual_path.load_frozen_paths(config.clip, config.depth_encoder)
  size = paths.loaded.config.vision.image_size
  if size != config.render.image_size:
    raise UserError(f"config.render.image_size={config.render.image_size} but the CLIP at "
                    f"{config.clip.name} takes {size}x{size} images")
  encode = dual_path.make_view_encoder(
      dual_path.vision_encoder(paths.loaded),
      views=config.views, image_size=config.render.image_size, radius=config.render.radius,
      distance=config.render.distance, align_modelnet=config.data.align_modelnet, shared=paths.shared)
  encoders = dual_path.put_encoders(paths, parallel.replicated(mesh))
  encode_jit = jax.jit(encode)
  cache_root = config.cache_dir or os.path.join(workdir, "feature_cache")
  data_root = splits.data_dir(config.data, workdir)

  def features_of(source, split):
    identity = {"depth_encoder": paths.fingerprints["depth_encoder"],
                "clip_encoder": paths.fingerprints["clip_encoder"],
                "data": view_features.data_identity(config.data, source, data_root), "split": split,
                "views": [list(v) for v in config.views], "num_points": config.data.num_points,
                "sampling": config.data.sampling, "align_modelnet": config.data.align_modelnet,
                "render": config.render.to_dict(), "dtype": config.clip.dtype,
                "residual_dtype": hf_clip.resolve_residual_dtype(config.clip)}
    return view_features.load_or_compute(cache_root, identity, lambda: view_features.compute(
        encode_jit, encoders, source, mesh=mesh, batch_size=config.encode_batch_size,
        num_points=config.data.num_points, sampling=config.data.sampling, shared=paths.shared,
        desc=f"caching {split} features"))

  train_features = features_of(train_source, config.data.train_split)
  test_features = features_of(test_source, config.data.test_split)
  # On the devices for the whole run; each step gathers its batch there.
  train_data = training.to_device(train_features, mesh)
  test_data = training.to_device(test_features, mesh)
  train_labels = np.asarray(train_features["label"])
  test_labels = np.asarray(test_features["label"])

  # 3. Model and optimiser: the class prompts' text features, the GDPA, AdamW.
  text = jax.device_put(zeroshot.class_text_features(paths.loaded, class_names, tuple(config.prompts)),
                        parallel.replicated(mesh))
  model, tx, trainable_shapes = training.build(config, paths.feature_dim)

  # 4. Step functions, compiled once for every seed.
  steps = training.make_steps(model, tx, mesh, encode if config.augment else None)

  # 5.-7. Per seed: restore, train, evaluate.
  eval_chunk = parallel.round_to_devices(config.eval_batch_size, mesh)
  per_seed = {}
  for seed in config.seeds:
    per_seed[str(seed)] = train_one_seed(
        config, int(seed), workdir, mesh=mesh, model=model, tx=tx, steps=steps, text=text,
        paths=paths, encoders=encoders, class_names=class_names, train_source=train_source,
        train_data=train_data, train_labels=train_labels, test_data=test_data,
        test_labels=test_labels, eval_chunk=eval_chunk)

  result = aggregate(per_seed, class_names)
  result.update(task=config.task, dataset=config.data.name, shots=config.shots or "all",
                seeds=[int(s) for s in config.seeds], epochs=config.epochs, augment=config.augment,
                fusion=config.model.fusion, clip=config.clip.name,
                depth_encoder=config.depth_encoder or "(CLIP's own image tower)",
                trainable_params=gdpa.count_params(trainable_shapes),
                model_selection="final epoch" + (" (and, labelled, the best epoch on the validation "
                                                  "split carved out of train)" if config.val_fraction else ""))
  if jax.process_index() == 0:
    _write_outputs(config, workdir, class_names, result)
  return result


def train_one_seed(config, seed, workdir, *, mesh, model, tx, steps, text, paths, encoders,
                   class_names, train_source, train_data, train_labels, test_data, test_labels,
                   eval_chunk) -> dict:
  """Phases 5-7 for one seed: restore, train, evaluate; returns that seed's metrics."""
  pool, val = shots_lib.carve_validation(train_labels, config.val_fraction, seed)
  subset = pool[shots_lib.sample_shots(train_labels[pool], config.shots, seed, class_names)]
  batch_size = effective_batch_size(config.batch_size, len(subset), mesh)
  orders = training.epoch_orders(subset, batch_size, seed, config.epochs)
  per_epoch = orders.shape[1]
  orders = jax.device_put(orders, parallel.replicated(mesh))
  state, frozen_gdpa = training.init_state(
      model, tx, mesh, seed=seed, num_views=len(config.views), features=paths.feature_dim,
      trainable_patterns=config.optim.trainable)
  has_val = len(val) > 0
  best = training.best_slot(state, frozen_gdpa) if has_val else None
  key = run_key(config, seed, len(subset), paths.fingerprints)
  description = model_description(config, paths, class_names, key, has_val)

  # 5. Checkpoint restore: resume a run of the same settings.
  seed_dir = os.path.join(workdir, f"seed_{seed}")
  ckpt = checkpoints.Checkpointer(os.path.join(seed_dir, "checkpoints"), keep=1)
  curves = {"loss": [], "train_top1": [], "val_top1": []}
  if ckpt.latest_step() is not None:
    restored, meta = ckpt.restore(checkpoints.abstract_like(training.checkpoint_tree(state, frozen_gdpa, best)))
    if meta.get("run") != key:
      raise UserError(f"{ckpt.directory} holds a run with other settings ({_diff(meta.get('run'), key)}); "
                      "use a fresh workdir or the same config")
    state, frozen_gdpa, best = restored["train"], restored["frozen"], restored.get("best")
    curves = meta["curves"]
  start_epoch = int(state["step"]) // per_epoch

  def save(epoch):
    ckpt.save(int(state["step"]), training.checkpoint_tree(state, frozen_gdpa, best),
              meta={"run": key, "epoch": epoch, "curves": curves})
    if jax.process_index() == 0:
      with open(os.path.join(seed_dir, trained_gdpa.MODEL_FILE), "w") as f:
        json.dump(description, f, indent=2)

  # 6. Evals: validation (if any) every epoch, test once at the end.
  def val_top1(state):
    logits = training.evaluate(steps["predict"], training.variables_of(state, frozen_gdpa), text,
                               train_data, val, eval_chunk)
    return float(np.mean(logits.argmax(-1) == train_labels[val]))

  # 7. Loop over epochs.
  live_source = shots_lib.SubsetSource(train_source, subset) if config.augment else None
  start = time.time()
  bar = tqdm(range(start_epoch, config.epochs), desc=f"seed {seed}", unit="epoch",
             initial=start_epoch, total=config.epochs, disable=jax.process_index() != 0)
  for epoch in bar:
    step_metrics = []
    if config.augment:
      for local in pipeline.prefetch(training.resampled_batches(
          live_source, batch_size=batch_size, num_points=config.data.num_points, seed=seed,
          start_step=epoch * per_epoch, num_steps=per_epoch)):
        batch = parallel.global_batch(mesh, local)
        state, m = steps["live"](state, frozen_gdpa, text, encoders, batch["points"], batch["label"])
        step_metrics.append(m)
    else:
      for i in range(per_epoch):
        state, m = steps["cached"](state, frozen_gdpa, text, train_data, orders[epoch, i])
        step_metrics.append(m)
    fetched = jax.device_get(step_metrics)  # One transfer per epoch.
    loss = float(np.mean([m["loss"] for m in fetched]))
    accuracy = float(np.sum([m["correct"] for m in fetched]) / (per_epoch * batch_size))
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
  seconds = time.time() - start
  if start_epoch < config.epochs or ckpt.latest_step() is None:
    save(config.epochs)
  ckpt.close()

  everything = np.arange(len(test_labels))
  test_logits = training.evaluate(steps["predict"], training.variables_of(state, frozen_gdpa), text,
                                  test_data, everything, eval_chunk)
  result = metrics.classification_metrics(test_logits, test_labels, class_names)
  result.update(seed=seed, num_train=int(len(subset)), num_val=int(len(val)), batch_size=batch_size,
                steps=int(state["step"]), train_seconds=seconds, selected="final epoch", curves=curves)
  if has_val:
    best_logits = training.evaluate(steps["predict"], best["variables"], text, test_data, everything,
                                    eval_chunk)
    result["best_val_epoch"] = {
        "epoch": int(best["epoch"]), "val_top1_accuracy": float(best["val_top1"]),
        "test_top1_accuracy": float(np.mean(best_logits.argmax(-1) == test_labels)),
        "note": "the epoch picked on the validation split carved out of train, never on test"}
  return result


def _diff(old, new) -> str:
  if not isinstance(old, dict):
    return "no settings recorded"
  keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
  return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys)[:500]


def aggregate(per_seed: dict, class_names) -> dict:
  """Mean and standard deviation (ddof=1; 0 for one seed) of each seed's test accuracies."""
  def stats(values):
    values = np.asarray(values, np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}

  runs = list(per_seed.values())
  result = {key: stats([r[key] for r in runs])
            for key in ("top1_accuracy", "top5_accuracy", "mean_class_accuracy")}
  per_class = {}
  for name in class_names:
    values = [r["per_class_accuracy"][name] for r in runs if r["per_class_accuracy"][name] is not None]
    per_class[name] = float(np.mean(values)) if values else None
  aggregated = {"num_seeds": len(runs), **result, "per_class_accuracy_mean": per_class,
                "confusion_matrix_sum": np.sum([r["confusion_matrix"] for r in runs], 0).tolist()}
  if all("best_val_epoch" in r for r in runs):
    aggregated["test_top1_at_best_val_epoch"] = stats(
        [r["best_val_epoch"]["test_top1_accuracy"] for r in runs])
  return {"aggregate": aggregated, "per_seed": per_seed, "class_names": list(class_names)}


def _write_outputs(config, workdir, class_names, result):
  with open(os.path.join(workdir, "metrics.json"), "w") as f:
    json.dump(result, f, indent=2)
  agg = result["aggregate"]
  top1 = agg["top1_accuracy"]
  what = f"{config.shots}-shot" if config.shots else "supervised"
  plots.save_confusion_matrix(
      np.asarray(agg["confusion_matrix_sum"]), class_names, os.path.join(workdir, "confusion_matrix.png"),
      title=f"GDPA {what} {config.data.name}: top-1 {100 * top1['mean']:.1f} ± {100 * top1['std']:.1f}% "
            f"({agg['num_seeds']} seeds, summed)")
  panels = {"training loss": {}, "training top-1": {}}
  for seed, r in result["per_seed"].items():
    panels["training loss"][f"seed {seed}"] = r["curves"]["loss"]
    panels["training top-1"][f"seed {seed}"] = r["curves"]["train_top1"]
    if r["curves"]["val_top1"]:
      panels.setdefault("validation top-1 (carved out of train)", {})[f"seed {seed}"] = r["curves"]["val_top1"]
  plots.save_curve_panels(panels, os.path.join(workdir, "learning_curves.png"), xlabel="epoch")
  chance = 100.0 / len(class_names)
  print(f"\nGDPA {what} {config.data.name}, {config.epochs} epochs, fusion={config.model.fusion}:")
  for seed, r in result["per_seed"].items():
    line = (f"  seed {seed}: {r['num_train']} training clouds, final-epoch test top-1 "
            f"{100 * r['top1_accuracy']:.2f}%  mean class {100 * r['mean_class_accuracy']:.2f}%  "
            f"({r['train_seconds']:.1f} s)")
    if "best_val_epoch" in r:
      b = r["best_val_epoch"]
      line += f"; at best validation epoch {b['epoch']}: test top-1 {100 * b['test_top1_accuracy']:.2f}%"
    print(line)
  mean_class = agg["mean_class_accuracy"]
  print(f"  over {agg['num_seeds']} seed(s): top-1 {100 * top1['mean']:.2f} ± {100 * top1['std']:.2f}%   "
        f"mean class {100 * mean_class['mean']:.2f} ± {100 * mean_class['std']:.2f}%   (chance {chance:.2f}%)")
  print(f"  wrote metrics.json, confusion_matrix.png, learning_curves.png and seed_*/checkpoints to {workdir}")
