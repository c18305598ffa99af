"""GDPA classification: K-shot (configs/fewshot.py) or the whole split (configs/finetune.py).

Both encoders are frozen, so a caching pass computes the 10-view features of
every training and test cloud once (`view_features`; with a 3D encoder as
`depth_encoder`, path P is its one feature per cloud: the GDPA's 3D path,
`models/gdpa.py`), and the adapters train
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
curves; the throughput of training, `per_seed.<s>.train_throughput` and
`aggregate.train_throughput`, and of the caching passes, `feature_cache.train`
and `feature_cache.test`: `training/gdpa_report.py` says which fields),
`confusion_matrix.png` (summed over seeds), `learning_curves.png`
and, per seed, `seed_<s>/checkpoints/` (orbax: adapters, BatchNorm
statistics, optimiser state). `configs/zeroshot.py --config.gdpa=<workdir>`
evaluates a trained GDPA on any split or your own files.
"""

import os

import jax
import numpy as np

from clip2point_jax import validation
from clip2point_jax.core import parallel
from clip2point_jax.core import paths as storage  # `paths` names other things in tasks
from clip2point_jax.data import splits
from clip2point_jax.features import view_features
from clip2point_jax.loading import tiny_clip, trained_settings
from clip2point_jax.projection import dual_path, encode as encode_lib, zeroshot
from clip2point_jax.projection import settings as render_settings
from clip2point_jax.training import gdpa as training, gdpa_report, gdpa_run


def run(config, workdir: str) -> dict:
  """Trains and evaluates a GDPA per seed; returns the metrics dict it writes."""
  validation.check_task(config)
  storage.path(workdir).mkdir(parents=True, exist_ok=True)
  # The depth encoder's own CLIP and render settings; an empty clip.name then: a tiny random CLIP.
  trained_settings.fill_in(config)
  tiny_clip.use_if_unnamed(config, workdir, config.task)
  render = render_settings.from_config(config.render, config.views,
                                       align_modelnet=config.data.align_modelnet)
  # 1. Mesh.
  mesh = parallel.make_mesh()

  # 2. Data: both splits, and every cloud's per-view features from the frozen
  #    encoders, computed once and cached.
  train_source, class_names = splits.load(config.data, config.data.train_split, workdir)
  test_source, _ = splits.load(config.data, config.data.test_split, workdir)
  paths = dual_path.load_frozen_paths(config.clip, config.depth_encoder, image_size=render.image_size)
  if config.augment:
    # A 3D encoder's farthest-point sampling starts from the first point, so a reordered cloud
    # is already another sample for it.
    training.check_resampling(train_source, config.data.num_points, order_matters=paths.point_path)
  encode = dual_path.make_view_encoder(encode_lib.vision_encoder(paths.loaded), render,
                                       shared=paths.shared, point_model=paths.point_model)
  encoders = dual_path.put_encoders(paths, parallel.replicated(mesh))
  encode_jit = jax.jit(encode)
  cache_root = config.cache_dir or os.path.join(workdir, "feature_cache")
  data_root = splits.data_dir(config.data, workdir)

  feature_cache = {}  # {"train", "test"}: the caching pass's throughput, or {"cached": True}

  def cached_split(source, split, role) -> gdpa_run.Split:
    identity = view_features.split_identity(config, paths.fingerprints, source, split, data_root)
    timing = {}  # filled only where the pass runs
    features = view_features.load_or_compute(cache_root, identity, lambda: view_features.compute(
        encode_jit, encoders, source, mesh=mesh, batch_size=min(config.encode_batch_size, len(source)),
        num_points=config.data.num_points, sampling=config.data.sampling, shared=paths.shared,
        desc=f"caching {split} features", timing=timing))
    feature_cache[role] = {"cached": not timing, **timing}
    # On the devices for the whole run; each step gathers its batch there.
    return gdpa_run.Split(source, training.to_device(features, mesh), np.asarray(features["label"]))

  train = cached_split(train_source, config.data.train_split, "train")
  test = cached_split(test_source, config.data.test_split, "test")

  # 3. Model and optimiser: the class prompts' text features, the GDPA, AdamW.
  text = jax.device_put(zeroshot.class_text_features(paths.loaded, class_names, tuple(config.prompts)),
                        parallel.replicated(mesh))
  model, tx, trainable_shapes = training.build(config, paths.feature_dim, point_path=paths.point_path)

  # 4. Step functions, compiled once for every seed (the live step renders with `render`).
  steps = training.make_steps(model, tx, mesh, encode if config.augment else None)
  shared = gdpa_run.Run(config=config, workdir=workdir, mesh=mesh, model=model, tx=tx, steps=steps,
                        text=text, paths=paths, encoders=encoders, class_names=class_names,
                        train=train, test=test)

  # 5.-7. Per seed (gdpa_run.train_one_seed): 5. restore a checkpoint of the
  # same settings, 6. evals (validation every epoch, test at the end), 7. the
  # epoch loop, checkpointing as configured.
  per_seed = {str(seed): gdpa_run.train_one_seed(shared, int(seed)) for seed in config.seeds}

  result = gdpa_report.summarize(config, per_seed, class_names, trainable_shapes, feature_cache=feature_cache)
  gdpa_report.write_outputs(config, workdir, result)
  return result
