"""Builds a dataset into `config.data_dir`, once; see configs/prepare.py."""

import os

import tensorflow_datasets as tfds

from clip2point_jax import validation
from clip2point_jax.data import registry
from clip2point_jax.errors import UserError
from clip2point_jax.training import loop


def _options(config) -> dict:
  """The builder options the config sets; unset ("" or 0) means default."""
  builder = registry.builder_class(config.dataset)
  given = {
      "num_points_stored": config.num_points_stored or None,
      "seed": config.seed or None,
      "renderings_dir": config.renderings_dir or None,
      "num_per_class_train": config.num_per_class_train or None,
      "num_per_class_test": config.num_per_class_test or None,
      "render_images": None if config.render_images else False,
  }
  unused = [k for k, v in given.items()
            if v is not None and k not in builder.OPTIONS]
  if unused:
    raise UserError(f"config.{unused[0]} does not apply to dataset "
                    f"{config.dataset!r}.")
  return {k: v for k, v in given.items() if v is not None}


def run(config, workdir: str) -> str:
  """Prepares `config.dataset`; returns the dataset folder."""
  del workdir  # Everything goes to config.data_dir, shared by all runs.
  validation.check_task(config)
  # 1. Mesh: none; the builders work on the host. 3.-6.: no model, nothing to restore.
  # 2. Data and 7. loop: the builder reads, samples and writes every shape.
  # Our own bars count shapes against a known total; TFDS's would not.
  tfds.disable_progress_bar()
  options = _options(config)
  try:
    path = registry.prepare(
        config.dataset, config.data_dir,
        os.path.expanduser(config.manual_dir) if config.manual_dir else None,
        overwrite=config.overwrite, **options)
  except registry.PreparedOtherwise as e:
    raise UserError(f"{e.what}; delete that folder, or rerun with --config.overwrite=True") from e
  info = tfds.builder_from_directory(path).info
  skipped = registry.metadata(config.dataset, config.data_dir, options).get(
      "skipped", {})
  for split in sorted(info.splits):
    count = info.splits[split].num_examples
    skips = skipped.get(split, {}).get("count", 0)
    loop.say(f"{config.dataset}/{split}: {count} shapes"
             + (f", {skips} broken ones skipped (listed in {path}/metadata.json)" if skips else ""))
  loop.say(f"prepared in {path}")
  return path
