"""Zero-shot evaluations of the encoder while it pre-trains (`config.evals`).

    evals = ZeroShotEvals(config, workdir, loaded, mesh)
    evals.start_compiling(encoder_params)   # in a background thread, while training steps run
    result = evals(encoder_params)   # {"val_top1": ..., "val_mean_class": ..., ...}
"""

import threading

import ml_collections
from absl import logging

from clip2point_jax.core import checkpoints
from clip2point_jax.data import splits
from clip2point_jax.loading import classifier, depth_encoder, point_encoder
from clip2point_jax.training import evaluate, metrics

# Pre-training draws a distance per depth map; zero-shot takes the block's one distance.
TRAINING_ONLY_RENDER_FIELDS = ("distance_jitter",)


def eval_config(config, evaluation) -> ml_collections.ConfigDict:
  """A zero-shot config for one entry of `config.evals`.

  It projects as pre-training does: the pre-training `render` block (mode,
  camera, radius, distance, ...) and `clip` block, with the evaluation's
  data, views and prompts; an empty `data.data_dir` is pre-training's.
  """
  cfg = ml_collections.ConfigDict(evaluation.to_dict())
  cfg.clip = ml_collections.ConfigDict(config.clip.to_dict())
  cfg.render = ml_collections.ConfigDict({k: v for k, v in config.render.to_dict().items()
                                          if k not in TRAINING_ONLY_RENDER_FIELDS})
  if not cfg.data.data_dir:
    cfg.data.data_dir = config.data.data_dir
  return cfg


def names(config) -> list[str]:
  """The entries of `config.evals` that run: those that name a dataset."""
  return [name for name, evaluation in config.evals.items() if evaluation.data.name]


class ZeroShotEvals:
  """Zero-shot accuracy of the current encoder on each `config.evals` set with a dataset.

  The depth encoder classifies as zero-shot does with its views; a 3D
  encoder (`point_model`, `training/point_pretrain.py`) with its one feature
  per cloud (`classifier.point_classifier`), so accuracies during
  pre-training are those `--config.depth_encoder=<workdir>` reports after it.
  """

  def __init__(self, config, workdir: str, loaded, mesh, point_model=None):
    self.mesh, self.evals, self.point = mesh, [], point_model is not None
    self._compiling = None
    for name in names(config):
      cfg = eval_config(config, config.evals[name])
      source, class_names = splits.load(cfg.data, cfg.data.split, workdir)
      if self.point:
        classify, clip_params, text = classifier.point_classifier(cfg, class_names, mesh, point_model,
                                                                  loaded=loaded)
      else:
        classify, clip_params, text = classifier.load_classifier(cfg, class_names, mesh, loaded=loaded)
      self.evals.append((name, cfg, source, class_names, classify, clip_params, text))

  @property
  def names(self) -> list[str]:
    return [e[0] for e in self.evals]

  def _params(self, clip_params, encoder_params):
    if self.point:
      return {**clip_params, point_encoder.PARAMS_KEY: encoder_params}
    return depth_encoder.with_encoder(clip_params, encoder_params)

  def start_compiling(self, encoder_params) -> None:
    """Compiles every evaluation's classifier in a background thread.

    The first evaluation then finds its programs ready instead of compiling
    them (seconds to a minute for ViT-B/32) between two training steps: the
    compiling overlaps the steps before it. Only the layout of
    `encoder_params` is kept (shapes, dtypes, shardings), not its buffers,
    which the training step donates. A failure here is only logged: the
    evaluation then compiles, and reports any real error, itself.
    """
    layouts = [(classify, checkpoints.abstract_like(self._params(clip_params, encoder_params)),
                checkpoints.abstract_like(text), source, cfg)
               for _, cfg, source, _, classify, clip_params, text in self.evals]

    def compile_all():
      for classify, params, text, source, cfg in layouts:
        try:
          evaluate.compile_for_predict(classify, params, text, source, cfg, self.mesh)
        except Exception as e:  # pylint: disable=broad-except
          logging.warning("compiling an evaluation ahead failed (%s: %s); it compiles when it runs",
                          type(e).__name__, e)

    if layouts:
      self._compiling = threading.Thread(target=compile_all, name="compile evaluations", daemon=True)
      self._compiling.start()

  def __call__(self, encoder_params) -> dict[str, float]:
    """{"<name>_top1": ..., "<name>_mean_class": ...} for every evaluation set.

    Args:
      encoder_params: the depth encoder's param tree (`pretrain.encoder_params`),
        or the 3D encoder's variables (`point_pretrain.encoder_variables`).
    """
    if self._compiling is not None:
      self._compiling.join()
      self._compiling = None
    out = {}
    for name, cfg, source, class_names, classify, clip_params, text in self.evals:
      params = self._params(clip_params, encoder_params)
      logits, labels, _ = evaluate.predict(classify, params, text, source, cfg, self.mesh,
                                           desc=f"eval {name}")
      result = metrics.classification_metrics(logits, labels, class_names)
      out[f"{name}_top1"] = result["top1_accuracy"]
      out[f"{name}_mean_class"] = result["mean_class_accuracy"]
    return out
